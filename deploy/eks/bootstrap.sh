#!/usr/bin/env bash
# jupyterhub_ext on EKS, from an empty AWS account to a hub at https://$HUB_HOST/ with Cognito logins:
# the commands of docs/deploy-eks.md ("From an empty AWS account"), in order. Run it from anywhere; each step says
# what it makes. Read it first: it creates billable resources (an EKS cluster, NAT gateways, an NLB, EFS).
#
#   CLUSTER=jupyterhub AWS_REGION=eu-west-1 HUB_HOST=hub.example.com COGNITO_DOMAIN_PREFIX=my-hub \
#     ADMIN_EMAIL=you@example.com deploy/eks/bootstrap.sh
#
# Needs: aws (v2, credentials of an account administrator), eksctl 0.222+, kubectl, helm 3.13+, docker with buildx,
# envsubst (gettext), openssl. Steps that already happened are skipped or updated in place, so after a failure fix
# the cause and run it again. The generated values files are kept in $OUT for later `helm upgrade`s.
# teardown.sh removes everything again, in the reverse order. Never run by the tests: tests/deploy/test_eks_bootstrap.py
# lints it (shellcheck) and checks that the names it uses agree with the templates and the Helm values.
set -euo pipefail

# -- 1. What you choose ----------------------------------------------------------------------------------------
CLUSTER="${CLUSTER:-jupyterhub}"
AWS_REGION="${AWS_REGION:-eu-west-1}"
HUB_HOST="${HUB_HOST:-hub.example.com}"               # the hub's public name; you must control its DNS
HOSTED_ZONE_ID="${HOSTED_ZONE_ID:-}"                  # Route 53 zone of HUB_HOST; empty: DNS records by hand
COGNITO_DOMAIN_PREFIX="${COGNITO_DOMAIN_PREFIX:-$CLUSTER-hub}"  # <prefix>.auth.<region>.amazoncognito.com, unique
ADMIN_EMAIL="${ADMIN_EMAIL:-}"                        # the first hub admin (Cognito group hub-admins); empty: none
MIG_WARM_NODES="${MIG_WARM_NODES:-0}"                 # 1 keeps a p4d.24xlarge up for MIG (about 32 USD an hour)
IMAGE_TAG="${IMAGE_TAG:-0.1.0}"
# Pinned releases (raise them on purpose): EKS 1.35 (cluster.yaml) is supported by Karpenter 1.9 and newer.
KARPENTER_VERSION=1.14.1
LOAD_BALANCER_CONTROLLER_CHART_VERSION=3.5.0          # controller v3.5.0
GPU_OPERATOR_VERSION=v26.3.1
Z2JH_VERSION=4.4.0

export CLUSTER AWS_REGION
export AWS_DEFAULT_REGION="$AWS_REGION"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$HOME/.jupyterhub-ext/$CLUSTER}"          # generated files; keep them
NAMESPACE=jupyterhub
STACK_KARPENTER="$CLUSTER-karpenter"
STACK_EFS="$CLUSTER-efs"
STACK_BACKUP="$CLUSTER-backup"
STACK_ACM="$CLUSTER-acm"
STACK_COGNITO="$CLUSTER-cognito"
STACK_EKSCTL="eksctl-$CLUSTER-cluster"                # eksctl's own stack: VPC, subnets, security groups

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
# stack_output STACK KEY: one output of a CloudFormation stack
stack_output() {
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

for tool in aws eksctl kubectl helm docker envsubst openssl; do
  command -v "$tool" >/dev/null || { echo "bootstrap.sh needs $tool on PATH" >&2; exit 1; }
done
mkdir -p "$OUT"
AWS_ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text)"
export AWS_ACCOUNT_ID
REGISTRY="$AWS_ACCOUNT_ID.dkr.ecr.$AWS_REGION.amazonaws.com"
step "account $AWS_ACCOUNT_ID, region $AWS_REGION, cluster $CLUSTER, hub https://$HUB_HOST/"

# -- 2. Karpenter's IAM and interruption queue (before the cluster: cluster.yaml names the roles) ----------------
step "stack $STACK_KARPENTER (karpenter.yaml)"
aws cloudformation deploy --stack-name "$STACK_KARPENTER" --template-file "$HERE/karpenter.yaml" \
  --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset \
  --parameter-overrides ClusterName="$CLUSTER"
NODE_ROLE="$(stack_output "$STACK_KARPENTER" NodeRoleName)"
INTERRUPTION_QUEUE="$(stack_output "$STACK_KARPENTER" InterruptionQueueName)"

# -- 3. The cluster ----------------------------------------------------------------------------------------------
step "EKS cluster $CLUSTER (cluster.yaml, about 20 minutes)"
# only these three variables are filled in; the file has no other ${...}
# shellcheck disable=SC2016
envsubst '${CLUSTER} ${AWS_REGION} ${AWS_ACCOUNT_ID}' < "$HERE/cluster.yaml" > "$OUT/cluster.yaml"
if ! eksctl get cluster --name "$CLUSTER" --region "$AWS_REGION" >/dev/null 2>&1; then
  eksctl create cluster -f "$OUT/cluster.yaml"
fi
aws eks update-kubeconfig --name "$CLUSTER" --region "$AWS_REGION"
VPC_ID="$(stack_output "$STACK_EKSCTL" VPC)"
PRIVATE_SUBNETS="$(stack_output "$STACK_EKSCTL" SubnetsPrivate)"   # comma-separated, one per zone
CLUSTER_SG="$(stack_output "$STACK_EKSCTL" ClusterSecurityGroupId)"

# Karpenter finds subnets and security groups by this tag (helm/platform's EC2NodeClasses select on it): only the
# private subnets (user nodes get no public address) and the cluster security group (EFS admits NFS from it).
step "discovery tag karpenter.sh/discovery=$CLUSTER on the private subnets and the cluster security group"
IFS=, read -r -a subnet_ids <<< "$PRIVATE_SUBNETS"
aws ec2 create-tags --resources "${subnet_ids[@]}" "$CLUSTER_SG" --tags "Key=karpenter.sh/discovery,Value=$CLUSTER"

# -- 4. AWS Load Balancer Controller (its IAM: cluster.yaml's pod identity association) -------------------------
step "AWS Load Balancer Controller (chart $LOAD_BALANCER_CONTROLLER_CHART_VERSION)"
helm repo add eks https://aws.github.io/eks-charts --force-update >/dev/null
helm upgrade --install aws-load-balancer-controller eks/aws-load-balancer-controller \
  --version "$LOAD_BALANCER_CONTROLLER_CHART_VERSION" -n kube-system \
  --set clusterName="$CLUSTER" --set region="$AWS_REGION" --set vpcId="$VPC_ID" \
  --set serviceAccount.create=true --set serviceAccount.name=aws-load-balancer-controller \
  --wait

# -- 5. Karpenter (its IAM: karpenter.yaml through cluster.yaml's pod identity association) ----------------------
step "Karpenter $KARPENTER_VERSION"
# public.ecr.aws serves the chart to anyone; a stale docker login for it makes helm fail, so drop it
helm registry logout public.ecr.aws >/dev/null 2>&1 || true
helm upgrade --install karpenter oci://public.ecr.aws/karpenter/karpenter --version "$KARPENTER_VERSION" \
  -n kube-system \
  --set settings.clusterName="$CLUSTER" --set settings.interruptionQueue="$INTERRUPTION_QUEUE" \
  --set serviceAccount.name=karpenter \
  --set controller.resources.requests.cpu=500m --set controller.resources.requests.memory=512Mi \
  --set controller.resources.limits.memory=1Gi \
  --wait

# -- 6. EFS: the file system, its mount targets, the two access points -------------------------------------------
step "stack $STACK_EFS (efs.yaml)"
aws cloudformation deploy --stack-name "$STACK_EFS" --template-file "$HERE/efs.yaml" \
  --no-fail-on-empty-changeset \
  --parameter-overrides ClusterName="$CLUSTER" VpcId="$VPC_ID" PrivateSubnetIds="$PRIVATE_SUBNETS" \
    ClusterSecurityGroupId="$CLUSTER_SG"
FILE_SYSTEM_ID="$(stack_output "$STACK_EFS" FileSystemId)"
FILE_SYSTEM_ARN="$(stack_output "$STACK_EFS" FileSystemArn)"
HOMES_ACCESS_POINT="$(stack_output "$STACK_EFS" HomesAccessPointId)"
HOMES_ROOT="$(stack_output "$STACK_EFS" HomesRootDirectory)"
SHARED_ACCESS_POINT="$(stack_output "$STACK_EFS" SharedAccessPointId)"
SHARED_ROOT="$(stack_output "$STACK_EFS" SharedRootDirectory)"

# -- 7. Backups of the file system: daily and weekly, in a vault of their own ------------------------------------
step "stack $STACK_BACKUP (backup.yaml)"
aws cloudformation deploy --stack-name "$STACK_BACKUP" --template-file "$HERE/backup.yaml" \
  --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
  --parameter-overrides ClusterName="$CLUSTER" FileSystemArn="$FILE_SYSTEM_ARN"

# -- 8. The certificate ---------------------------------------------------------------------------------------------
step "stack $STACK_ACM (acm.yaml)"
if [ -z "$HOSTED_ZONE_ID" ]; then
  echo "No HOSTED_ZONE_ID: the stack waits until you create the validation CNAME. In another shell:" >&2
  echo "  aws acm list-certificates --query \"CertificateSummaryList[?DomainName=='$HUB_HOST'].CertificateArn\"" >&2
  echo "  aws acm describe-certificate --certificate-arn ARN --query Certificate.DomainValidationOptions[0].ResourceRecord" >&2
fi
aws cloudformation deploy --stack-name "$STACK_ACM" --template-file "$HERE/acm.yaml" \
  --no-fail-on-empty-changeset \
  --parameter-overrides HubHost="$HUB_HOST" HostedZoneId="$HOSTED_ZONE_ID"
CERTIFICATE_ARN="$(stack_output "$STACK_ACM" CertificateArn)"

# -- 9. Cognito: user pool, hosted login domain, app client, groups ---------------------------------------------
step "stack $STACK_COGNITO (cognito.yaml)"
aws cloudformation deploy --stack-name "$STACK_COGNITO" --template-file "$HERE/cognito.yaml" \
  --no-fail-on-empty-changeset \
  --parameter-overrides ClusterName="$CLUSTER" HubHost="$HUB_HOST" DomainPrefix="$COGNITO_DOMAIN_PREFIX"
USER_POOL_ID="$(stack_output "$STACK_COGNITO" UserPoolId)"
CLIENT_ID="$(stack_output "$STACK_COGNITO" UserPoolClientId)"
COGNITO_DOMAIN="$(stack_output "$STACK_COGNITO" Domain)"
OAUTH_CALLBACK_URL="$(stack_output "$STACK_COGNITO" OAuthCallbackUrl)"

# -- 10. Images: ECR repositories, login, linux/amd64 builds ------------------------------------------------------
# Every node is x86_64 (helm/platform's pools); a build on an ARM laptop must say --platform linux/amd64, or the
# pods fail with "exec format error".
step "images in $REGISTRY (tag $IMAGE_TAG)"
for repository in jupyterhub-ext-hub jupyterhub-ext-singleuser jupyterhub-ext-course; do
  aws ecr describe-repositories --repository-names "$repository" >/dev/null 2>&1 \
    || aws ecr create-repository --repository-name "$repository" --image-tag-mutability IMMUTABLE \
         --image-scanning-configuration scanOnPush=true --encryption-configuration encryptionType=AES256 >/dev/null
done
aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$REGISTRY"
# the build context is the repository root (the Dockerfiles copy the package from there)
docker buildx build --platform linux/amd64 --push -f "$REPO/images/hub/Dockerfile" \
  -t "$REGISTRY/jupyterhub-ext-hub:$IMAGE_TAG" "$REPO"
docker buildx build --platform linux/amd64 --push -f "$REPO/images/singleuser/Dockerfile" \
  -t "$REGISTRY/jupyterhub-ext-singleuser:$IMAGE_TAG" "$REPO"
# the example course (images/singleuser/course); yours: add --build-context course=path/to/material
docker buildx build --platform linux/amd64 --push -f "$REPO/images/course/Dockerfile" \
  -t "$REGISTRY/jupyterhub-ext-course:$IMAGE_TAG" "$REPO"

# -- 11. Secrets the hub reads (docs/deploy-eks.md, step 6) -------------------------------------------------------
step "namespaces and Secrets"
for ns in "$NAMESPACE" gpu-operator; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
done
# the base values' shared-password login (kept for the admin's port-forward access); generated once, never replaced
if ! kubectl -n "$NAMESPACE" get secret jupyterhub-ext-login >/dev/null 2>&1; then
  kubectl -n "$NAMESPACE" create secret generic jupyterhub-ext-login \
    --from-literal=user-password="$(openssl rand -base64 18)" \
    --from-literal=admin-password="$(openssl rand -base64 36)"
fi
# the Cognito app client's secret: straight from Cognito into the Secret, never into a file or an output
CLIENT_SECRET="$(aws cognito-idp describe-user-pool-client --user-pool-id "$USER_POOL_ID" --client-id "$CLIENT_ID" \
  --query UserPoolClient.ClientSecret --output text)"
kubectl -n "$NAMESPACE" create secret generic jupyterhub-ext-oauth --from-literal=client-secret="$CLIENT_SECRET" \
  --dry-run=client -o yaml | kubectl apply -f -
unset CLIENT_SECRET

# -- 12. The platform chart: EFS volumes, gp3, device-plugin configs, Karpenter NodePools -------------------------
step "helm release platform (helm/platform)"
cat > "$OUT/platform.yaml" <<EOF
# written by deploy/eks/bootstrap.sh from the stacks' outputs
efs:
  fileSystemId: ${FILE_SYSTEM_ID}
  home:
    accessPointId: ${HOMES_ACCESS_POINT}
    rootDirectory: ${HOMES_ROOT}
  shared:
    accessPointId: ${SHARED_ACCESS_POINT}
    rootDirectory: ${SHARED_ROOT}
karpenter:
  clusterName: ${CLUSTER}
  nodeRole: ${NODE_ROLE}
  nodePools:
    gpu-mig:
      warmNodes: ${MIG_WARM_NODES}
EOF
# no --wait: a warm MIG node (MIG_WARM_NODES=1) can take a while to come up; nothing below waits for it
helm upgrade --install platform "$REPO/helm/platform" -n "$NAMESPACE" -f "$OUT/platform.yaml"

# -- 13. NVIDIA GPU Operator (device plugin, MIG manager) ----------------------------------------------------------
step "NVIDIA GPU Operator $GPU_OPERATOR_VERSION"
helm repo add nvidia https://helm.ngc.nvidia.com/nvidia --force-update >/dev/null
helm upgrade --install gpu-operator nvidia/gpu-operator --version "$GPU_OPERATOR_VERSION" -n gpu-operator \
  -f "$REPO/helm/addons/gpu-operator.yaml"
# The AWS Neuron device plugin (Trainium, Inferentia profiles): follow the AWS Neuron documentation for EKS.

# -- 14. The hub -----------------------------------------------------------------------------------------------------
step "helm release jupyterhub (z2jh $Z2JH_VERSION, helm/values.yaml + helm/values-eks-cognito.yaml)"
cat > "$OUT/jupyterhub.yaml" <<EOF
# written by deploy/eks/bootstrap.sh from the stacks' outputs
hub:
  image:
    name: ${REGISTRY}/jupyterhub-ext-hub
    tag: "${IMAGE_TAG}"
  config:
    CognitoAuthenticator:
      domain: ${COGNITO_DOMAIN}
      user_pool_id: ${USER_POOL_ID}
      client_id: ${CLIENT_ID}
      oauth_callback_url: ${OAUTH_CALLBACK_URL}
    ProfilesKubeSpawner:
      courses:
        - name: course
          image: ${REGISTRY}/jupyterhub-ext-course:${IMAGE_TAG}
          folder: .
singleuser:
  image:
    name: ${REGISTRY}/jupyterhub-ext-singleuser
    tag: "${IMAGE_TAG}"
proxy:
  service:
    annotations:
      service.beta.kubernetes.io/aws-load-balancer-ssl-cert: ${CERTIFICATE_ARN}
EOF
helm repo add jupyterhub https://hub.jupyter.org/helm-chart/ --force-update >/dev/null
helm upgrade --install jupyterhub jupyterhub/jupyterhub --version "$Z2JH_VERSION" -n "$NAMESPACE" \
  -f "$REPO/helm/values.yaml" -f "$REPO/helm/values-eks-cognito.yaml" -f "$OUT/jupyterhub.yaml" \
  --timeout 15m --wait
kubectl -n "$NAMESPACE" rollout status deploy/hub

# -- 15. DNS: HUB_HOST to the Network Load Balancer ----------------------------------------------------------------
step "the load balancer's name"
NLB_HOST=""
for _ in $(seq 60); do
  NLB_HOST="$(kubectl -n "$NAMESPACE" get svc proxy-public -o jsonpath='{.status.loadBalancer.ingress[0].hostname}')"
  [ -n "$NLB_HOST" ] && break
  sleep 10
done
[ -n "$NLB_HOST" ] || { echo "the proxy-public Service got no load balancer: kubectl -n $NAMESPACE describe svc proxy-public" >&2; exit 1; }
if [ -n "$HOSTED_ZONE_ID" ]; then
  aws route53 change-resource-record-sets --hosted-zone-id "$HOSTED_ZONE_ID" --change-batch \
    "{\"Changes\": [{\"Action\": \"UPSERT\", \"ResourceRecordSet\": {\"Name\": \"$HUB_HOST\", \"Type\": \"CNAME\", \"TTL\": 300, \"ResourceRecords\": [{\"Value\": \"$NLB_HOST\"}]}}]}" >/dev/null
else
  echo "Create the DNS record yourself: $HUB_HOST CNAME $NLB_HOST" >&2
fi

# -- 16. The first admin ---------------------------------------------------------------------------------------------
if [ -n "$ADMIN_EMAIL" ]; then
  step "Cognito user $ADMIN_EMAIL in hub-admins (Cognito emails a temporary password)"
  aws cognito-idp admin-get-user --user-pool-id "$USER_POOL_ID" --username "$ADMIN_EMAIL" >/dev/null 2>&1 \
    || aws cognito-idp admin-create-user --user-pool-id "$USER_POOL_ID" --username "$ADMIN_EMAIL" \
         --user-attributes Name=email,Value="$ADMIN_EMAIL" Name=email_verified,Value=true >/dev/null
  aws cognito-idp admin-add-user-to-group --user-pool-id "$USER_POOL_ID" --username "$ADMIN_EMAIL" \
    --group-name hub-admins
fi

step "done: https://$HUB_HOST/ (values in $OUT; add users with aws cognito-idp admin-create-user and admin-add-user-to-group)"
