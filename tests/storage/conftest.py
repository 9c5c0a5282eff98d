"""Storage tests: spawners built with ``_mock=True`` against a dummy kubeconfig (nothing talks to Kubernetes).

KubeSpawner loads a kubeconfig and creates its API client in ``__init__`` even when mocked, and the client
needs a running event loop: build spawners inside async tests (or inside ``asyncio.run``).
"""

from __future__ import annotations

import copy
import os
from types import SimpleNamespace

import kubernetes_validate
import pytest
from traitlets.config import Config

from tests.support.kubeconfig import dummy_kubeconfig  # noqa: F401 (autouse: every storage test)

K8S_VERSION = "1.31.0"

CHART_TOLERATIONS = [  # what z2jh 4.4.0 puts on user pods (scheduling.userPods.tolerations)
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]

# what z2jh 4.4.0 adds with singleuser.cloudMetadata.blockWithIptables: true (the default)
CHART_IPTABLES = {
    "name": "block-cloud-metadata",
    "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
    "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", "169.254.169.254",
                "--destination-port", "80", "--jump", "DROP"],
    "securityContext": {"runAsUser": 0, "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
}

CATALOG = [
    {"slug": "cpu", "display_name": "CPU", "default": True, "image": "quay.io/jupyter/base-notebook:2024-12-09",
     "hardware": {"kind": "cpu", "cpu": {"guarantee": 1, "limit": 2}, "memory": {"guarantee": "2G", "limit": "2G"}}},
    {"slug": "scratch", "display_name": "CPU with scratch space",
     "image": "quay.io/jupyter/base-notebook:2024-12-09",
     "hardware": {"kind": "cpu", "cpu": {"limit": 2}, "memory": {"limit": "2G"}},
     # a profile's own volumes, as lists: KubeSpawner replaces lists on override
     "kubespawner_override": {
         "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}}],
         "volume_mounts": [{"name": "scratch", "mountPath": "/scratch"}],
         "init_containers": [{"name": "warm-cache", "image": "busybox:1.37.0", "command": ["true"]}],
     }},
    {"slug": "gpu", "display_name": "GPU", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2024-12-09",
     "hardware": {"kind": "gpu", "gpus": 1, "node_pool": "gpu"},
     "kubespawner_override": {"volumes": {"dshm": {"name": "dshm", "emptyDir": {"medium": "Memory"}}},
                              "volume_mounts": {"dshm": {"name": "dshm", "mountPath": "/dev/shm"}}}},
]


@pytest.fixture(autouse=True)
def _slow_only_when_asked(request):
    # the same convention as the seeder's suite: `slow` property runs only with RUN_SLOW=1
    if request.node.get_closest_marker("slow") and os.environ.get("RUN_SLOW") != "1":
        pytest.skip("slow: set RUN_SLOW=1 to run")


def chart_config(*, catalog: bool = True, **storage) -> Config:
    """What z2jh 4.4.0 configures for user pods (singleuser.storage.type: none), plus our settings."""
    c = Config()
    c.KubeSpawner.tolerations = copy.deepcopy(CHART_TOLERATIONS)
    c.KubeSpawner.uid = 1000
    c.KubeSpawner.fs_gid = 100
    c.KubeSpawner.allow_privilege_escalation = False
    c.KubeSpawner.init_containers = [copy.deepcopy(CHART_IPTABLES)]
    if catalog:
        c.ProfilesKubeSpawner.profiles = copy.deepcopy(CATALOG)
    for key, value in storage.items():
        setattr(c.ProfilesKubeSpawner, key, value)
    return c


def make_spawner(config: Config, name: str = "alice", groups=(), admin: bool = False, user_id: int = 7):
    """A mocked spawner for this user (named before ``__init__``, which derives pod and PVC names)."""
    from jupyterhub_ext.spawner import ProfilesKubeSpawner

    user = SimpleNamespace(name=name, id=user_id, url=f"/user/{name}/", groups=[], admin=admin)
    spawner = ProfilesKubeSpawner(config=config, user=user, _mock=True)
    set_user(spawner, name, groups, admin)
    return spawner


def set_user(spawner, name: str, groups=(), admin: bool = False) -> None:
    spawner.user.name = name
    spawner.user.groups = [SimpleNamespace(name=g) for g in groups]
    spawner.user.admin = admin


async def pod_for(spawner, user_options=None) -> dict:
    spawner.user_options = user_options or {}
    await spawner.load_user_options()
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    return pod


def container(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def mounts(pod: dict, name: str | None = None) -> dict[str, dict]:
    """The notebook container's mounts (or an init container's) by mount path."""
    if name is None:
        c = container(pod)
    else:
        c = next(i for i in pod["spec"].get("initContainers", []) if i["name"] == name)
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}


def volumes(pod: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod["spec"].get("volumes", [])}
