"""The EC2 instance types the platform's NodePools may launch: what each brings (vCPU, memory, accelerators).

Published EC2 specifications for the families the shipped pools name, plus neighbouring generations so that
requirement filters (instance-generation Gt 5) are exercised. ``Instance.labels`` are the well-known labels
Karpenter puts on a node of that type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

GiB = 2**30
MiB = 2**20


@dataclass(frozen=True)
class Instance:
    name: str
    vcpu: int
    memory_gib: int
    gpus: int = 0
    gpu_model: str = ""          # NVIDIA model as in jupyterhub_ext.catalog.hardware.MIG_PROFILES keys
    neuron_devices: int = 0
    neuron_cores: int = 0
    arch: str = "amd64"
    extra: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def size(self) -> str:
        return self.name.split(".")[1]

    @property
    def category(self) -> str:
        return re.match(r"[a-z]+", self.family).group(0)  # g5 -> g, c6i -> c, inf2 -> inf, trn1 -> trn

    @property
    def generation(self) -> str:
        return re.search(r"[0-9]+", self.family).group(0)

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            "node.kubernetes.io/instance-type": self.name,
            "karpenter.k8s.aws/instance-family": self.family,
            "karpenter.k8s.aws/instance-category": self.category,
            "karpenter.k8s.aws/instance-generation": self.generation,
            "karpenter.k8s.aws/instance-size": self.size,
            "karpenter.k8s.aws/instance-cpu": str(self.vcpu),
            "karpenter.k8s.aws/instance-memory": str(self.memory_gib * 1024),
            "kubernetes.io/arch": self.arch,
            "kubernetes.io/os": "linux",
        }
        if self.gpus:
            labels.update({"karpenter.k8s.aws/instance-gpu-count": str(self.gpus),
                           "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia"})
        if self.neuron_devices:
            labels.update({"karpenter.k8s.aws/instance-accelerator-count": str(self.neuron_devices),
                           "karpenter.k8s.aws/instance-accelerator-manufacturer": "aws"})
        return labels

    @property
    def maxpods(self) -> int:
        # VPC CNI without prefix delegation: small types hold fewer pods; Karpenter caps at 110
        return 58 if self.vcpu <= 4 else 110

    def allocatable(self) -> dict[str, float]:
        """Capacity less what the kubelet reserves (EKS AL2023 bootstrap formula) and the DaemonSets take."""
        cpu_reserved = 0.06 + (0.01 if self.vcpu >= 2 else 0) + 0.005 * min(max(self.vcpu - 2, 0), 2) \
            + 0.0025 * max(self.vcpu - 4, 0)
        mem_reserved = (11 * self.maxpods + 255) * MiB + 100 * MiB  # kube-reserved + eviction threshold
        daemonsets_cpu, daemonsets_mem = 0.35, 640 * MiB  # aws-node, kube-proxy, EFS/EBS CSI, GPU operator
        return {"cpu": self.vcpu - cpu_reserved - daemonsets_cpu,
                "memory": self.memory_gib * GiB - mem_reserved - daemonsets_mem}


_SIZES = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48, "16xlarge": 64,
          "24xlarge": 96}
_GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8}


def _general_purpose() -> list[Instance]:
    out = []
    for family in ("c5", "m5", "r5", "c6i", "m6i", "r6i", "c6a", "m6a", "r6a", "c7i", "m7i", "r7i", "c7a", "m7a",
                   "r7a"):
        for size, vcpu in _SIZES.items():
            out.append(Instance(f"{family}.{size}", vcpu, vcpu * _GIB_PER_VCPU[family[0]]))
    return out


_G5_G6 = [("xlarge", 4, 16, 1), ("2xlarge", 8, 32, 1), ("4xlarge", 16, 64, 1), ("8xlarge", 32, 128, 1),
          ("12xlarge", 48, 192, 4), ("16xlarge", 64, 256, 1), ("24xlarge", 96, 384, 4), ("48xlarge", 192, 768, 8)]

INSTANCES: tuple[Instance, ...] = tuple([
    *_general_purpose(),
    *[Instance(f"g5.{s}", v, m, gpus=g, gpu_model="A10G") for s, v, m, g in _G5_G6],
    *[Instance(f"g6.{s}", v, m, gpus=g, gpu_model="L4") for s, v, m, g in _G5_G6],
    Instance("p4d.24xlarge", 96, 1152, gpus=8, gpu_model="A100-40GB"),
    Instance("p4de.24xlarge", 96, 1152, gpus=8, gpu_model="A100-80GB"),
    Instance("trn1.2xlarge", 8, 32, neuron_devices=1, neuron_cores=2),
    Instance("trn1.32xlarge", 128, 512, neuron_devices=16, neuron_cores=32),
    Instance("inf2.xlarge", 4, 16, neuron_devices=1, neuron_cores=2),
    Instance("inf2.8xlarge", 32, 128, neuron_devices=1, neuron_cores=2),
    Instance("inf2.24xlarge", 96, 384, neuron_devices=6, neuron_cores=12),
    Instance("inf2.48xlarge", 192, 768, neuron_devices=12, neuron_cores=24),
])

# An AKS classroom node (Standard_D4s_v5) in the cluster's default node pool, as `az aks create` makes it.
AKS_NODE = Instance("Standard_D4s_v5", 4, 16)
AKS_LABELS = {"kubernetes.azure.com/agentpool": "nodepool1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "node.kubernetes.io/instance-type": "Standard_D4s_v5"}
