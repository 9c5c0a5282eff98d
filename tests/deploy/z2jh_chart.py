"""What the Zero-to-JupyterHub 4.4.0 chart does with a values file, without a cluster.

* ``merged_values`` merges values files the way ``helm -f a -f b`` does (maps merge recursively, anything
  else replaces, ``null`` deletes the key) over the chart's own ``values.yaml`` (../shared/z2jh/).
* ``chart_config`` builds the ``traitlets`` Config the hub pod would load: the chart's derived settings
  (its ``jupyterhub_config.py``: ``singleuser.*`` -> KubeSpawner traits, scheduling, storage, cloud
  metadata, culler), then ``hub.config`` sections applied with a shallow ``c[Section].update(...)``, then
  every ``hub.extraConfig`` entry executed in key order with ``c``, ``get_config``, ``get_secret_value``,
  ``os`` and ``sys`` in scope - the same order as the chart.
* ``hub_environment`` resolves ``hub.extraEnv`` (plain values and ``valueFrom.secretKeyRef``) against a
  set of Kubernetes Secrets, failing like the kubelet does when a required Secret or key is missing.

Only the JupyterHub/proxy wiring that needs a cluster (service hosts, ports, db) is left out.

``chart_config`` follows the chart's ``jupyterhub/files/hub/jupyterhub_config.py`` (4.4.0) statement by
statement for: the ``hub.*`` -> JupyterHub traits, ``singleuser.*`` -> KubeSpawner traits (incl.
allowPrivilegeEscalation, image, pull secrets), scheduling (user scheduler, priority, matchNodePurpose,
tolerations), storage (dynamic/static, extraFiles, extraVolumes), the culler service and its role,
``hub.services``/``hub.loadRoles``, ``singleuser.cmd``/``defaultUrl``, the block-cloud-metadata init container
(command, image, securityContext, resources), debug, the generated secrets, ``hub.config`` and
``hub.extraConfig``. Names (user-scheduler, priority, image-pull-secret, singleuser) assume no
``fullnameOverride``/``nameOverride``. It is a copy by hand: when the chart version in helm/ and images/hub changes, compare it
with that release's file again and update it (CHART_VERSION below).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
import yaml
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared"))
Z2JH = SHARED / "z2jh"
HELM = ROOT / "helm"
RELEASE = "jupyterhub"
NAMESPACE = "jupyterhub"
CHART_VERSION = "4.4.0"

# Every shipped combination: the base alone (port-forward) and the base with each overlay.
COMBINATIONS = {
    "base": ["values.yaml"],
    "eks-cognito": ["values.yaml", "values-eks-cognito.yaml"],
    "eks-keycloak": ["values.yaml", "values-eks-keycloak.yaml"],
    "aks-classroom": ["values.yaml", "values-aks-classroom.yaml"],
}


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _load_cached(path: Path, mtime: float) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


def load_yaml(path: Path) -> Any:
    """A YAML file (parsed once per modification; callers get their own copy)."""
    return copy.deepcopy(_load_cached(path, path.stat().st_mtime))


def merge_maps(a: Any, b: Any) -> Any:
    """Helm's merge of several ``-f`` files (pkg/cli/values): maps merge recursively, the later file wins,
    a ``null`` is kept as a value (it is resolved against the chart's defaults by ``coalesce``)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return copy.deepcopy(b)
    out = copy.deepcopy(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce(user: Any, defaults: Any) -> Any:
    """Helm's coalescing of user values with the chart's values.yaml (pkg/chartutil/coalesce.go): a user
    ``null`` deletes the key together with its default; defaults fill in what the user did not set; a
    ``null`` for a key the chart has no default for stays a null."""
    if not isinstance(user, dict) or not isinstance(defaults, dict):
        return copy.deepcopy(user)
    out = copy.deepcopy(user)
    for key, default in defaults.items():
        if key in out:
            if out[key] is None:
                del out[key]
            elif isinstance(out[key], dict) and isinstance(default, dict):
                out[key] = coalesce(out[key], default)
        else:
            out[key] = copy.deepcopy(default)
    return out


def user_values(files: list[str]) -> dict:
    merged: dict = {}
    for name in files:
        merged = merge_maps(merged, load_yaml(HELM / name) or {})
    return merged


def merged_values(files: list[str] | dict) -> dict:
    """The chart's values.yaml with the given values files (or already merged user values) on top."""
    chart = load_yaml(Z2JH / "values.yaml")
    overrides = files if isinstance(files, dict) else user_values(files)
    return coalesce(overrides, chart)


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft7Validator:
    with open(Z2JH / "values.schema.json", encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validate(values: dict) -> None:
    """Raise jsonschema.ValidationError as ``helm install`` would (the chart's schema, draft 7)."""
    _validator().validate(values)


# -- the hub container's environment ---------------------------------------------------------------------

class MissingSecret(LookupError):
    """The kubelet would not start the hub container: CreateContainerConfigError."""


def hub_environment(values: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    env_values = values["hub"].get("extraEnv") or {}
    items = (env_values.items() if isinstance(env_values, dict)
             else ((e["name"], e) for e in env_values))
    env: dict[str, str] = {}
    for name, spec in items:
        if not isinstance(spec, dict):
            env[name] = str(spec)
            continue
        if "value" in spec:
            env[name] = str(spec["value"])
            continue
        ref = (spec.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise NotImplementedError(f"hub.extraEnv.{name}: only value and secretKeyRef are modelled")
        secret = secrets.get(ref["name"])
        if secret is None or ref["key"] not in secret:
            if ref.get("optional"):
                continue
            raise MissingSecret(f'hub.extraEnv.{name}: secret "{ref["name"]}" key "{ref["key"]}" not found')
        env[name] = secret[ref["key"]]
    return env


@contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- the chart's jupyterhub_config.py ---------------------------------------------------------------------

def block_cloud_metadata_command(ip: str) -> list[str]:
    """The chart's block-cloud-metadata init container command (singleuser.cloudMetadata.blockWithIptables)."""
    return ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", ip,
            "--destination-port", "80", "--jump", "DROP"]


def _camel(s: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), s)


class Chart:
    """get_config / get_secret_value over one merged values document, as the hub pod sees them."""

    def __init__(self, values: dict):
        # The chart adds Chart/Release to what get_config reads; hub.config secrets are generated.
        self.values = copy.deepcopy(values)
        self.values.setdefault("Chart", {"Name": "jupyterhub", "Version": CHART_VERSION})
        self.values.setdefault("Release", {"Name": RELEASE, "Namespace": NAMESPACE})

    def get_config(self, key: str, default: Any = None) -> Any:
        value: Any = self.values
        for level in key.split("."):
            if not isinstance(value, dict) or level not in value:
                return default
            value = value[level]
        return copy.deepcopy(value)

    def get_secret_value(self, key: str, default: Any = "__no_default__") -> Any:
        # The chart generates these into its own Secret when not given.
        generated = {
            "hub.config.JupyterHub.cookie_secret": "a" * 64,
            "hub.config.CryptKeeper.keys": "b" * 64,
        }
        if key in generated:
            return generated[key]
        if re.fullmatch(r"hub\.services\.[^.]+\.apiToken", key) and self.get_config(key) is None:
            return "c" * 64  # the chart generates a token for every hub.services entry without one
        value = self.get_config(key)
        if value is None:
            if default != "__no_default__":
                return default
            raise KeyError(f"{key} not found in the chart's secret")
        return value

    def get_config_list(self, key: str) -> list:
        """A list-or-dict value as a list (dict entries get their key as ``name``), None as []."""
        value = self.get_config(key)
        if value is None:
            return []
        if isinstance(value, dict):
            return [{"name": k, **v} if isinstance(v, dict) else v for k, v in value.items()]
        return list(value)

    def set_if_not_none(self, section: Any, name: str, key: str) -> None:
        value = self.get_config(key)
        if value is not None:
            setattr(section, name, value)


def chart_config(values: dict) -> Config:
    """The Config the hub pod loads from ``values`` (merged over the chart's defaults)."""
    from kubernetes_asyncio import client

    chart = Chart(values)
    get_config = chart.get_config
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.JupyterHub.cleanup_servers = False

    for trait in ("concurrent_spawn_limit", "active_server_limit", "base_url", "allow_named_servers",
                  "named_server_limit_per_user", "authenticate_prometheus", "redirect_to_server",
                  "shutdown_on_logout", "template_paths", "template_vars"):
        chart.set_if_not_none(c.JupyterHub, trait, "hub." + _camel(trait))

    # 4.x: the app.kubernetes.io/* labels beside the old app/release/chart ones (kept until z2jh 5)
    name = get_config("nameOverride") or get_config("Chart.Name", "jupyterhub")
    chart_label = f'{get_config("Chart.Name")}-{get_config("Chart.Version").replace("+", "_")}'
    c.KubeSpawner.common_labels = {"app.kubernetes.io/name": name, "app": name,
                                   "app.kubernetes.io/instance": RELEASE, "release": RELEASE,
                                   "helm.sh/chart": chart_label, "chart": chart_label,
                                   "app.kubernetes.io/managed-by": "kubespawner"}
    c.KubeSpawner.namespace = NAMESPACE
    chart.set_if_not_none(c.Spawner, "consecutive_failure_limit", "hub.consecutiveFailureLimit")

    for trait, key in (
        ("pod_name_template", None), ("start_timeout", None), ("image_pull_policy", "image.pullPolicy"),
        ("events_enabled", "events"), ("extra_labels", None), ("extra_annotations", None), ("uid", None),
        ("fs_gid", None), ("service_account", "serviceAccountName"), ("storage_extra_labels", "storage.extraLabels"),
        ("node_selector", None), ("node_affinity_required", "extraNodeAffinity.required"),
        ("node_affinity_preferred", "extraNodeAffinity.preferred"),
        ("pod_affinity_required", "extraPodAffinity.required"),
        ("pod_affinity_preferred", "extraPodAffinity.preferred"),
        ("pod_anti_affinity_required", "extraPodAntiAffinity.required"),
        ("pod_anti_affinity_preferred", "extraPodAntiAffinity.preferred"),
        ("lifecycle_hooks", None), ("init_containers", None), ("extra_containers", None),
        ("mem_limit", "memory.limit"), ("mem_guarantee", "memory.guarantee"), ("cpu_limit", "cpu.limit"),
        ("cpu_guarantee", "cpu.guarantee"), ("extra_resource_limits", "extraResource.limits"),
        ("extra_resource_guarantees", "extraResource.guarantees"), ("environment", "extraEnv"),
        ("profile_list", None), ("extra_pod_config", None),
    ):
        chart.set_if_not_none(c.KubeSpawner, trait, "singleuser." + (key or _camel(trait)))

    image = get_config("singleuser.image.name")
    if image:
        tag = get_config("singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    c.KubeSpawner.allow_privilege_escalation = get_config("singleuser.allowPrivilegeEscalation")

    pull_secrets = []
    if get_config("imagePullSecret.automaticReferenceInjection") and get_config("imagePullSecret.create"):
        pull_secrets.append("image-pull-secret")
    pull_secrets += get_config("imagePullSecrets") or []
    pull_secrets += get_config("singleuser.image.pullSecrets") or []
    if pull_secrets:
        c.KubeSpawner.image_pull_secrets = pull_secrets

    if get_config("scheduling.userScheduler.enabled"):
        c.KubeSpawner.scheduler_name = "user-scheduler"
    if get_config("scheduling.podPriority.enabled"):
        c.KubeSpawner.priority_class_name = "priority"

    purpose = get_config("scheduling.userPods.nodeAffinity.matchNodePurpose")
    if purpose:
        term = {"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}
        if purpose == "prefer":
            c.KubeSpawner.node_affinity_preferred.append({"weight": 100, "preference": term})
        elif purpose == "require":
            c.KubeSpawner.node_affinity_required.append(term)
        elif purpose != "ignore":
            raise ValueError(f"Unrecognized value for matchNodePurpose: {purpose}")

    tolerations = (get_config("scheduling.userPods.tolerations", []) or []) + \
        (get_config("singleuser.extraTolerations", []) or [])
    if tolerations:
        c.KubeSpawner.tolerations = tolerations

    storage_type = get_config("singleuser.storage.type")
    if storage_type == "dynamic":
        pvc_name_template = get_config("singleuser.storage.dynamic.pvcNameTemplate")
        if pvc_name_template:  # 4.x: null keeps KubeSpawner's own default
            c.KubeSpawner.pvc_name_template = pvc_name_template
        volume_name_template = get_config("singleuser.storage.dynamic.volumeNameTemplate")
        c.KubeSpawner.storage_pvc_ensure = True
        chart.set_if_not_none(c.KubeSpawner, "storage_class", "singleuser.storage.dynamic.storageClass")
        chart.set_if_not_none(c.KubeSpawner, "storage_access_modes", "singleuser.storage.dynamic.storageAccessModes")
        chart.set_if_not_none(c.KubeSpawner, "storage_capacity", "singleuser.storage.capacity")
        c.KubeSpawner.volumes = [{"name": volume_name_template,
                                  "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
        c.KubeSpawner.volume_mounts = [{"mountPath": get_config("singleuser.storage.homeMountPath"),
                                        "name": volume_name_template,
                                        "subPath": get_config("singleuser.storage.dynamic.subPath")}]
    elif storage_type == "static":
        c.KubeSpawner.volumes = [{"name": "home",
                                  "persistentVolumeClaim": {"claimName": get_config("singleuser.storage.static.pvcName")}}]
        c.KubeSpawner.volume_mounts = [{"mountPath": get_config("singleuser.storage.homeMountPath"), "name": "home",
                                        "subPath": get_config("singleuser.storage.static.subPath")}]

    extra_files = get_config("singleuser.extraFiles", {}) or {}
    if extra_files:
        items = [{"key": k, "path": k, **({"mode": d["mode"]} if "mode" in d else {})} for k, d in extra_files.items()]
        c.KubeSpawner.volumes.append({"name": "files", "secret": {"secretName": "singleuser", "items": items}})
        c.KubeSpawner.volume_mounts.extend({"mountPath": d["mountPath"], "subPath": k, "name": "files"}
                                           for k, d in extra_files.items())
    c.KubeSpawner.volumes.extend(chart.get_config_list("singleuser.storage.extraVolumes"))
    c.KubeSpawner.volume_mounts.extend(chart.get_config_list("singleuser.storage.extraVolumeMounts"))

    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if get_config("cull.enabled", False):
        # the culler's permissions are scoped to what it needs (admin:users only with --cull-users)
        role = {"name": "jupyterhub-idle-culler", "services": ["jupyterhub-idle-culler"],
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}
        base_url = get_config("hub.baseUrl") or "/"
        cmd = ["python3", "-m", "jupyterhub_idle_culler",
               "--url=http://localhost:8081" + base_url.rstrip("/") + "/hub/api"]
        for flag, key in (("timeout", "cull.timeout"), ("cull-every", "cull.every"),
                          ("concurrency", "cull.concurrency")):
            if get_config(key):
                cmd.append(f"--{flag}={get_config(key)}")
        if get_config("cull.users"):
            cmd.append("--cull-users")
            role["scopes"].append("admin:users")
        if not get_config("cull.adminUsers"):
            cmd.append("--cull-admin-users=false")
        if get_config("cull.removeNamedServers"):
            cmd.append("--remove-named-servers")
        if get_config("cull.maxAge"):
            cmd.append(f'--max-age={get_config("cull.maxAge")}')
        c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": cmd})
        c.JupyterHub.load_roles.append(role)
    for key, service in (get_config("hub.services", {}) or {}).items():
        service.setdefault("name", key)
        service.pop("apiToken", None)
        service["api_token"] = chart.get_secret_value(f"hub.services.{key}.apiToken")
        c.JupyterHub.services.append(service)
    for key, role in (get_config("hub.loadRoles", {}) or {}).items():
        role.setdefault("name", key)
        c.JupyterHub.load_roles.append(role)

    unspecified = object()
    cmd = get_config("singleuser.cmd", unspecified)
    if cmd is not unspecified:
        c.Spawner.cmd = cmd
    chart.set_if_not_none(c.Spawner, "default_url", "singleuser.defaultUrl")

    # As the chart's file (3.x/4.x): a V1Container object, not a dict; ip read without a default (the
    # schema requires it); only TCP to port 80 of that address dropped.
    cloud_metadata = get_config("singleuser.cloudMetadata", {}) or {}
    if cloud_metadata.get("blockWithIptables") == True:  # noqa: E712 - the chart's own test
        c.KubeSpawner.init_containers.append(client.V1Container(
            name="block-cloud-metadata",
            image=f'{get_config("singleuser.networkTools.image.name")}:{get_config("singleuser.networkTools.image.tag")}',
            command=block_cloud_metadata_command(cloud_metadata["ip"]),
            security_context=client.V1SecurityContext(
                privileged=True, run_as_user=0, capabilities=client.V1Capabilities(add=["NET_ADMIN"])),
            resources=get_config("singleuser.networkTools.resources"),
        ))
    if get_config("debug.enabled", False):
        c.JupyterHub.log_level = "DEBUG"
        c.Spawner.debug = True

    c.JupyterHub.cookie_secret = chart.get_secret_value("hub.config.JupyterHub.cookie_secret")
    c.CryptKeeper.keys = chart.get_secret_value("hub.config.CryptKeeper.keys").split(";")

    for app, cfg in (get_config("hub.config", {}) or {}).items():
        if app == "JupyterHub":
            for k in ("proxy_auth_token", "cookie_secret", "services"):
                cfg.pop(k, None)
        elif app == "ConfigurableHTTPProxy":
            cfg.pop("auth_token", None)
        elif app == "CryptKeeper":
            cfg.pop("keys", None)
        c[app].update(cfg)

    # hub.extraConfig, in key order, with exactly the names the chart's exec() sees
    for key, source in sorted((get_config("hub.extraConfig", {}) or {}).items()):
        scope = {"c": c, "get_config": chart.get_config, "get_secret_value": chart.get_secret_value,
                 "os": os, "sys": sys, "__name__": "__main__"}
        exec(compile(source, f"hub.extraConfig.{key}", "exec"), scope)
    return c
