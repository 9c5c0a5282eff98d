"""Validation of the Karpenter custom resources the platform chart renders.

kubernetes-validate knows only built-in kinds. NodePool (karpenter.sh/v1) and EC2NodeClass (karpenter.k8s.aws/v1)
are checked against JSON schemas written for these tests (schemas/*.yaml: types, enums, patterns, required fields,
no unknown fields), plus the CRDs' x-kubernetes-validations (CEL) rules, re-implemented here with upstream's
messages, plus what Karpenter's RuntimeValidate refuses although the API server accepts it (a NodePool that fails
it is never Ready and launches nothing).

Checked against upstream on 2026-12-04 (read, not copied; the schema files' headers say the same):
  aws/karpenter-provider-aws pkg/apis/crds/karpenter.sh_nodepools.yaml @ 004b39bdf7db80ecf9d191f8027a68723435238e
  aws/karpenter-provider-aws pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml
      @ 0276ddd6409fe26119a9489ea92ab11d808d08f2 (Karpenter 1.0)
  aws/karpenter-provider-aws charts/karpenter-crd/templates/karpenter.k8s.aws_ec2nodeclasses.yaml
      @ 01b194ba58986cda45d486ea2a7b0424a718d96f (a later 1.x)
  kubernetes-sigs/karpenter pkg/apis/crds/karpenter.sh_nodepools.yaml @ 0011ad2956efb15f2cee845e1fbe88387bc243a2
  kubernetes-sigs/karpenter pkg/apis/v1/nodepool_validation.go @ 26afadd5af189b6ff5c5c4773f2f489faa7189a4
  kubernetes-sigs/karpenter pkg/apis/v1/nodeclaim_validation.go @ 12daf8546994087ddc9eea4f5cbfef2cfde58440
Where the EC2NodeClass versions differ, a value either refuses is refused.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import jsonschema
import yaml

SCHEMAS = Path(__file__).parent / "schemas"

# The CRD's allow-lists for otherwise restricted label domains (labels; requirements add instance-type).
_WELL_KNOWN_K8S = {"beta.kubernetes.io/instance-type", "failure-domain.beta.kubernetes.io/region",
                   "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "failure-domain.beta.kubernetes.io/zone",
                   "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "kubernetes.io/arch",
                   "kubernetes.io/os", "node.kubernetes.io/windows-build"}
_WELL_KNOWN_AWS = {"karpenter.k8s.aws/ec2nodeclass", "karpenter.k8s.aws/instance-encryption-in-transit-supported",
                   "karpenter.k8s.aws/instance-category", "karpenter.k8s.aws/instance-hypervisor",
                   "karpenter.k8s.aws/instance-family", "karpenter.k8s.aws/instance-generation",
                   "karpenter.k8s.aws/instance-local-nvme", "karpenter.k8s.aws/instance-size",
                   "karpenter.k8s.aws/instance-cpu", "karpenter.k8s.aws/instance-cpu-manufacturer",
                   "karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz", "karpenter.k8s.aws/instance-memory",
                   "karpenter.k8s.aws/instance-ebs-bandwidth", "karpenter.k8s.aws/instance-network-bandwidth",
                   "karpenter.k8s.aws/instance-gpu-name", "karpenter.k8s.aws/instance-gpu-manufacturer",
                   "karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-memory",
                   "karpenter.k8s.aws/instance-accelerator-name",
                   "karpenter.k8s.aws/instance-accelerator-manufacturer",
                   "karpenter.k8s.aws/instance-accelerator-count"}
_AMI_FAMILIES = {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket",
                 "windows2019": "Windows2019", "windows2022": "Windows2022"}
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


class CRDError(ValueError):
    pass


@functools.lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.Draft7Validator:
    name = {"NodePool": "karpenter.sh_v1_NodePool.yaml", "EC2NodeClass": "karpenter.k8s.aws_v1_EC2NodeClass.yaml"}
    schema = yaml.safe_load((SCHEMAS / name[kind]).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def _domain(key: str) -> str:
    # CEL key.find("^([^/]+)"): everything before the first "/" - the WHOLE key when it has none, so a bare
    # "example.k8s.io" is in the k8s.io domain.
    return key.split("/", 1)[0]


def _restricted_label(key: str, *, requirement: bool) -> str | None:
    """The CRD's label-domain rules, for template labels and (requirement=True) requirement keys."""
    domain = _domain(key)
    allowed_k8s = _WELL_KNOWN_K8S | ({"node.kubernetes.io/instance-type"} if requirement else set())
    if not (key in allowed_k8s or domain.endswith("node.kubernetes.io")
            or domain.endswith("node-restriction.kubernetes.io") or not domain.endswith("kubernetes.io")):
        return 'label domain "kubernetes.io" is restricted'
    if not (domain.endswith("kops.k8s.io") or not domain.endswith("k8s.io")):
        return 'label domain "k8s.io" is restricted'
    if not (key in ("karpenter.sh/capacity-type", "karpenter.sh/nodepool") or not domain.endswith("karpenter.sh")):
        return 'label domain "karpenter.sh" is restricted'
    # both lists (labels, requirements) restrict it: Karpenter sets it itself
    if key == "karpenter.sh/nodepool":
        return 'label "karpenter.sh/nodepool" is restricted'
    if key == "kubernetes.io/hostname":
        return 'label "kubernetes.io/hostname" is restricted'
    if not (key in _WELL_KNOWN_AWS or not domain.endswith("karpenter.k8s.aws")):
        return 'label domain "karpenter.k8s.aws" is restricted'
    return None


def _qualified_name(value: str) -> str | None:
    """Runtime (IsQualifiedName): the lengths the CRD's pattern does not check."""
    prefix, slash, name = value.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return f"{value!r} is not a qualified name: its prefix must be a DNS subdomain of at most 253 characters"
    if not (0 < len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name)):
        return f"{value!r} is not a qualified name: its name part must be 1-63 alphanumeric, '-', '_' or '.'"
    return None


def _cel_int(value: str) -> int | None:
    """CEL int(string): Go's strconv.ParseInt(value, 10, 64); None where CEL raises (the rule then fails)."""
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        return None
    number = int(value)
    return number if -2**63 <= number < 2**63 else None


def _check_nodepool_rules(obj: dict) -> None:
    name = obj["metadata"]["name"]
    template = obj["spec"]["template"]
    for key in (template.get("metadata") or {}).get("labels", {}) or {}:
        at = f"NodePool {name}: spec.template.metadata.labels[{key}]"
        problem = _restricted_label(key, requirement=False) or _qualified_name(key)
        if problem:
            raise CRDError(f"{at}: {problem}")
    for i, req in enumerate(template["spec"]["requirements"]):
        at = f"NodePool {name}: spec.template.spec.requirements[{i}]"
        problem = _restricted_label(req["key"], requirement=True) or _qualified_name(req["key"])
        if problem:
            raise CRDError(f"{at}.key: {problem}")
        # CEL reads x.values: a missing list is an error there, so the rule fails as for an empty one
        values = req.get("values") or []
        if req["operator"] == "In" and not values:
            raise CRDError(f"{at}: requirements with operator 'In' must have a value defined")
        if req["operator"] in ("Gt", "Lt"):
            number = _cel_int(values[0]) if len(values) == 1 else None
            if number is None or number < 0:
                raise CRDError(f"{at}: requirements operator 'Gt' or 'Lt' must have a single positive integer value")
        if req["operator"] == "In" and "minValues" in req and len(values) < req["minValues"]:
            raise CRDError(f"{at}: requirements with 'minValues' must have at least that many values specified in "
                           "the 'values' field")
    # runtime (validateTaints): keys and values are qualified names; one taint per key and effect, across
    # taints and startupTaints
    seen = set()
    for field in ("taints", "startupTaints"):
        for i, taint in enumerate(template["spec"].get(field) or []):
            at = f"NodePool {name}: spec.template.spec.{field}[{i}]"
            for part in ("key", "value"):
                problem = taint.get(part) and _qualified_name(taint[part])
                if problem:
                    raise CRDError(f"{at}.{part}: {problem}")
            pair = (taint["key"], taint["effect"])
            if pair in seen:
                raise CRDError(f"{at}: duplicate taint Key/Effect pair {pair[0]}={pair[1]}")
            seen.add(pair)
    for i, budget in enumerate((obj["spec"].get("disruption") or {}).get("budgets") or []):
        if ("schedule" in budget) != ("duration" in budget):
            raise CRDError(f"NodePool {name}: spec.disruption.budgets[{i}]: 'schedule' must be set with 'duration'")


def _check_nodeclass_rules(obj: dict) -> None:
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    at = f"EC2NodeClass {name}"
    if ("role" in spec) == ("instanceProfile" in spec):
        raise CRDError(f"{at}: must specify exactly one of ['role', 'instanceProfile']")
    terms = spec["amiSelectorTerms"]
    if any("id" in t and len(t) > 1 for t in terms):
        raise CRDError(f"{at}: 'id' is mutually exclusive, cannot be set with a combination of other fields in "
                       "amiSelectorTerms")
    aliases = [t["alias"] for t in terms if "alias" in t]
    if aliases:
        if any(len(t) > 1 for t in terms if "alias" in t):
            raise CRDError(f"{at}: 'alias' is mutually exclusive, cannot be set with a combination of other fields "
                           "in amiSelectorTerms")
        if len(terms) != 1:
            raise CRDError(f"{at}: 'alias' is mutually exclusive, cannot be set with a combination of other "
                           "amiSelectorTerms")
        family, version = aliases[0].split("@", 1)
        if family.startswith("windows") and version != "latest":   # the later version's rule
            raise CRDError(f"{at}: windows families may only specify version 'latest'")
        if spec.get("amiFamily") not in (None, "Custom", _AMI_FAMILIES[family]):
            raise CRDError(f"{at}: if set, amiFamily must be {_AMI_FAMILIES[family]!r} or 'Custom' when using an "
                           f"{family} alias")
    elif "amiFamily" not in spec:
        raise CRDError(f"{at}: must specify amiFamily if amiSelectorTerms does not contain an alias")
    # Upstream writes these two as !self.all(...): a list is refused only when EVERY term mixes the fields.
    # Mirrored as written, so ours refuses exactly what the API server refuses.
    subnets = spec["subnetSelectorTerms"]
    if all("id" in t and "tags" in t for t in subnets):
        raise CRDError(f"{at}: 'id' is mutually exclusive, cannot be set with a combination of other fields in "
                       "subnetSelectorTerms")
    groups = spec["securityGroupSelectorTerms"]
    if all("id" in t and ("tags" in t or "name" in t) for t in groups):
        raise CRDError(f"{at}: 'id' is mutually exclusive, cannot be set with a combination of other fields in "
                       "securityGroupSelectorTerms")
    if all("name" in t and ("tags" in t or "id" in t) for t in groups):
        raise CRDError(f"{at}: 'name' is mutually exclusive, cannot be set with a combination of other fields in "
                       "securityGroupSelectorTerms")
    roots = [m for m in spec.get("blockDeviceMappings") or [] if m.get("rootVolume")]
    if len(roots) > 1:
        raise CRDError(f"{at}: must have only one blockDeviceMappings with rootVolume")


def validate(obj: dict) -> None:
    """Raise jsonschema.ValidationError or CRDError for an invalid NodePool or EC2NodeClass."""
    kind = obj.get("kind")
    if kind not in ("NodePool", "EC2NodeClass"):
        raise CRDError(f"no schema for {obj.get('apiVersion')}/{kind}")
    _validator(kind).validate(obj)
    (_check_nodepool_rules if kind == "NodePool" else _check_nodeclass_rules)(obj)
