"""What the hub refuses at start-up and at each start: a user container with root, files writable by everyone,
configured volumes that would take the storage plan's names or expose the homes. Pure; errors name the key."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

from ..catalog.model import Catalog
from ..errors import ConfigError
from ..traitvalues import claim_of, items, mount_path_of, name_of
from .plan import Plan
from .settings import within

# KubeSpawner traits that decide what a user container may do: checked as configured and after every override.
SECURITY_TRAITS = ("uid", "gid", "fs_gid", "privileged", "allow_privilege_escalation", "container_security_context",
                   "pod_security_context", "environment", "extra_pod_config", "extra_container_config", "cmd",
                   "lifecycle_hooks", "init_containers", "extra_containers")

# Environment variables that make the docker-stacks start script do root things.
ROOT_ENV = ("GRANT_SUDO", "CHOWN_HOME", "CHOWN_HOME_OPTS", "CHOWN_EXTRA", "CHOWN_EXTRA_OPTS")
_FALSY = {"", "0", "no", "false", "off", "n"}
# chmod giving write to everyone: octal modes whose last digit has the write bit, or symbolic o/a(+|=)...w
_CHMOD = re.compile(r"\bchmod\b(?P<args>[^;&|\n]*)")
_OCTAL_WW = re.compile(r"(?:^|\s)0*[0-7]?[0-7]?[0-7][2367](?=\s|$)")
_SYMBOLIC_WW = re.compile(r"(?:^|[\s,])[ugo]*[oa][ugoa]*[+=][rwxXst]*w")

def world_writable_chmod(text: str) -> bool:
    """Whether a shell text holds a ``chmod`` that makes something writable by everyone (777, o+w, a=rwx...)."""
    for m in _CHMOD.finditer(text):
        args = m["args"]
        if _OCTAL_WW.search(args) or _SYMBOLIC_WW.search(args):
            return True
    return False


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if hasattr(value, "to_dict") and not isinstance(value, Mapping):  # a Kubernetes client object
        value = value.to_dict()
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
        if value and all(isinstance(v, str) for v in value):
            yield path, " ".join(value)  # a command split into arguments: ["chmod", "777", "x"]


def _check_context(ctx: Any, key: str, *, pod: bool) -> None:
    if callable(ctx):
        raise ConfigError(key, "must be a mapping (a callable cannot be checked for root settings)")
    ctx = dict(ctx or {})
    for field_ in ("runAsUser", "runAsGroup", "fsGroup"):
        if field_ in ctx and ctx[field_] == 0:
            raise ConfigError(f"{key}.{field_}", "0 is root; user containers never run as root")
    if ctx.get("runAsNonRoot") is False:
        raise ConfigError(f"{key}.runAsNonRoot", "must not be false")
    if 0 in (ctx.get("supplementalGroups") or []):
        raise ConfigError(f"{key}.supplementalGroups", "group 0 is root's")
    if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        raise ConfigError(f"{key}.seccompProfile", "must not be Unconfined")
    if not pod:
        if ctx.get("privileged"):
            raise ConfigError(f"{key}.privileged", "user containers are never privileged")
        if ctx.get("allowPrivilegeEscalation"):
            raise ConfigError(f"{key}.allowPrivilegeEscalation", "must be false (no sudo, no setuid)")
        if (ctx.get("capabilities") or {}).get("add"):
            raise ConfigError(f"{key}.capabilities.add", "user containers get no capabilities")


def check_security(values: Mapping[str, Any], key: Callable[[str], str]) -> None:
    """Refuse trait values that would give the user container root, or make files writable by everyone.

    ``values`` holds KubeSpawner trait values (all of them, or one override's); ``key(trait)`` names where
    one was set, for the error.
    """
    for name in ("uid", "gid", "fs_gid"):
        if name in values:
            v = values[name]
            if callable(v):
                raise ConfigError(key(name), "must be a number: homes are owned by one fixed uid/gid, checked "
                                             "at start-up")
            if v is None or isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(key(name), f"must be a positive integer (0 is root), got {v!r}")
    if values.get("privileged"):
        raise ConfigError(key("privileged"), "user containers are never privileged")
    if values.get("allow_privilege_escalation"):
        raise ConfigError(key("allow_privilege_escalation"), "must be false (no sudo, no setuid binaries)")
    if "container_security_context" in values:
        _check_context(values["container_security_context"], key("container_security_context"), pod=False)
    if "pod_security_context" in values:
        _check_context(values["pod_security_context"], key("pod_security_context"), pod=True)
    env = values.get("environment")
    if isinstance(env, Mapping):
        check_environment(env, key("environment"))
    extra_pod = values.get("extra_pod_config") or {}
    if isinstance(extra_pod, Mapping):
        for k in ("securityContext", "volumes", "initContainers", "containers"):
            if k in extra_pod:
                raise ConfigError(f"{key('extra_pod_config')}.{k}", "would replace what this spawner sets; use "
                                  "pod_security_context, volumes, init_containers or extra_containers")
        for k in ("hostPID", "hostIPC", "hostNetwork"):
            if extra_pod.get(k):
                raise ConfigError(f"{key('extra_pod_config')}.{k}", "user pods never share the node's namespaces")
    extra_container = values.get("extra_container_config") or {}
    if isinstance(extra_container, Mapping):
        for k in ("securityContext", "volumeMounts"):
            if k in extra_container:
                raise ConfigError(f"{key('extra_container_config')}.{k}", "would replace what this spawner sets; "
                                  "use container_security_context or volume_mounts")
    for name in ("cmd", "lifecycle_hooks", "init_containers", "extra_containers", "environment",
                 "extra_container_config"):
        if name in values:
            for at, text in _strings(values[name], key(name)):
                if world_writable_chmod(text):
                    raise ConfigError(at, f"{text!r} makes files writable by every user; homes are owned by the "
                                          "user (uid/gid) and never need that")


def check_environment(env: Mapping[str, Any], key: str) -> None:
    for name in ROOT_ENV:
        value = env.get(name)
        if isinstance(value, str) and value.strip().lower() not in _FALSY:
            raise ConfigError(f"{key}.{name}", "needs a root start; user containers never run as root "
                              "(homes are owned by the user already, see docs/storage.md)")
    for name in ("NB_UID", "NB_GID"):
        if str(env.get(name, "")).strip() == "0":
            raise ConfigError(f"{key}.{name}", "0 is root")


def check_no_clash(volumes: Any, mounts: Any, plan: Plan, key: Callable[[str], str], home_pvc: str = "") -> None:
    """Configured volumes and mounts must not take the names and paths the storage plan uses.

    With ``home_pvc`` (``efs`` mode), no other volume may claim the homes' PVC: mounted anywhere else, its root
    would show every user's home.
    """
    for v in items(volumes):
        name = name_of(v)
        if name in plan.volumes and v != plan.volumes[name]:
            raise ConfigError(key("volumes"), f"volume name {name!r} is used by the {name} volume of "
                                              "jupyterhub_ext; rename yours")
        if home_pvc and claim_of(v) == home_pvc and name not in plan.volumes:
            raise ConfigError(key("volumes"), f"volume {name!r} mounts the homes' PVC {home_pvc!r}, which would "
                              "expose every user's home; only the home mount may use it")
    ours = list(plan.volume_mounts)
    for m in items(mounts):
        path = mount_path_of(m)
        if path in plan.volume_mounts and m != plan.volume_mounts[path]:
            hint = (" (the chart's singleuser.storage: set singleuser.storage.type to none, storage is "
                    "configured with ProfilesKubeSpawner.home_mode)")
            raise ConfigError(key("volume_mounts"), f"{path!r} is already mounted by jupyterhub_ext{hint}")
        for p in ours:
            if path != p and within(p, path):
                raise ConfigError(key("volume_mounts"), f"a mount at {path!r} would contain the storage mount {p!r}")


def check_catalog_commands(catalog: Catalog, path: str) -> None:
    """A profile's environment and command get the checks the configured ones get."""
    for i, profile in enumerate(catalog.profiles):
        at = f"{path}[{i}]"
        check_environment(profile.env, f"{at}.env")
        for j, arg in enumerate(profile.command or ()):
            if world_writable_chmod(arg):
                raise ConfigError(f"{at}.command[{j}]", f"{arg!r} makes files writable by every user")
