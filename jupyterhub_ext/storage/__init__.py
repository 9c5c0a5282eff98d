"""Home and shared volumes, and a user container that never runs as root.

One job per module, pure except the last:

* :mod:`.naming` - the per-user directory on a shared filesystem (also the local run's home names);
* :mod:`.settings` - the settings as one value (the spawner's trait values) and their start-up checks;
* :mod:`.plan` - ``(who, home directory, settings) -> volumes, mounts, init container, security contexts``;
* :mod:`.merge` - the plan merged into what the chart and a profile configured, keeping each value's shape;
* :mod:`.security` - what the hub refuses: root in the user container, world-writable files, clashing volumes;
* :mod:`.traits` and :mod:`.mixin` - the settings as traits, and the spawner glue (imported from
  ``jupyterhub_ext.storage.mixin`` by the spawner only: the local run uses the pure modules).

docs/storage.md explains the modes and the reasons; docs/architecture.md where this sits in a spawn.
"""

from .merge import merge_init_containers, merge_keyed, merge_security, merge_tolerations
from .naming import (DIR_SCHEMES, HOME_FIELDS, LEGACY_MAX, check_home_template, check_relative_path, home_subpath,
                     legacy_dir_name, user_fields)
from .plan import INIT_CONTAINER, OWNERSHIP_SCRIPT, Plan, plan_storage, writes_shared
from .security import check_environment, check_no_clash, check_security, world_writable_chmod
from .settings import StorageSettings, check_settings, could_be_users_claim
from .traits import HOME_MODES, OWNERSHIP_MODES, NamingTraits, StorageTraits

__all__ = [
    "DIR_SCHEMES", "HOME_FIELDS", "HOME_MODES", "INIT_CONTAINER", "LEGACY_MAX",
    "NamingTraits", "OWNERSHIP_MODES", "OWNERSHIP_SCRIPT", "Plan", "StorageSettings", "StorageTraits", "check_environment", "check_home_template", "check_no_clash",
    "check_relative_path", "check_security", "check_settings", "could_be_users_claim", "home_subpath",
    "legacy_dir_name", "merge_init_containers", "merge_keyed", "merge_security", "merge_tolerations",
    "plan_storage", "user_fields", "world_writable_chmod", "writes_shared",
]
