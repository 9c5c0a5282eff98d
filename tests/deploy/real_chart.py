"""The hub's configuration as the real z2jh 4.4.0 chart makes it, with no emulation of the chart.

The chart (../shared/z2jh/chart) is rendered by the real helm; its hub ConfigMap and Secret are laid out as the hub
pod mounts them (``/usr/local/etc/jupyterhub/...``, under a temporary directory instead), and the chart's own
``jupyterhub_config.py`` (with its ``z2jh.py``) runs over them with the hub container's environment: its ``env``
(Secrets resolved, ``POD_NAMESPACE`` from the field) and the ``<SERVICE>_SERVICE_HOST/PORT`` variables Kubernetes
sets for the rendered Services. ``hub.extraConfig`` (our ``setup(c)``) runs inside it, as in the pod.

Left out: the curl HTTP client the file configures for the hub process (pycurl is not installed here).
"""

from __future__ import annotations

import base64
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import yaml
from traitlets.config import Config

from .conftest import run_helm
from .z2jh_chart import HELM, NAMESPACE, RELEASE, SHARED, environ

CHART = SHARED / "z2jh" / "chart"
MOUNT = "/usr/local/etc/jupyterhub"


def render(helm: Path, files: list[Path]) -> list[dict]:
    args = [a for f in files for a in ("-f", str(f))]
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _one(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _container_env(objects: list[dict], secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    hub_secret = {k: base64.b64decode(v).decode() for k, v in _one(objects, "Secret", "hub")["data"].items()}
    known = {"hub": hub_secret, **secrets}
    pod = _one(objects, "Deployment", "hub")["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "hub"]
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace", source
            env[entry["name"]] = NAMESPACE
        else:
            ref = source["secretKeyRef"]
            value = known.get(ref["name"], {}).get(ref["key"])
            if value is None:
                assert ref.get("optional"), f"the kubelet would not start the hub: {ref}"
                continue
            env[entry["name"]] = value
    for service in (o for o in objects if o["kind"] == "Service"):  # as Kubernetes sets them in every pod
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = "10.0.0.1"
        env[f"{prefix}_SERVICE_PORT"] = str(service["spec"]["ports"][0]["port"])
    return env


def _lay_out(objects: list[dict], root: Path) -> Path:
    """The hub pod's mounts under ``root``; returns the chart's jupyterhub_config.py, pointed at them."""
    data = _one(objects, "ConfigMap", "hub")["data"]
    (root / "config").mkdir(parents=True)
    (root / "secret").mkdir()
    for key, value in data.items():
        (root / "config" / key).write_text(value)
    for key, value in _one(objects, "Secret", "hub")["data"].items():
        (root / "secret" / key).write_bytes(base64.b64decode(value))
    for name in ("jupyterhub_config.py", "z2jh.py"):
        (root / name).write_text(data[name].replace(MOUNT, str(root)))
    return root / "jupyterhub_config.py"


@contextmanager
def _hub_process_state() -> Iterator[None]:
    """What running the file changes in this process, undone: the chart's z2jh module (its values are cached),
    its directory on sys.path, the HTTP client it configures."""
    from tornado.httpclient import AsyncHTTPClient

    saved_path, saved_configure = list(sys.path), AsyncHTTPClient.configure
    sys.modules.pop("z2jh", None)
    AsyncHTTPClient.configure = classmethod(lambda cls, impl, **kw: None)  # the hub's curl client: not here
    try:
        yield
    finally:
        AsyncHTTPClient.configure = saved_configure
        sys.path[:] = saved_path
        sys.modules.pop("z2jh", None)


def hub_config(helm: Path, root: Path, values: list[str], extra: dict | None = None,
               secrets: Mapping[str, Mapping[str, str]] | None = None) -> Config:
    """The Config the hub loads, from helm/``values`` files (and ``extra`` values on top, as one more -f)."""
    from .hub import SECRETS

    root.mkdir(parents=True, exist_ok=True)
    files = [HELM / name for name in values]
    if extra:
        extra_file = root / "extra-values.yaml"
        extra_file.write_text(yaml.safe_dump(extra))
        files.append(extra_file)
    objects = render(helm, files)
    config_file = _lay_out(objects, root / "etc-jupyterhub")
    c = Config()
    env = _container_env(objects, SECRETS if secrets is None else secrets)
    with _hub_process_state(), environ(env):
        exec(compile(config_file.read_text(), str(config_file), "exec"),
             {"get_config": lambda: c, "__file__": str(config_file), "__name__": "__main__"})
    return c
