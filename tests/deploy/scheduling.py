"""Could this pod run on a node of that NodePool? A model of Karpenter and the device plugins, judged by the
emulated kube-scheduler.

From the objects helm/platform renders (NodePools, the device-plugin ConfigMap, warm-node Deployments) and
helm/addons/gpu-operator.yaml, it derives, for every instance type a pool may launch, the node that would
join the cluster: its labels (Karpenter's well-known ones, the pool's template labels, karpenter.sh/nodepool),
its taints, its allocatable CPU and memory, and the extended resources its device plugin advertises:

* NVIDIA nodes (the GPU Operator, configured by the ConfigMap key the node's nvidia.com/device-plugin.config
  label selects, default ``default``): MIG slices ``nvidia.com/mig-<profile>`` when the MIG strategy is mixed
  or single and the node's ``nvidia.com/mig.config`` label is ``all-<profile>`` for a profile its GPU model
  supports (seven 1g.5gb per A100-40GB); otherwise time-slicing replicas of ``nvidia.com/gpu`` (or
  ``nvidia.com/gpu.shared`` when renamed); otherwise one ``nvidia.com/gpu`` per GPU. Nothing at all when the
  operator's DaemonSets do not tolerate the node's taints or the node lacks ``nvidia.com/gpu.present=true``.
* Neuron nodes (AWS Neuron device plugin): ``aws.amazon.com/neuron`` per device, ``aws.amazon.com/neuroncore``
  per core; nothing when its DaemonSet does not tolerate the node's taints.

Whether a pod fits such a node is the emulated kube-scheduler's decision (tests/harness/scheduler.py: node
selector and required node affinity, NoSchedule/NoExecute taints, requests against allocatable), told in more
detail than its FailedScheduling message. Karpenter only launches a node for a pending pod when it knows every
extended resource the pod asks for (kubernetes-sigs/karpenter#751): otherwise the pool needs a warm node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from jupyterhub_ext.catalog.hardware import MIG_PROFILES
from tests.harness.scheduler import (filter_node, insufficient, node_affinity_matches, node_allocatable, pod_requests,
                                     requirement_matches, untolerated_taints)

from .instances import AKS_LABELS, AKS_NODE, INSTANCES, Instance

ADDONS = Path(__file__).resolve().parents[2] / "helm" / "addons"

# Extended resources Karpenter's AWS provider knows per instance type (it can launch a node for them).
KARPENTER_KNOWN = {"nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore", "amd.com/gpu",
                   "habana.ai/gaudi", "vpc.amazonaws.com/efa"}
# The AWS Neuron device plugin DaemonSet (k8s-neuron-device-plugin.yml, docs/deploy-eks.md) tolerates these.
NEURON_PLUGIN_TOLERATIONS = [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                             {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}]


@dataclass
class Node:
    pool: str
    instance: str
    labels: dict[str, str]
    taints: list[dict]
    allocatable: dict[str, float]  # cpu in cores, memory in bytes, extended resources in devices
    warm: bool = False            # the pool keeps nodes around (placeholder pods)
    notes: list[str] = field(default_factory=list)

    def manifest(self) -> dict:
        """The node as the API shows it (allocatable cpu in whole millicores), for the scheduler's filters."""
        allocatable = {k: f"{round(v * 1000)}m" if k == "cpu" else str(round(v)) for k, v in self.allocatable.items()}
        return {"metadata": {"name": f"{self.pool}-{self.instance}", "labels": dict(self.labels)},
                "spec": {"taints": list(self.taints)}, "status": {"allocatable": allocatable}}


# -- matching ------------------------------------------------------------------------------------------

def _affinity_detail(pod: dict, node: Node) -> str:
    spec = pod["spec"]
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            return f"node selector {key}={value} (node has {node.labels.get(key)!r})"
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    return f"required node affinity {required} does not match the node's labels"


def why_not(pod: dict, node: Node) -> str | None:
    """None if the emulated scheduler's filters let the pod run on the node, else every reason they refuse it."""
    manifest = node.manifest()
    refused, _ = filter_node(pod, manifest, None)
    if not refused:
        return None
    reasons = []
    if not node_affinity_matches(pod, manifest):
        reasons.append(_affinity_detail(pod, node))
    taints = untolerated_taints(pod["spec"].get("tolerations") or [], node.taints)
    if taints:
        reasons.append(f"untolerated taints {taints}")
    requests, allocatable = pod_requests(pod), node_allocatable(manifest)
    for reason in insufficient(pod, manifest, None):
        name = reason.removeprefix("Insufficient ")
        reasons.append(f"insufficient {name}: requests {float(requests[name]):g}, node offers "
                       f"{float(allocatable.get(name, 0)):g}" if name != reason else reason)
    return "; ".join(reasons) or "; ".join(refused)


def provisionable(pod: dict, node: Node) -> str | None:
    """None if Karpenter would launch this node for the pending pod (or one is kept warm), else why not."""
    unknown = sorted(k for k in pod_requests(pod) if "/" in k and k not in KARPENTER_KNOWN)
    if unknown and not node.warm:
        return (f"Karpenter cannot launch nodes for {unknown} (kubernetes-sigs/karpenter#751) and pool "
                f"{node.pool!r} keeps no warm node")
    return None


# -- the nodes of a rendered platform -------------------------------------------------------------------

def gpu_operator_values() -> dict:
    """helm/addons/gpu-operator.yaml: the GPU Operator's values."""
    return yaml.safe_load((ADDONS / "gpu-operator.yaml").read_text())


def _device_plugin_configs(objects: list[dict], operator: dict) -> dict[str, dict]:
    name = operator["devicePlugin"]["config"]["name"]
    cms = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    if not cms:
        return {}
    return {key: yaml.safe_load(text) for key, text in cms[0]["data"].items()}


def _nvidia_resources(inst: Instance, labels: dict, taints: list[dict], objects: list[dict], notes: list[str],
                      operator: dict):
    if untolerated_taints(operator.get("daemonsets", {}).get("tolerations", []), taints):
        notes.append("GPU Operator DaemonSets do not tolerate the node's taints: no device plugin")
        return {}
    # The operator manages nodes labelled nvidia.com/gpu.present=true; its node-feature-discovery sets the
    # label from the PCI vendor id unless it is turned off (then only a label on the node does).
    if labels.get("nvidia.com/gpu.present") != "true" and not (operator.get("nfd") or {}).get("enabled", True):
        notes.append("no nvidia.com/gpu.present=true label and NFD off: the GPU Operator ignores the node")
        return {}
    configs = _device_plugin_configs(objects, operator)
    key = labels.get("nvidia.com/device-plugin.config", operator["devicePlugin"]["config"]["default"])
    config = configs.get(key)
    if config is None:
        notes.append(f"device-plugin config {key!r} is not in the ConfigMap: the plugin does not start")
        return {}
    strategy = (config.get("flags") or {}).get("migStrategy", "none")
    mig = labels.get("nvidia.com/mig.config", "all-disabled")
    if strategy in ("single", "mixed") and mig.startswith("all-") and mig != "all-disabled":
        profile = mig[len("all-"):]
        if profile not in MIG_PROFILES.get(inst.gpu_model, ()):
            notes.append(f"{inst.gpu_model} has no MIG profile {profile}: the MIG manager fails")
            return {}
        slices = 7 // int(profile.split("g")[0])
        name = f"nvidia.com/mig-{profile}" if strategy == "mixed" else "nvidia.com/gpu"
        return {name: float(inst.gpus * slices)}
    sharing = ((config.get("sharing") or {}).get("timeSlicing") or {})
    for res in sharing.get("resources") or []:
        if res["name"] == "nvidia.com/gpu":
            renamed = res.get("rename") or ("nvidia.com/gpu.shared" if sharing.get("renameByDefault") else None)
            return {renamed or "nvidia.com/gpu": float(inst.gpus * int(res["replicas"]))}
    return {"nvidia.com/gpu": float(inst.gpus)}


def _neuron_resources(inst: Instance, taints: list[dict], notes: list[str]):
    if untolerated_taints(NEURON_PLUGIN_TOLERATIONS, taints):
        notes.append("the Neuron device plugin does not tolerate the node's taints")
        return {}
    return {"aws.amazon.com/neuron": float(inst.neuron_devices), "aws.amazon.com/neuroncore": float(inst.neuron_cores)}


def _warm_pools(objects: list[dict]) -> set[str]:
    pools = set()
    for o in objects:
        if o["kind"] == "Deployment" and o["spec"].get("replicas", 1) >= 1:
            pool = (o["spec"]["template"]["spec"].get("nodeSelector") or {}).get("karpenter.sh/nodepool")
            if pool:
                pools.add(pool)
    return pools


def nodes_of(objects: list[dict], gpu_operator: dict | None = None) -> list[Node]:
    """Every node shape the rendered platform's NodePools can bring up (with helm/addons/gpu-operator.yaml, or
    the given GPU Operator values)."""
    operator = gpu_operator if gpu_operator is not None else gpu_operator_values()
    warm = _warm_pools(objects)
    nodes = []
    for pool in (o for o in objects if o["kind"] == "NodePool"):
        name = pool["metadata"]["name"]
        template = pool["spec"]["template"]
        requirements = template["spec"]["requirements"]
        taints = template["spec"].get("taints") or []
        for inst in INSTANCES:
            labels = {**inst.labels, "karpenter.sh/capacity-type": "on-demand"}
            # a requirement on a key the instance does not define becomes a label when it has one value
            for req in requirements:
                if req["key"] not in labels and req["operator"] == "In" and len(req["values"]) == 1:
                    labels[req["key"]] = req["values"][0]
            if not all(requirement_matches(r, labels) for r in requirements):
                continue
            labels.update((template.get("metadata") or {}).get("labels") or {})
            labels["karpenter.sh/nodepool"] = name
            labels["karpenter.k8s.aws/ec2nodeclass"] = template["spec"]["nodeClassRef"]["name"]
            notes: list[str] = []
            allocatable = inst.allocatable()
            if inst.gpus:
                allocatable.update(_nvidia_resources(inst, labels, taints, objects, notes, operator))
            if inst.neuron_devices:
                allocatable.update(_neuron_resources(inst, taints, notes))
            nodes.append(Node(name, inst.name, labels, taints, allocatable, warm=name in warm, notes=notes))
    return nodes


def aks_nodes() -> list[Node]:
    """The AKS classroom's default node pool (docs/deploy-aks.md): no taints, no accelerators."""
    return [Node("nodepool1", AKS_NODE.name, dict(AKS_LABELS), [], AKS_NODE.allocatable(), warm=True)]


def placements(pod: dict, nodes: list[Node]) -> tuple[list[Node], dict[str, str]]:
    """(nodes the pod fits, {pool/instance: reason} for the others)."""
    fits, reasons = [], {}
    for node in nodes:
        reason = why_not(pod, node)
        if reason is None:
            fits.append(node)
        else:
            reasons[f"{node.pool}/{node.instance}"] = reason + (f" [{'; '.join(node.notes)}]" if node.notes else "")
    return fits, reasons
