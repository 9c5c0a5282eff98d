"""Validation of the Karpenter custom resources the platform chart renders.

kubernetes-validate knows only built-in kinds. NodePool (karpenter.sh/v1) and EC2NodeClass
(karpenter.k8s.aws/v1) are checked against JSON schemas written for these tests from the Karpenter v1 API
(schemas/*.yaml: types, enums, patterns, required fields, no unknown fields), plus the rules the real CRDs
express in CEL, re-implemented here (label-domain restrictions, operator/value rules, role xor
instanceProfile, alias exclusivity, one root volume).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import jsonschema
import yaml

SCHEMAS = Path(__file__).parent / "schemas"

# Label keys Karpenter lets a NodePool set although their domains are otherwise reserved.
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


class CRDError(ValueError):
    pass


@functools.lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.Draft7Validator:
    name = {"NodePool": "karpenter.sh_v1_NodePool.yaml", "EC2NodeClass": "karpenter.k8s.aws_v1_EC2NodeClass.yaml"}
    schema = yaml.safe_load((SCHEMAS / name[kind]).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def _domain(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _restricted_label(key: str, *, requirement: bool) -> str | None:
    domain = _domain(key)
    if key == "kubernetes.io/hostname":
        return 'label "kubernetes.io/hostname" is restricted'
    if not requirement and key == "karpenter.sh/nodepool":
        return 'label "karpenter.sh/nodepool" is restricted'
    allowed_k8s = _WELL_KNOWN_K8S | ({"node.kubernetes.io/instance-type"} if requirement else set())
    if domain.endswith("kubernetes.io") and key not in allowed_k8s and not (
            domain.endswith("node.kubernetes.io") or domain.endswith("node-restriction.kubernetes.io")):
        return 'label domain "kubernetes.io" is restricted'
    if domain.endswith("k8s.io") and not domain.endswith("kops.k8s.io"):
        return 'label domain "k8s.io" is restricted'
    if domain.endswith("karpenter.sh") and key not in ("karpenter.sh/capacity-type", "karpenter.sh/nodepool"):
        return 'label domain "karpenter.sh" is restricted'
    if domain.endswith("karpenter.k8s.aws") and key not in _WELL_KNOWN_AWS:
        return 'label domain "karpenter.k8s.aws" is restricted'
    return None


def _check_nodepool_rules(obj: dict) -> None:
    name = obj["metadata"]["name"]
    template = obj["spec"]["template"]
    for key in (template.get("metadata") or {}).get("labels", {}) or {}:
        problem = _restricted_label(key, requirement=False)
        if problem:
            raise CRDError(f"NodePool {name}: spec.template.metadata.labels[{key}]: {problem}")
    for i, req in enumerate(template["spec"]["requirements"]):
        at = f"NodePool {name}: spec.template.spec.requirements[{i}]"
        problem = _restricted_label(req["key"], requirement=True)
        if problem:
            raise CRDError(f"{at}.key: {problem}")
        values = req.get("values") or []
        if req["operator"] == "In" and not values:
            raise CRDError(f"{at}: requirements with operator 'In' must have a value defined")
        if req["operator"] in ("Gt", "Lt") and not (len(values) == 1 and re.fullmatch(r"[0-9]+", values[0])):
            raise CRDError(f"{at}: requirements operator 'Gt' or 'Lt' must have a single positive integer value")
        if req["operator"] in ("Exists", "DoesNotExist") and values:
            raise CRDError(f"{at}: operator {req['operator']} takes no values")
        if req["operator"] == "In" and "minValues" in req and len(values) < req["minValues"]:
            raise CRDError(f"{at}: fewer values than minValues")
    for i, budget in enumerate((obj["spec"].get("disruption") or {}).get("budgets") or []):
        if ("schedule" in budget) != ("duration" in budget):
            raise CRDError(f"NodePool {name}: spec.disruption.budgets[{i}]: 'schedule' must be set with 'duration'")


def _check_nodeclass_rules(obj: dict) -> None:
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    if ("role" in spec) == ("instanceProfile" in spec):
        raise CRDError(f"EC2NodeClass {name}: must specify exactly one of ['role', 'instanceProfile']")
    terms = spec["amiSelectorTerms"]
    if any("alias" in t for t in terms):
        if len(terms) != 1 or set(terms[0]) != {"alias"}:
            raise CRDError(f"EC2NodeClass {name}: 'alias' is mutually exclusive with other amiSelectorTerms fields")
        family = terms[0]["alias"].split("@", 1)[0]
        expected = {"al2": "AL2", "al2023": "AL2023", "bottlerocket": "Bottlerocket",
                    "windows2019": "Windows2019", "windows2022": "Windows2022"}[family]
        if spec.get("amiFamily") not in (None, "Custom", expected):
            raise CRDError(f"EC2NodeClass {name}: amiFamily must be {expected!r} or 'Custom' with a {family} alias")
    elif "amiFamily" not in spec:
        raise CRDError(f"EC2NodeClass {name}: must specify amiFamily if amiSelectorTerms does not contain an alias")
    if any("id" in t and len(t) > 1 for t in terms):
        raise CRDError(f"EC2NodeClass {name}: 'id' is mutually exclusive in amiSelectorTerms")
    roots = [m for m in spec.get("blockDeviceMappings") or [] if m.get("rootVolume")]
    if len(roots) > 1:
        raise CRDError(f"EC2NodeClass {name}: must have only one blockDeviceMappings with rootVolume")


def validate(obj: dict) -> None:
    """Raise jsonschema.ValidationError or CRDError for an invalid NodePool or EC2NodeClass."""
    kind = obj.get("kind")
    if kind not in ("NodePool", "EC2NodeClass"):
        raise CRDError(f"no schema for {obj.get('apiVersion')}/{kind}")
    _validator(kind).validate(obj)
    (_check_nodepool_rules if kind == "NodePool" else _check_nodeclass_rules)(obj)
