"""Modelled nodes and Karpenter-style node pools.

A node is a plain core/v1 Node dict: labels, taints, capacity and allocatable (cpu, memory, pods and extended
resources: ``nvidia.com/gpu``, ``nvidia.com/gpu.shared``, ``nvidia.com/mig-<profile>``, ``aws.amazon.com/neuron``,
``aws.amazon.com/neuroncore``). Allocatable is capacity less the kubelet's reservations, computed with the EKS
AMI formulas, so that a profile asking for a whole node's memory does not fit, as on a real cluster.
"""

from __future__ import annotations

import copy
import os
import uuid
from dataclasses import dataclass, field
from fractions import Fraction

from .quantity import format_quantity, parse_quantity

GIB = 2**30
MIB = 2**20

# EC2 instance types our catalogs target: vCPU, memory, GPUs (+ product) or Neuron devices (+ cores), max pods.
INSTANCE_TYPES: dict[str, dict] = {
    "m6i.large": {"cpu": 2, "memory": "8Gi", "pods": 29},
    "m6i.xlarge": {"cpu": 4, "memory": "16Gi", "pods": 58},
    "m6i.2xlarge": {"cpu": 8, "memory": "32Gi", "pods": 58},
    "m6i.4xlarge": {"cpu": 16, "memory": "64Gi", "pods": 234},
    "r6i.2xlarge": {"cpu": 8, "memory": "64Gi", "pods": 58},
    "g4dn.xlarge": {"cpu": 4, "memory": "16Gi", "pods": 29, "gpus": 1, "product": "Tesla-T4"},
    "g5.xlarge": {"cpu": 4, "memory": "16Gi", "pods": 58, "gpus": 1, "product": "NVIDIA-A10G"},
    "g5.2xlarge": {"cpu": 8, "memory": "32Gi", "pods": 58, "gpus": 1, "product": "NVIDIA-A10G"},
    "g5.12xlarge": {"cpu": 48, "memory": "192Gi", "pods": 234, "gpus": 4, "product": "NVIDIA-A10G"},
    "p4d.24xlarge": {"cpu": 96, "memory": "1152Gi", "pods": 737, "gpus": 8, "product": "NVIDIA-A100-SXM4-40GB"},
    "p5.48xlarge": {"cpu": 192, "memory": "2048Gi", "pods": 100, "gpus": 8, "product": "NVIDIA-H100-80GB-HBM3"},
    "trn1.2xlarge": {"cpu": 8, "memory": "32Gi", "pods": 58, "neuron": 1, "neuroncores": 2},
    "trn1.32xlarge": {"cpu": 128, "memory": "512Gi", "pods": 247, "neuron": 16, "neuroncores": 32},
    "inf2.xlarge": {"cpu": 4, "memory": "16Gi", "pods": 58, "neuron": 1, "neuroncores": 2},
    "inf2.8xlarge": {"cpu": 32, "memory": "128Gi", "pods": 234, "neuron": 1, "neuroncores": 2},
    "inf2.24xlarge": {"cpu": 96, "memory": "384Gi", "pods": 737, "neuron": 6, "neuroncores": 12},
    "inf2.48xlarge": {"cpu": 192, "memory": "768Gi", "pods": 737, "neuron": 12, "neuroncores": 24},
    "Standard_D4s_v5": {"cpu": 4, "memory": "16Gi", "pods": 110},
    "Standard_NC4as_T4_v3": {"cpu": 4, "memory": "28Gi", "pods": 110, "gpus": 1, "product": "Tesla-T4"},
}

# MIG slices per GPU for each profile shape (NVIDIA MIG user guide, A100/H100).
MIG_SLICES = {"1g": 7, "2g": 3, "3g": 2, "4g": 1, "7g": 1}


def reserved_cpu_millis(cpus: int) -> int:
    """EKS/GKE kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% above."""
    m = 60
    if cpus > 1:
        m += 10
    if cpus > 2:
        m += 5 * min(cpus - 2, 2)
    if cpus > 4:
        m += int(2.5 * (cpus - 4))
    return m


def reserved_memory(max_pods: int) -> int:
    """EKS AMI: kube-reserved 255Mi + 11Mi per pod, plus the 100Mi hard eviction threshold."""
    return (255 + 11 * max_pods + 100) * MIB


@dataclass
class Accelerators:
    """How the device plugins advertise a node's accelerators."""

    gpu_replicas: int = 1  # NVIDIA time-slicing replicas per GPU
    gpu_rename_shared: bool = False  # time-slicing renameByDefault: nvidia.com/gpu.shared
    mig_profile: str | None = None  # e.g. "1g.5gb": MIG "mixed" strategy, every GPU split into this profile


def make_node(name: str, *, cpu: int | str = 4, memory: str = "16Gi", pods: int = 110,
              labels: dict | None = None, taints: list | None = None, extended: dict | None = None,
              instance_type: str | None = None, accelerators: Accelerators | None = None,
              reserve: bool = True, unschedulable: bool = False, zone: str = "us-east-1a") -> dict:
    """A Ready core/v1 Node. ``instance_type`` fills cpu/memory/pods/accelerators from INSTANCE_TYPES."""
    extended = dict(extended or {})
    labels = dict(labels or {})
    acc = accelerators or Accelerators()
    if instance_type:
        spec = INSTANCE_TYPES[instance_type]
        cpu, memory, pods = spec["cpu"], spec["memory"], spec["pods"]
        labels.setdefault("node.kubernetes.io/instance-type", instance_type)
        if spec.get("gpus"):
            gpus = spec["gpus"]
            product = spec["product"]
            labels.setdefault("nvidia.com/gpu.present", "true")
            labels.setdefault("nvidia.com/gpu.count", str(gpus))
            if acc.mig_profile:
                shape = acc.mig_profile.split(".")[0]
                extended.setdefault(f"nvidia.com/mig-{acc.mig_profile}", gpus * MIG_SLICES[shape])
                labels.setdefault("nvidia.com/mig.strategy", "mixed")
                labels.setdefault("nvidia.com/mig.config", f"all-{acc.mig_profile}")
                labels.setdefault("nvidia.com/gpu.product", product)
            elif acc.gpu_replicas > 1:
                resource = "nvidia.com/gpu.shared" if acc.gpu_rename_shared else "nvidia.com/gpu"
                extended.setdefault(resource, gpus * acc.gpu_replicas)
                labels.setdefault("nvidia.com/gpu.replicas", str(acc.gpu_replicas))
                labels.setdefault("nvidia.com/gpu.sharing-strategy", "time-slicing")
                labels.setdefault("nvidia.com/gpu.product", f"{product}-SHARED")
            else:
                extended.setdefault("nvidia.com/gpu", gpus)
                labels.setdefault("nvidia.com/gpu.product", product)
        if spec.get("neuron"):
            extended.setdefault("aws.amazon.com/neuron", spec["neuron"])
            extended.setdefault("aws.amazon.com/neurondevice", spec["neuron"])
            extended.setdefault("aws.amazon.com/neuroncore", spec["neuroncores"])
    labels.setdefault("kubernetes.io/hostname", name)
    labels.setdefault("kubernetes.io/os", "linux")
    labels.setdefault("kubernetes.io/arch", "amd64")
    labels.setdefault("topology.kubernetes.io/zone", zone)
    cpus = parse_quantity(str(cpu))
    mem = parse_quantity(memory)
    capacity = {"cpu": str(cpu), "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    allocatable = dict(capacity)
    if reserve:
        allocatable["cpu"] = format_quantity(cpus - Fraction(reserved_cpu_millis(int(cpus)), 1000))
        allocatable["memory"] = f"{int((mem - reserved_memory(pods)) // 1024)}Ki"
        allocatable["ephemeral-storage"] = "95Gi"
    for k, v in extended.items():
        capacity[k] = allocatable[k] = str(v)
    spec = {"taints": copy.deepcopy(taints)} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {
            "capacity": capacity, "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.31.0-emulated", "kubeProxyVersion": "v1.31.0-emulated",
                         "containerRuntimeVersion": "local://harness", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": "Emulated Linux", "kernelVersion": os.uname().release,
                         "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + "-boot")),
                         "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                         "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + "-system"))},
        },
    }


@dataclass
class NodePool:
    """A Karpenter NodePool with one instance type: nodes appear ``delay`` seconds after a pod needs one.

    ``labels`` and ``taints`` are the pool template's; every node also gets ``karpenter.sh/nodepool=<name>``,
    ``karpenter.sh/capacity-type`` and the instance type's labels. ``limit`` caps the number of nodes.
    """

    name: str
    instance_type: str = "m6i.xlarge"  # the only type, unless instance_types lists the candidates
    labels: dict = field(default_factory=dict)
    taints: list = field(default_factory=list)
    accelerators: Accelerators | None = None
    delay: float = 0.5
    limit: int = 10
    initial: int = 0  # nodes that exist from the start
    consolidate_after: float | None = None  # remove a node left empty this long (Karpenter WhenEmpty)
    capacity_type: str = "on-demand"
    instance_types: list = field(default_factory=list)  # candidates, smallest first: Karpenter picks the
    #                                                      first one the pending pod fits on

    @property
    def candidates(self) -> list[str]:
        return list(self.instance_types) or [self.instance_type]

    def node(self, name: str, instance_type: str | None = None) -> dict:
        itype = instance_type or self.candidates[0]
        labels = {"karpenter.sh/nodepool": self.name, "karpenter.sh/capacity-type": self.capacity_type,
                  "karpenter.k8s.aws/instance-family": itype.split(".")[0], **self.labels}
        node = make_node(name, instance_type=itype, labels=labels, taints=self.taints,
                         accelerators=self.accelerators)
        node["metadata"].setdefault("annotations", {})["karpenter.sh/nodepool-hash"] = self.name
        return node

    @classmethod
    def from_karpenter(cls, manifest: dict, instance_type: str, **kw) -> "NodePool":
        """From a karpenter.sh/v1 NodePool manifest (template labels, taints and single-valued requirements)."""
        tmpl = (manifest.get("spec") or {}).get("template") or {}
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        spec = tmpl.get("spec") or {}
        for req in spec.get("requirements") or []:
            if req.get("operator") == "In" and len(req.get("values") or []) == 1 and \
                    req["key"] != "node.kubernetes.io/instance-type":
                labels.setdefault(req["key"], req["values"][0])
        return cls(name=manifest["metadata"]["name"], instance_type=instance_type, labels=labels,
                   taints=list(spec.get("taints") or []), **kw)


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
NEURON_TAINT = {"key": "aws.amazon.com/neuron", "value": "true", "effect": "NoSchedule"}


def eks_pools(delay: float = 0.3, **overrides) -> list[NodePool]:
    """Pools shaped like an EKS cluster's Karpenter NodePools for each hardware kind of our catalogs."""
    pools = [
        NodePool("default", "m6i.xlarge", delay=delay, initial=1),
        NodePool("gpu", "g5.xlarge", taints=[GPU_TAINT], delay=delay),
        NodePool("gpu-shared", "g5.xlarge", taints=[GPU_TAINT], delay=delay,
                 accelerators=Accelerators(gpu_replicas=4)),
        NodePool("gpu-mig", "p4d.24xlarge", taints=[GPU_TAINT], delay=delay,
                 accelerators=Accelerators(mig_profile="1g.5gb")),
        NodePool("trainium", "trn1.2xlarge", taints=[NEURON_TAINT], delay=delay),
        NodePool("inferentia", "inf2.xlarge", taints=[NEURON_TAINT], delay=delay),
    ]
    for p in pools:
        for k, v in overrides.get(p.name, {}).items():
            setattr(p, k, v)
    return pools
