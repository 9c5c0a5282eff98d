"""The embedded default: the whole platform on one machine (``jupyterhub -f jupyterhub_config.py``).

``LocalProfilesSpawner`` (entry point ``profiles-local``) offers the same catalog, access rules, home naming
and course seeder as ``ProfilesKubeSpawner``, with each user's JupyterLab as a local process. See docs/local.md.

Modules: ``spawner`` (the spawner), ``accounts`` (whose account a server runs as, the data directory),
``hardware`` (what this machine can run), ``form`` (the spawn form), ``contents`` (the read-only shared folder
inside a user's server; imported there only), ``hub`` (helpers for jupyterhub_config.py).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalProfilesSpawner"]


def __getattr__(name: str) -> Any:
    # Lazy: the user's server imports jupyterhub_ext.local.contents and must not pay for the hub's imports.
    if name == "LocalProfilesSpawner":
        from .spawner import LocalProfilesSpawner

        return LocalProfilesSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
