"""The storage plan applied by a KubeSpawner subclass: settings from its traits, checks at start-up, the plan
merged into its traits at each start."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping

from traitlets import default

from ..catalog.access import Who
from ..configkey import Z2JH_KEYS, config_key
from ..errors import ConfigError
from ..traitvalues import mount_path_of, name_of
from . import merge
from .naming import home_subpath, user_fields
from .plan import Plan, plan_storage
from .security import SECURITY_TRAITS, check_no_clash, check_security
from .settings import StorageSettings, check_settings
from .traits import StorageTraits

DEFAULT_UID, DEFAULT_GID = 1000, 100

# Every KubeSpawner trait apply_storage_plan may set: the spawner restores their configured values at the
# beginning of each start, and hands their values from before the profile to apply_storage_plan.
STORAGE_TRAITS = ("volumes", "volume_mounts", "init_containers", "tolerations", "container_security_context",
                  "pod_security_context", "uid", "gid", "fs_gid", "allow_privilege_escalation", "privileged",
                  "storage_pvc_ensure", "storage_capacity", "storage_class")

# (key of the override, the override) for every profile or choice: what check_storage_config checks
Overrides = Iterable[tuple[str, Mapping[str, Any]]]


class StorageMixin(StorageTraits):
    """Home and shared volumes and a non-root user container, for a KubeSpawner subclass.

    The spawner calls :meth:`check_storage_config` at hub start-up with every profile override, and
    :meth:`apply_storage_plan` at each start, after the profile's overrides, with the values of
    :data:`STORAGE_TRAITS` from before them.
    """

    # KubeSpawner's uid/gid/fs_gid default to the image's user; homes need a fixed, non-root owner.
    @default("uid")
    def _uid_default(self):
        return DEFAULT_UID

    @default("gid")
    def _gid_default(self):
        return DEFAULT_GID

    @default("fs_gid")
    def _fs_gid_default(self):
        return DEFAULT_GID

    def config_key(self, trait: str) -> str:
        """Where ``trait`` is set (our section, KubeSpawner's or Spawner's), with the z2jh value when known."""
        return config_key(self, trait, helm_keys=Z2JH_KEYS)

    def storage_settings(self, base: Mapping[str, Any] | None = None) -> StorageSettings:
        """The settings, checked; ``base`` holds the configured uid/gid/fs_gid when a profile may have set them."""
        s = StorageSettings.from_traits(self)
        if base is not None:
            s = replace(s, uid=base["uid"], gid=base["gid"], fs_gid=base["fs_gid"])
        check_settings(s, self.config_key)
        return s

    def home_dir(self) -> str | None:
        """This user's home directory on ``home_pvc`` (``efs`` mode), or None."""
        if self.home_mode != "efs":
            return None
        return home_subpath(self.home_subpath_template, self.home_dir_scheme, self.user.name,
                            user_fields(self.user.name, self.user.id))

    def load_state(self, state):
        """KubeSpawner's, plus: in ``pvc`` mode a user with no saved state at all keeps a KubeSpawner 6 claim.

        KubeSpawner 7 (``handle_legacy_names``) mounts an existing 6.x-named claim (``claim-<escaped name>``)
        instead of making a new one only when the state came from 6.x. A user with no state (a hub database
        made anew) would get a new, empty disk while their 6.x one sits beside it. KubeSpawner's own check runs
        for them too: it keeps the new-style claim when it exists, else the 6.x one when that exists, once;
        the claim in use is then saved in the state.
        """
        super().load_state(state)  # type: ignore[misc]
        # "unknown" is KubeSpawner's own mark for state from before 7, the one its legacy-name check looks at
        # (jupyterhub_ext.compat lists this attribute)
        if not state and self.home_mode == "pvc" and self.handle_legacy_names \
                and self._state_kubespawner_version is None:
            self._state_kubespawner_version = "unknown"

    # -- start-up ------------------------------------------------------------------------------------

    def check_storage_config(self, overrides: Overrides) -> None:
        """Refuse, naming the key, a storage or security setting that cannot work or would allow root."""
        s = self.storage_settings()
        if s.home_mode == "efs" and s.home_dir_scheme == "safe" and "{username}" in s.home_subpath_template:
            self.log.warning("home_dir_scheme 'safe' names homes with KubeSpawner 7's slugs, whose 32-bit hash can "
                             "give two users one directory; 'escape' cannot (docs/storage.md)")
        check_security({n: getattr(self, n) for n in SECURITY_TRAITS}, self.config_key)
        sample = plan_storage(Who("user", frozenset(s.shared_group_dirs)), "user", s)
        home_pvc = s.home_pvc if s.home_mode == "efs" else ""
        check_no_clash(self.volumes, self.volume_mounts, sample, self.config_key, home_pvc)
        for path, override in overrides:
            if isinstance(override, Mapping):
                _check_override(path, override, sample, s)

    # -- each start ----------------------------------------------------------------------------------

    def apply_storage_plan(self, who: Who, base: Mapping[str, Any]) -> Plan:
        """Add this user's storage and the non-root settings to the traits, on top of the profile's overrides.

        ``base`` holds the values of :data:`STORAGE_TRAITS` before the profile's overrides (as the configuration
        and this start's hooks left them): entries a profile's list override dropped come back from it. Each
        value keeps its shape. Raises ConfigError if the effective values (after a profile's overrides) would allow root.
        """
        s = self.storage_settings(base)
        try:
            home = self.home_dir()
        except ValueError as e:
            raise ConfigError(self.config_key("home_subpath_template"),
                              f"no safe home directory for user {who.name!r}: {e}") from None
        plan = plan_storage(who, home, s)
        # what the profile's overrides made of the security-relevant traits must still be safe
        check_security({n: getattr(self, n) for n in SECURITY_TRAITS if n not in ("uid", "gid", "fs_gid")},
                       self.config_key)
        for n in ("uid", "gid", "fs_gid"):
            if getattr(self, n) != plan.traits[n]:
                raise ConfigError(self.config_key(n), f"a profile may not change {n} ({getattr(self, n)!r}): "
                                                      f"homes are owned by {plan.traits[n]!r}")
        self._merge_plan(plan, base, who)
        self.log.info("Storage for %s: home %s, shared %s", who.name,
                      f"{s.home_pvc}:{home}" if home else s.home_mode, plan.shared_access or "none")
        return plan

    def _merge_plan(self, plan: Plan, base: Mapping[str, Any], who: Who) -> None:
        self.volumes, replaced = merge.merge_keyed(base["volumes"], self.volumes, name_of, plan.volumes)
        self.volume_mounts, replaced_mounts = merge.merge_keyed(base["volume_mounts"], self.volume_mounts,
                                                                mount_path_of, plan.volume_mounts)
        for what in replaced + replaced_mounts:
            self.log.warning("jupyterhub_ext storage: %r from the configuration or profile was replaced by the "
                             "storage plan for %s", what, who.name)
        self.init_containers = merge.merge_init_containers(base["init_containers"], self.init_containers,
                                                           plan.init_containers)
        self.tolerations = merge.merge_tolerations(base["tolerations"], self.tolerations)
        self.container_security_context = merge.merge_security(self.container_security_context,
                                                               plan.container_security_context)
        self.pod_security_context = merge.merge_security(self.pod_security_context, plan.pod_security_context)
        for name, value in plan.traits.items():
            setattr(self, name, value)


def _check_override(path: str, override: Mapping[str, Any], sample: Plan, s: StorageSettings) -> None:
    def key(name: str) -> str:
        return f"{path}.{name}"

    check_security(override, key)
    for name in ("uid", "gid", "fs_gid"):
        if name in override and override[name] != getattr(s, name):
            raise ConfigError(key(name), f"a profile may not change {name}: homes are owned by {getattr(s, name)}")
    check_no_clash(override.get("volumes"), override.get("volume_mounts"), sample, key,
                   s.home_pvc if s.home_mode == "efs" else "")
