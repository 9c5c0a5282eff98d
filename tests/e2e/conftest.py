"""Fixtures for the end-to-end tests: an emulated cluster and a real hub per module.

Test modules tune them with module-level constants:
  HUB_OPTIONS  keyword arguments of tests.harness.hub.kube_hub_config (spawner_class, storage, timeouts...)
  HUB_CONFIG   extra jupyterhub_config.py text (or a {"Section": {"trait": value}} mapping), applied last
  CLUSTER_OPTIONS  keyword arguments of EmulatedCluster (pools, images, command_map, ...)
"""

from __future__ import annotations

import itertools
import os
import re

import pytest

from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.cluster import EmulatedCluster
from tests.harness.hub import KubeHub, start_kube_hub
from tests.harness.nodes import eks_pools
from tests.support.kubeconfig import kubeconfig_default

NAMESPACE = os.environ.get("E2E_NAMESPACE", "jhub-e2e")
_names = itertools.count(1)


def _module_name(request) -> str:
    return request.module.__name__.rsplit(".", 1)[-1]


@pytest.fixture(scope="module")
def cluster(request):
    """An EmulatedCluster with EKS-like Karpenter pools (default, gpu, gpu-shared, gpu-mig, trainium,
    inferentia) and the namespace NAMESPACE. Dumped to artifacts/ when a test of the module failed."""
    options = dict(pools=eks_pools(delay=0.2), namespaces=(NAMESPACE,), backoff_max=2.0)
    options.update(getattr(request.module, "CLUSTER_OPTIONS", {}))
    c = EmulatedCluster(**options).start()
    yield c
    try:
        if module_failed(request):
            c.dump(str(artifact_dir(f"{_module_name(request)}/cluster")))
    finally:
        c.stop()


def start_module_hub(request, kube, namespace: str, **extra) -> KubeHub:
    """A hub for the requesting module: its HUB_OPTIONS (updated by ``extra``) and HUB_CONFIG."""
    options = dict(getattr(request.module, "HUB_OPTIONS", {}))
    options.update(extra)
    hub = start_kube_hub(kube.kubeconfig, namespace=namespace, config=getattr(request.module, "HUB_CONFIG", ""),
                         name=f"e2e-{_module_name(request)}", **options)
    return hub


def stop_module_hub(request, hub: KubeHub) -> None:
    """Stop it; its log goes to artifacts/ when a test of the module failed."""
    failed = module_failed(request)
    if failed:
        save_file(hub.process.log_path, artifact_dir(f"{_module_name(request)}"), "hub.log")
    hub.process.stop()


@pytest.fixture(scope="module")
def hub(request, cluster) -> KubeHub:
    """A real jupyterhub + configurable-http-proxy whose spawner talks to ``cluster``."""
    h = start_module_hub(request, cluster, NAMESPACE)
    yield h
    stop_module_hub(request, h)


def _plain(value):
    """Kubernetes client objects in the chart's configuration (z2jh builds its block-cloud-metadata init container
    as a V1Container) as the JSON the hub sends: their repr is snake_case, which the API server does not take."""
    from kubernetes_asyncio.client import ApiClient

    if isinstance(value, (list, tuple, dict)) or hasattr(value, "openapi_types"):
        # the serializer needs no connection (and ApiClient() would open one, on an event loop): skip __init__
        return ApiClient.__new__(ApiClient).sanitize_for_serialization(value)
    return value


def chart_spawner_config(kubeconfig: str, combination: str = "base") -> str:
    """jupyterhub_config.py lines for the spawner sections of the configuration the z2jh chart builds from
    helm/values*.yaml for ``combination`` (tests/deploy's emulation of the chart), namespace excluded."""
    from tests.deploy import hub as deploy_hub

    # KubeSpawner loads a kubeconfig even when it only checks configuration: the emulated cluster's, meanwhile
    with kubeconfig_default(kubeconfig, environ=True):
        built = deploy_hub.configure(combination).config
    spawner = built.JupyterHub.spawner_class
    if not isinstance(spawner, str):
        spawner = f"{spawner.__module__}.{spawner.__name__}"
    lines = [f"c.JupyterHub.spawner_class = {spawner!r}"]
    for section in ("Spawner", "KubeSpawner", "ProfilesKubeSpawner"):
        for key, value in (built[section] if section in built else {}).items():
            if type(value).__name__ == "LazyConfigValue" or key == "namespace":
                continue
            lines.append(f"c.{section}.{key} = {_plain(value)!r}")
    lines.append(f"c.KubeSpawner.namespace = {NAMESPACE!r}")
    return "\n".join(lines)


@pytest.fixture
def username(request) -> str:
    """A user name unique in the session, readable in logs: <test name>-<n>."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:30].strip("-")
    return f"{base}-{next(_names)}"
