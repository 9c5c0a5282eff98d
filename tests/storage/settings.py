"""Storage settings for the pure tests: what a spawner configured with some values would hold."""

from __future__ import annotations

from types import SimpleNamespace

from kubespawner import KubeSpawner

from jupyterhub_ext.storage import StorageSettings, StorageTraits
from jupyterhub_ext.storage.mixin import DEFAULT_GID, DEFAULT_UID


def settings(**changes) -> StorageSettings:
    """The settings of a spawner configured with ``changes``; the traits' own defaults for everything else."""
    ours = StorageTraits.class_trait_names()
    traits = StorageTraits(**{k: v for k, v in changes.items() if k in ours})
    values = {name: getattr(traits, name) for name in ours}
    values.update(pvc_name_template=KubeSpawner.class_traits()["pvc_name_template"].default_value,
                  uid=DEFAULT_UID, gid=DEFAULT_GID, fs_gid=DEFAULT_GID)
    values.update({k: v for k, v in changes.items() if k not in ours})
    return StorageSettings.from_traits(SimpleNamespace(**values))
