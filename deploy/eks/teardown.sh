#!/usr/bin/env bash
# Removes what bootstrap.sh made, in the order that lets each part go: the hub and its load balancer first, then the
# platform (Karpenter's nodes drained and gone), the controllers, the stacks whose resources sit in the cluster's VPC,
# the cluster, the IAM the cluster used, the images; the homes and their backups only when you ask, backups last.
#
#   CLUSTER=jupyterhub AWS_REGION=eu-west-1 deploy/eks/teardown.sh
#   DELETE_HOMES=yes DELETE_BACKUPS=yes CLUSTER=... deploy/eks/teardown.sh     # everything, data included
#
# Needs aws, eksctl, kubectl and helm 3.13+ (uninstall --ignore-not-found). Same variables as bootstrap.sh. Never
# run by the tests (tests/deploy/test_eks_bootstrap.py lints it and checks the order of its steps).
set -euo pipefail

CLUSTER="${CLUSTER:-jupyterhub}"
AWS_REGION="${AWS_REGION:-eu-west-1}"
HUB_HOST="${HUB_HOST:-hub.example.com}"
HOSTED_ZONE_ID="${HOSTED_ZONE_ID:-}"
# Data: kept unless you say otherwise. The EFS file system holds every user's home and the shared folder; the
# backup vault holds the only other copy of them.
DELETE_HOMES="${DELETE_HOMES:-no}"
DELETE_BACKUPS="${DELETE_BACKUPS:-no}"

export AWS_DEFAULT_REGION="$AWS_REGION"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAMESPACE=jupyterhub
STACK_KARPENTER="$CLUSTER-karpenter"
STACK_EFS="$CLUSTER-efs"
STACK_BACKUP="$CLUSTER-backup"
STACK_ACM="$CLUSTER-acm"
STACK_COGNITO="$CLUSTER-cognito"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
stack_output() {
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text 2>/dev/null || true
}
stack_exists() { aws cloudformation describe-stacks --stack-name "$1" >/dev/null 2>&1; }
delete_stack() {
  if stack_exists "$1"; then
    step "stack $1"
    aws cloudformation delete-stack --stack-name "$1"
    aws cloudformation wait stack-delete-complete --stack-name "$1"
  fi
}
# wait_until_empty WHAT COMMAND...: poll (20 minutes at most) until COMMAND prints nothing
wait_until_empty() {
  local what="$1"; shift
  for _ in $(seq 120); do
    [ -z "$("$@" 2>/dev/null)" ] && return 0
    sleep 10
  done
  echo "still there after 20 minutes: $what" >&2
  return 1
}

for tool in aws eksctl kubectl helm; do
  command -v "$tool" >/dev/null || { echo "teardown.sh needs $tool on PATH" >&2; exit 1; }
done
AWS_ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text)"
HAVE_CLUSTER=no
if eksctl get cluster --name "$CLUSTER" --region "$AWS_REGION" >/dev/null 2>&1; then
  HAVE_CLUSTER=yes
  aws eks update-kubeconfig --name "$CLUSTER" --region "$AWS_REGION"
fi
FILE_SYSTEM_ID="$(stack_output "$STACK_EFS" FileSystemId)"
BACKUP_VAULT="$(stack_output "$STACK_BACKUP" BackupVaultName)"

if [ "$HAVE_CLUSTER" = yes ]; then
  # -- 1. DNS record pointing at the load balancer (while its name can still be read) ------------------------------
  NLB_HOST="$(kubectl -n "$NAMESPACE" get svc proxy-public -o jsonpath='{.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)"
  if [ -n "$HOSTED_ZONE_ID" ] && [ -n "$NLB_HOST" ]; then
    step "DNS record $HUB_HOST"
    aws route53 change-resource-record-sets --hosted-zone-id "$HOSTED_ZONE_ID" --change-batch \
      "{\"Changes\": [{\"Action\": \"DELETE\", \"ResourceRecordSet\": {\"Name\": \"$HUB_HOST\", \"Type\": \"CNAME\", \"TTL\": 300, \"ResourceRecords\": [{\"Value\": \"$NLB_HOST\"}]}}]}" >/dev/null \
      || echo "no CNAME $HUB_HOST -> $NLB_HOST to delete" >&2
  fi

  # -- 2. The hub: user servers first (the hub made them, not helm), then the release -----------------------------
  step "user servers and the jupyterhub release"
  kubectl -n "$NAMESPACE" delete pods -l component=singleuser-server --wait=true --ignore-not-found
  # The hub database (PVC hub-db-dir) goes with the release: copy it first if you want it (docs/deploy-eks.md, 10).
  helm uninstall jupyterhub -n "$NAMESPACE" --wait --ignore-not-found

  # -- 3. The load balancers: the controller deletes the NLB (or ALB) once the Service (Ingress) is gone; it must
  #       still be running for that, and they must be gone before the VPC can be deleted -------------------------
  step "load balancers of the cluster (deleted by the AWS Load Balancer Controller)"
  wait_until_empty "load balancers tagged elbv2.k8s.aws/cluster=$CLUSTER" \
    aws resourcegroupstaggingapi get-resources --resource-type-filters elasticloadbalancing:loadbalancer \
      --tag-filters "Key=elbv2.k8s.aws/cluster,Values=$CLUSTER" --query 'ResourceTagMappingList[].ResourceARN' \
      --output text

  # -- 4. The platform: NodePools and EC2NodeClasses go, so Karpenter drains and terminates its nodes ------------
  step "the platform release; Karpenter's nodes drained and terminated"
  helm uninstall platform -n "$NAMESPACE" --wait --ignore-not-found
  # Deleting a NodePool deletes its NodeClaims: Karpenter drains each node and terminates the instance. Wait for it
  # while Karpenter still runs, or the instances stay behind.
  wait_until_empty "Karpenter NodeClaims" kubectl get nodeclaims -o name
  wait_until_empty "Karpenter EC2NodeClasses" kubectl get ec2nodeclasses -o name
  # PVCs efs-home and efs-shared carry helm.sh/resource-policy: keep, and their PVs reclaimPolicy Retain: both
  # outlive the release. Deleting them never deletes files (the data is in EFS until the file system is deleted):
  kubectl -n "$NAMESPACE" delete pvc efs-home efs-shared --ignore-not-found
  kubectl delete pv -l jupyterhub-ext/volume --ignore-not-found

  # -- 5. The controllers --------------------------------------------------------------------------------------------
  step "GPU Operator, Karpenter, AWS Load Balancer Controller"
  helm uninstall gpu-operator -n gpu-operator --wait --ignore-not-found
  helm uninstall karpenter -n kube-system --wait --ignore-not-found
  helm uninstall aws-load-balancer-controller -n kube-system --wait --ignore-not-found
fi

# -- 6. Stacks in or in front of the cluster's VPC: the mount targets (and their security group, which names the
#       cluster security group) must go before eksctl can delete the VPC --------------------------------------------
# The file system itself is retained by efs.yaml's DeletionPolicy; the access points go with the stack.
delete_stack "$STACK_EFS"
# The certificate: no longer in use once the load balancer is gone.
delete_stack "$STACK_ACM"
# The user pool refuses deletion while DeletionProtection is ACTIVE (cognito.yaml's default): switch it off first
# (the other parameters keep their values). This deletes every Cognito account: export them first if you need them.
if stack_exists "$STACK_COGNITO"; then
  step "Cognito deletion protection off"
  aws cloudformation deploy --stack-name "$STACK_COGNITO" --template-file "$HERE/cognito.yaml" \
    --no-fail-on-empty-changeset --parameter-overrides DeletionProtection=INACTIVE
fi
delete_stack "$STACK_COGNITO"

# -- 7. The cluster: node group, add-ons, pod identity associations, the VPC -----------------------------------------
if [ "$HAVE_CLUSTER" = yes ]; then
  step "EKS cluster $CLUSTER (about 15 minutes)"
  eksctl delete cluster --name "$CLUSTER" --region "$AWS_REGION" --wait
fi

# -- 8. Karpenter's IAM: after the cluster, so no node or controller still uses it ------------------------------------
delete_stack "$STACK_KARPENTER"

# -- 9. Images ----------------------------------------------------------------------------------------------------------
step "ECR repositories"
for repository in jupyterhub-ext-hub jupyterhub-ext-singleuser jupyterhub-ext-course; do
  aws ecr delete-repository --repository-name "$repository" --force >/dev/null 2>&1 \
    && echo "deleted $repository" >&2 || true
done

# -- 10. The backup plan stops; the vault and its recovery points stay (backup.yaml's DeletionPolicy) -------------
delete_stack "$STACK_BACKUP"

# -- 11. The homes --------------------------------------------------------------------------------------------------
if [ -n "$FILE_SYSTEM_ID" ] && [ "$FILE_SYSTEM_ID" != None ]; then
  if [ "$DELETE_HOMES" = yes ]; then
    step "EFS file system $FILE_SYSTEM_ID: every home and the shared folder, deleted"
    aws efs delete-file-system --file-system-id "$FILE_SYSTEM_ID"
  else
    echo "Kept: EFS file system $FILE_SYSTEM_ID (every home). DELETE_HOMES=yes deletes it." >&2
  fi
fi

# -- 12. Backups, last -----------------------------------------------------------------------------------------------
# WARNING: after this, no copy of anyone's home exists anywhere. Restore one first if you may need it
# (aws backup start-restore-job), or keep the vault: it costs only the storage of its recovery points.
if [ -n "$BACKUP_VAULT" ] && [ "$BACKUP_VAULT" != None ]; then
  if [ "$DELETE_BACKUPS" = yes ]; then
    step "WARNING: deleting every recovery point in vault $BACKUP_VAULT, then the vault"
    points="$(aws backup list-recovery-points-by-backup-vault --backup-vault-name "$BACKUP_VAULT" \
      --query 'RecoveryPoints[].RecoveryPointArn' --output text)"
    for point in $points; do
      if [ "$point" != None ]; then
        aws backup delete-recovery-point --backup-vault-name "$BACKUP_VAULT" --recovery-point-arn "$point"
      fi
    done
    wait_until_empty "recovery points in $BACKUP_VAULT" \
      aws backup list-recovery-points-by-backup-vault --backup-vault-name "$BACKUP_VAULT" \
        --query 'RecoveryPoints[].RecoveryPointArn' --output text
    aws backup delete-backup-vault --backup-vault-name "$BACKUP_VAULT"
  else
    echo "Kept: backup vault $BACKUP_VAULT with its recovery points. DELETE_BACKUPS=yes deletes them, last." >&2
  fi
fi

step "done (account $AWS_ACCOUNT_ID, region $AWS_REGION, cluster $CLUSTER)"
