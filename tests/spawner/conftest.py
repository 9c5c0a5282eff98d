"""ProfilesKubeSpawner(_mock=True) without a cluster: a dummy kubeconfig, and a helper to build a spawner.

KubeSpawner loads a kubeconfig and creates its API client in ``__init__`` even when mocked; the client needs
a running event loop, so spawners are built inside async tests. Nothing here talks to Kubernetes.
"""

import os
from types import SimpleNamespace

import pytest
from traitlets.config import Config

DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: default}}]
current-context: none
"""

CHART_TOLERATIONS = [  # what z2jh 4.4.0 puts on user pods (scheduling.userPods.tolerations)
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]


@pytest.fixture(scope="session", autouse=True)
def dummy_kubeconfig(tmp_path_factory):
    if os.environ.get("KUBECONFIG"):
        yield os.environ["KUBECONFIG"]
        return
    import kubernetes_asyncio.config.kube_config as kube_config

    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(DUMMY_KUBECONFIG)
    # kubernetes_asyncio reads $KUBECONFIG once, at import: point its default at the dummy as well
    saved = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    yield str(path)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved


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
