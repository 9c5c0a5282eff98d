"""The emulated cluster shaped like helm/platform: its Karpenter NodePools and its EFS volumes.

Pools come from ``helm/platform/values.yaml`` (``karpenter.nodePools``): names, the user-node labels plus each
pool's labels, taints, and one representative instance type per pool chosen from its requirements; NVIDIA
time-slicing (``nvidia.com/device-plugin.config: time-sliced`` -> ``nvidia.timeSlicing.replicas``) and MIG
(``nvidia.com/mig.config: all-<profile>``) shape the advertised GPU resources; ``warmNodes`` are nodes that
exist from the start. The EFS home and shared claims mirror ``templates/efs-volumes.yaml``: static PVs on
access points whose roots are owned 1000:100 and whose POSIX user (1000:100) owns everything created through
them, including the per-user subPath directories the kubelet makes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .nodes import INSTANCE_TYPES, Accelerators, NodePool

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_VALUES = ROOT / "helm" / "platform" / "values.yaml"


def load_values(path: Path | str = PLATFORM_VALUES) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def instance_types_for(requirements: list[dict]) -> list[str]:
    """The modelled instance types a pool's requirements allow, smallest first (Karpenter's candidates)."""
    def allowed(t: str) -> bool:
        family = t.split(".")[0]
        for r in requirements or []:
            key, op, vals = r.get("key"), r.get("operator"), r.get("values") or []
            if key == "node.kubernetes.io/instance-type":
                value = t
            elif key == "karpenter.k8s.aws/instance-family":
                value = family
            elif key == "karpenter.k8s.aws/instance-category":
                value = family[0]
            elif key == "karpenter.k8s.aws/instance-generation":
                value = "".join(ch for ch in family[1:] if ch.isdigit())[:1]
            else:
                continue
            if op == "In" and value not in vals or op == "NotIn" and value in vals:
                return False
            if op in ("Gt", "Lt") and not (value.isdigit() and (int(value) > int(vals[0]) if op == "Gt"
                                                                 else int(value) < int(vals[0]))):
                return False
        return True
    types = [t for t in INSTANCE_TYPES if "_" not in t and allowed(t)]
    return sorted(types, key=lambda t: (INSTANCE_TYPES[t]["cpu"], INSTANCE_TYPES[t]["memory"])) or ["m6i.xlarge"]


def pools_from_platform(values: dict | None = None, delay: float = 0.2, warm_default: int = 1,
                        **overrides) -> list[NodePool]:
    """NodePools as helm/platform defines them. ``warm_default`` stands in for a ``warmNodes: null`` that the
    chart requires operators to set (gpu-mig). ``overrides``: {pool name: {attribute: value}}."""
    values = values if values is not None else load_values()
    karp = values["karpenter"]
    nvidia = values.get("nvidia", {}).get("devicePlugin", {})
    slicing = nvidia.get("timeSlicing", {})
    pools = []
    for name, spec in karp["nodePools"].items():
        if not spec.get("enabled", True):
            continue
        labels = {**(karp.get("userNodeLabels") or {}), **(spec.get("labels") or {})}
        acc = Accelerators()
        if labels.get("nvidia.com/device-plugin.config") == "time-sliced":
            acc.gpu_replicas = int(slicing.get("replicas", 1))
            acc.gpu_rename_shared = bool(slicing.get("renameByDefault"))
        mig = labels.get("nvidia.com/mig.config", "")
        if mig.startswith("all-") and mig != "all-disabled":
            acc.mig_profile = mig[len("all-"):]
        for req in spec.get("requirements") or []:  # single-valued requirements label the node
            if req.get("operator") == "In" and len(req.get("values") or []) == 1 and \
                    req["key"] in ("karpenter.sh/capacity-type", "kubernetes.io/arch"):
                labels.setdefault(req["key"], req["values"][0])
        warm = spec.get("warmNodes")
        types = instance_types_for(spec.get("requirements"))
        pool = NodePool(name=name, instance_type=types[0], instance_types=types, labels=labels,
                        taints=[dict(t) for t in spec.get("taints") or []], accelerators=acc, delay=delay,
                        initial=warm_default if warm is None else int(warm))
        for k, v in overrides.get(name, {}).items():
            setattr(pool, k, v)
        pools.append(pool)
    return pools


def efs_objects(namespace: str, values: dict | None = None, fs_id: str = "fs-emulated") -> list[tuple[str, dict]]:
    """(plural, manifest) pairs for the static EFS PVs/PVCs of helm/platform (home and shared)."""
    values = values if values is not None else load_values()
    efs = values["efs"]
    out = []
    for what in ("home", "shared"):
        v = efs.get(what) or {}
        if not v.get("enabled"):
            continue
        root = v["rootDirectory"]  # the access point's root directory
        pv_name = f"{namespace}-{v['pvcName']}"
        ap = v.get("accessPointId") or f"fsap-{what}"
        out.append(("persistentvolumes", {
            "metadata": {"name": pv_name, "labels": {"jupyterhub-ext/volume": what},
                         "annotations": {"harness.local/access-point-root": root, "harness.local/root-uid": "1000",
                                         "harness.local/root-gid": "100", "harness.local/root-mode": "750",
                                         "harness.local/posix-user": "1000:100"}},
            "spec": {"capacity": {"storage": v.get("capacity", "1Ti")}, "volumeMode": "Filesystem",
                     "accessModes": ["ReadWriteMany"], "persistentVolumeReclaimPolicy": efs.get("reclaimPolicy"),
                     "storageClassName": efs["storageClass"]["name"],
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                                  "name": v["pvcName"]},
                     "csi": {"driver": "efs.csi.aws.com", "volumeHandle": f"{fs_id}::{ap}"}},
        }))
        out.append(("persistentvolumeclaims", {
            "metadata": {"name": v["pvcName"], "namespace": namespace, "labels": {"jupyterhub-ext/volume": what}},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": efs["storageClass"]["name"],
                     "volumeName": pv_name, "resources": {"requests": {"storage": v.get("capacity", "1Ti")}}},
        }))
    return out
