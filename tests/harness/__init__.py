"""End-to-end harness: an emulated Kubernetes API with a scheduler, Karpenter-style node pools and a local
kubelet that runs pods as local processes, plus a real JupyterHub driven over HTTP. See docs/testing.md.

Entry points::

    from tests.harness import EmulatedCluster, NodePool, eks_pools, make_node, start_kube_hub
"""

from .cluster import EmulatedCluster
from .hub import BrowserSession, KubeHub, SpawnFailed, kube_hub_config, start_kube_hub
from .kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND, ImageConfig
from .nodes import INSTANCE_TYPES, Accelerators, NodePool, eks_pools, make_node

__all__ = ["EmulatedCluster", "KubeHub", "BrowserSession", "SpawnFailed", "kube_hub_config", "start_kube_hub",
           "ImageConfig", "DEFAULT_COMMAND_MAP", "STANDIN_COMMAND", "NodePool", "Accelerators", "eks_pools", "make_node",
           "INSTANCE_TYPES"]
