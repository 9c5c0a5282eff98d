"""Which config key an error names: the one the operator actually wrote."""

from __future__ import annotations

from functools import cache
from typing import Mapping

from traitlets.config import Configurable

# z2jh values that set a KubeSpawner trait (the chart's jupyterhub_config.py), for errors operators can act on
Z2JH_KEYS = {f"KubeSpawner.{trait}": helm for trait, helm in {
    "uid": "singleuser.uid", "fs_gid": "singleuser.fsGid", "environment": "singleuser.extraEnv",
    "cmd": "singleuser.cmd", "allow_privilege_escalation": "singleuser.allowPrivilegeEscalation",
    "lifecycle_hooks": "singleuser.lifecycleHooks", "init_containers": "singleuser.initContainers",
    "extra_containers": "singleuser.extraContainers", "extra_pod_config": "singleuser.extraPodConfig",
    "volumes": "singleuser.storage", "volume_mounts": "singleuser.storage",
}.items()}


def config_key(obj: Configurable, trait: str, default_section: str | None = None,
               helm_keys: Mapping[str, str] | None = None) -> str:
    """``<Section>.<trait>`` for the most specific section of ``obj``'s class hierarchy that sets ``trait``
    in ``obj.config`` (``Authenticator.allowed_users``, ``KubeSpawner.uid``), the section traitlets took the
    value from; otherwise ``default_section`` (by default the class name).

    ``helm_keys`` maps ``<Section>.<trait>`` names to the Helm value the chart sets them from, appended as
    ``(Helm: singleuser.uid)``. A setting passed to the constructor rather than through config names the class.
    """
    for section in _sections_most_specific_first(type(obj)):  # the one traitlets applied last comes first
        if f"{section}.{trait}" in obj.config:
            key = f"{section}.{trait}"
            helm = (helm_keys or {}).get(key)
            return f"{key} (Helm: {helm})" if helm else key
    return f"{default_section or obj.__class__.__name__}.{trait}"


@cache
def _sections_most_specific_first(cls: type[Configurable]) -> tuple[str, ...]:
    return tuple(reversed(cls.section_names()))  # a class's sections never change; every start asks
