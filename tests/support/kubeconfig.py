"""A kubeconfig for KubeSpawners built without a cluster, and the switch that makes kubernetes_asyncio load one.

KubeSpawner loads a kubeconfig in ``__init__`` even with ``_mock=True``, and when it only checks
configuration. kubernetes_asyncio reads ``$KUBECONFIG`` once, when first imported, into
``KUBE_CONFIG_DEFAULT_LOCATION``: changing the environment afterwards is not enough.

    from tests.support.kubeconfig import dummy_kubeconfig  # noqa: F401 (autouse fixture: every test here)

    with kubeconfig_default(cluster.kubeconfig, environ=True):
        ...  # KubeSpawners built here load the emulated cluster's kubeconfig

The fixture is imported into the conftest of each folder that needs it (tests/deploy, tests/spawner); it is
session-scoped and autouse there, and leaves ``$KUBECONFIG`` alone: other suites read it to decide whether a
real cluster is there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# a server nothing listens on (port 9, discard): a request that got this far would fail at once
DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: default}}]
current-context: none
"""


def write_dummy_kubeconfig(directory: Path) -> Path:
    """``directory``/config with DUMMY_KUBECONFIG in it."""
    path = Path(directory) / "config"
    path.write_text(DUMMY_KUBECONFIG)
    return path


@contextmanager
def kubeconfig_default(path: str | Path, *, environ: bool = False) -> Iterator[str]:
    """Make ``path`` the kubeconfig kubernetes_asyncio loads by default (with ``environ``, ``$KUBECONFIG``
    too) until the block ends; both are restored afterwards."""
    from kubernetes_asyncio.config import kube_config

    path = str(path)
    saved = os.environ.get("KUBECONFIG"), kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
    if environ:
        os.environ["KUBECONFIG"] = path
    try:
        yield path
    finally:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved[1]
        if environ:
            if saved[0] is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved[0]


@pytest.fixture(scope="session", autouse=True)
def dummy_kubeconfig(tmp_path_factory) -> Iterator[str]:
    """The kubeconfig KubeSpawners load for the session: ``$KUBECONFIG`` when set, else DUMMY_KUBECONFIG."""
    if os.environ.get("KUBECONFIG"):
        yield os.environ["KUBECONFIG"]
        return
    with kubeconfig_default(write_dummy_kubeconfig(tmp_path_factory.mktemp("kube"))) as path:
        yield path
