"""The hub's configuration as the z2jh chart makes it: the chart rendered by the real ``helm``, its hub ConfigMap
and Secret laid out as the hub pod mounts them (under a temporary directory instead of
``/usr/local/etc/jupyterhub``), and the chart's own ``jupyterhub_config.py`` run over them with the hub
container's environment. ``hub.extraConfig`` (our ``setup(c)``) runs inside it, as in the pod.

What the operator's cluster holds is not here: the Secrets they create (docs/deploy-*.md) get placeholders,
reported as such; the Services' addresses are made up.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import yaml
from traitlets.config import Config

MOUNT = "/usr/local/etc/jupyterhub"
RELEASE = "jupyterhub"
NAMESPACE = "jupyterhub"


def placeholder(secret: str, key: str) -> str:
    """A stand-in for a Secret's value: one per key (two passwords must differ), long enough for every length
    check. The real value is the operator's, in their cluster."""
    return f"placeholder-for-kubernetes-secret-{secret}-{key}-0123456789abcdef"


class ChartError(Exception):
    """helm could not render the chart with these values (its own message)."""


@dataclass
class ChartRun:
    config: Config
    objects: list[dict]
    env: dict[str, str]                                     # the hub container's environment
    placeholders: list[str] = field(default_factory=list)  # "secret/key" given a placeholder


def find_helm(explicit: str | None) -> str | None:
    """``--helm PATH`` when it is an executable file, else helm on PATH; None: neither."""
    return shutil.which(explicit) if explicit else shutil.which("helm")


def render(helm: str, chart: str, files: list[str]) -> list[dict]:
    args = [a for f in files for a in ("-f", str(f))]
    with tempfile.TemporaryDirectory(prefix="jupyterhub-ext-helm-") as home:
        env = {**os.environ, "HELM_CACHE_HOME": f"{home}/cache", "HELM_CONFIG_HOME": f"{home}/config",
               "HELM_DATA_HOME": f"{home}/data"}
        proc = subprocess.run([helm, "template", RELEASE, chart, "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise ChartError(proc.stderr.strip() or proc.stdout.strip())
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise ChartError(f"the rendered chart has {len(found)} {kind} named {name!r}: is this the z2jh chart?")
    return found[0]


class MissingSecret(ChartError):
    """A Secret the hub container needs (not optional) is not among those given: the kubelet would not start it."""


def _container_env(objects: list[dict], placeholders: list[str],
                   secrets: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, str]:
    """The hub container's environment. ``secrets`` ({name: {key: value}}): the cluster's Secrets, as a test
    gives them; None: every one the values name gets a placeholder (the command line's case)."""
    hub_secret = {k: base64.b64decode(v).decode() for k, v in (_one(objects, "Secret", "hub").get("data") or {}).items()}
    pod = _one(objects, "Deployment", "hub")["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "hub"]
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[entry["name"]] = NAMESPACE
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["name"] == "hub" and ref["key"] in hub_secret:
                env[entry["name"]] = hub_secret[ref["key"]]
            elif secrets is None:  # optional or not: the operator makes the Secrets their values name
                env[entry["name"]] = placeholder(ref["name"], ref["key"])
                placeholders.append(f"{ref['name']}/{ref['key']}")
            elif ref["key"] in secrets.get(ref["name"], {}):
                env[entry["name"]] = secrets[ref["name"]][ref["key"]]
            elif not ref.get("optional"):
                raise MissingSecret(f"the hub container needs Secret {ref['name']!r} key {ref['key']!r} "
                                    f"(env {entry['name']}), and it is not there: the kubelet would not start it")
    for service in (o for o in objects if o["kind"] == "Service"):  # as Kubernetes sets them in every pod
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = "10.0.0.1"
        env[f"{prefix}_SERVICE_PORT"] = str(service["spec"]["ports"][0]["port"])
    return env


def _lay_out(objects: list[dict], root: Path) -> Path:
    data = _one(objects, "ConfigMap", "hub")["data"]
    (root / "config").mkdir(parents=True)
    (root / "secret").mkdir()
    for key, value in data.items():
        (root / "config" / key).write_text(value)
    for key, value in (_one(objects, "Secret", "hub").get("data") or {}).items():
        (root / "secret" / key).write_bytes(base64.b64decode(value))
    for name in ("jupyterhub_config.py", "z2jh.py"):
        (root / name).write_text(data[name].replace(MOUNT, str(root)))
    return root / "jupyterhub_config.py"


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _process_state(env: dict[str, str]) -> Iterator[None]:
    """What running the chart's file changes in this process, undone afterwards: the environment, its z2jh
    module (it caches the values), its directory on sys.path, the curl HTTP client it asks for."""
    from tornado.httpclient import AsyncHTTPClient

    saved_path, saved_configure = list(sys.path), AsyncHTTPClient.configure
    sys.modules.pop("z2jh", None)
    AsyncHTTPClient.configure = classmethod(lambda cls, impl, **kw: None)  # pycurl is the hub image's
    try:
        with environment(env):
            yield
    finally:
        AsyncHTTPClient.configure = saved_configure
        sys.path[:] = saved_path
        sys.modules.pop("z2jh", None)


def hub_config(helm: str, chart: str, files: list[str],
               secrets: Mapping[str, Mapping[str, str]] | None = None) -> ChartRun:
    """The Config the hub pod would load for these values files (``secrets``: see _container_env)."""
    objects = render(helm, chart, files)
    placeholders: list[str] = []
    env = _container_env(objects, placeholders, secrets)
    with tempfile.TemporaryDirectory(prefix="jupyterhub-ext-chart-") as tmp:
        config_file = _lay_out(objects, Path(tmp) / "etc-jupyterhub")
        c = Config()
        with _process_state(env):
            exec(compile(config_file.read_text(), str(config_file), "exec"),  # noqa: S102 - the chart's own file
                 {"get_config": lambda: c, "__file__": str(config_file), "__name__": "__main__"})
    return ChartRun(c, objects, env, placeholders)
