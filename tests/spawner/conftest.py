"""ProfilesKubeSpawner(_mock=True) without a cluster: a dummy kubeconfig, and a helper to build a spawner.

KubeSpawner loads a kubeconfig and creates its API client in ``__init__`` even when mocked; the client needs
a running event loop, so spawners are built inside async tests. Nothing here talks to Kubernetes.
"""

from types import SimpleNamespace

from traitlets.config import Config

# autouse: the spawners here need no cluster (DUMMY_KUBECONFIG is imported from here by tests/catalog too)
from tests.support.kubeconfig import DUMMY_KUBECONFIG, dummy_kubeconfig  # noqa: F401

CHART_TOLERATIONS = [  # what z2jh 4.4.0 puts on user pods (scheduling.userPods.tolerations)
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]


def chart_config(**spawner_settings) -> Config:
    c = Config()
    c.KubeSpawner.tolerations = [dict(t) for t in CHART_TOLERATIONS]
    c.KubeSpawner.node_selector = {}
    c.ProfilesKubeSpawner.catalog_file = "builtin:eks"
    for key, value in spawner_settings.items():
        setattr(c.ProfilesKubeSpawner, key, value)
    return c


def make_spawner(config: Config, name: str = "alice", groups=(), admin: bool = False):
    from jupyterhub_ext.spawner import ProfilesKubeSpawner

    spawner = ProfilesKubeSpawner(config=config, _mock=True)
    spawner.user.name = name
    spawner.user.groups = [SimpleNamespace(name=g) for g in groups]
    spawner.user.admin = admin
    return spawner


async def pod_for(spawner, user_options) -> dict:
    spawner.user_options = user_options
    await spawner.load_user_options()
    return spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
