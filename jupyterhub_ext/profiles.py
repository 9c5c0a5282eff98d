"""Catalog settings and per-user views, shared by ProfilesKubeSpawner and the local spawner."""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from typing import Any

import yaml
from traitlets import Bool, HasTraits, List, Unicode

from .catalog import Catalog, Selection, SelectionError, Settings, View, Who, parse_catalog, resolve, view_for
from .catalog.hardware import NVIDIA_GPU, NVIDIA_GPU_SHARED
from .errors import ConfigError, SpawnRefused

BUILTIN_PREFIX = "builtin:"


@functools.lru_cache(maxsize=16)  # asked at every spawn; importlib.resources is not free (benchmarks/spawn_burst.py)
def builtin_catalog_path(name: str) -> str:
    return str(resources.files("jupyterhub_ext") / "catalogs" / f"{name}.yaml")


def load_catalog_file(path: str, key: str) -> list:
    """Profiles from a YAML file with a top-level ``profiles`` list (``builtin:eks`` is the shipped one)."""
    return json.loads(_catalog_file_json(path, key))


def _catalog_file_json(path: str, key: str) -> str:
    """The file's profiles as canonical JSON (the parse cache's key). Re-read only when the file changes: every
    form and spawn asks for the catalog, and parsing YAML each time cost milliseconds (benchmarks/form.py)."""
    real = builtin_catalog_path(path[len(BUILTIN_PREFIX):]) if path.startswith(BUILTIN_PREFIX) else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ConfigError(key, f"no catalog file at {path!r}") from None
    return _read_catalog_file(path, real, key, st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=16)
def _read_catalog_file(path: str, real: str, key: str, mtime_ns: int, size: int, inode: int) -> str:
    try:
        with open(real, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(key, f"no catalog file at {path!r}") from None
    except yaml.YAMLError as e:
        raise ConfigError(key, f"{path!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or "profiles" not in data:
        raise ConfigError(key, f"{path!r} must hold a mapping with a 'profiles' list")
    try:
        return json.dumps(data["profiles"], sort_keys=True)
    except TypeError:
        raise ConfigError(f"{key}({path}).profiles", "must be plain data (lists, mappings, strings, numbers)") from None


@functools.lru_cache(maxsize=16)
def _parse_cached(data_json: str, settings: Settings, path: str) -> Catalog:
    return parse_catalog(json.loads(data_json), settings, path)


# (profiles as configured, settings, path, parsed catalog), most recent first
_INLINE_CATALOGS: list[tuple[list, Settings, str, Catalog]] = []


@functools.lru_cache(maxsize=4096)
def _view_cached(catalog: Catalog, who: Who, admins_see_all: bool) -> View:
    return view_for(catalog, who, admins_see_all=admins_see_all)


@functools.lru_cache(maxsize=16)
def _named_in_rules(catalog: Catalog) -> tuple[frozenset[str], frozenset[str]]:
    """The groups and users that some access rule of ``catalog`` names."""
    groups: set[str] = set()
    users: set[str] = set()
    for profile in catalog.profiles:
        rules = [profile.access]
        for option in profile.options:
            rules += [c.access for c in option.choices]
            if option.free_text is not None:
                rules.append(option.free_text.access)
        for access in rules:
            groups |= access.groups
            users |= access.users
    return frozenset(groups), frozenset(users)


def view_key(catalog: Catalog, who: Who) -> Who:
    """``who`` reduced to what the catalog's rules look at, so users alike share one cached view (and form)."""
    groups, users = _named_in_rules(catalog)
    return Who(name=who.name if who.name in users else "", groups=who.groups & groups, admin=who.admin)


class CatalogMixin(HasTraits):
    """Traits and helpers for a spawner that offers a validated catalog of server profiles."""

    profiles = List(
        config=True,
        help="""The server-profile catalog: a list of profiles (see docs/catalog.md for the format).

        Settable from Helm as ``hub.config.ProfilesKubeSpawner.profiles``. Validated when the hub starts:
        a mistake stops the hub with a message naming the exact key. Use either this or ``catalog_file``.
        """,
    )
    catalog_file = Unicode(
        "",
        config=True,
        help="""A YAML file with a top-level ``profiles`` list, or ``builtin:eks`` for the shipped EKS catalog.

        Lets Helm values, the local run and tests load one catalog instead of copying it.
        """,
    )
    node_pool_label = Unicode(
        "karpenter.sh/nodepool",
        config=True,
        help="Node label that ``hardware.node_pool`` selects on (Karpenter's NodePool label by default).",
    )
    gpu_timeslice_resource = Unicode(
        NVIDIA_GPU,
        config=True,
        help=f"""Extended resource a ``gpu-timeslice`` profile requests: ``{NVIDIA_GPU}`` (device plugin with
        time-slicing replicas) or ``{NVIDIA_GPU_SHARED}`` (with ``renameByDefault: true``).""",
    )
    extra_mig_profiles = List(
        Unicode(),
        config=True,
        help="MIG profile names admitted beyond the A100/H100/H200 ones (e.g. ``['1g.6gb']`` for another GPU).",
    )
    admins_see_all = Bool(
        True,
        config=True,
        help="JupyterHub admins see and may start every profile and choice, whatever its access rule.",
    )

    catalog_config_name = "ProfilesKubeSpawner"  # how errors name our section

    def section_of(self, trait: str) -> str:
        """The section an error about ``trait`` names: where the operator wrote it."""
        return self.catalog_config_name

    def _settings(self) -> Settings:
        if self.gpu_timeslice_resource not in (NVIDIA_GPU, NVIDIA_GPU_SHARED):
            raise ConfigError(f"{self.section_of('gpu_timeslice_resource')}.gpu_timeslice_resource",
                              f"expected {NVIDIA_GPU!r} or {NVIDIA_GPU_SHARED!r}")
        return Settings(
            node_pool_label=self.node_pool_label,
            timeslice_resource=self.gpu_timeslice_resource,
            extra_mig_profiles=frozenset(self.extra_mig_profiles),
        )

    @property
    def catalog_path(self) -> str:
        """How errors name the catalog's profiles: ``<section>.profiles`` or ``<section>.catalog_file(<file>).profiles``."""
        if self.catalog_file:
            return f"{self.section_of('catalog_file')}.catalog_file({self.catalog_file}).profiles"
        return f"{self.section_of('profiles')}.profiles"

    @property
    def catalog(self) -> Catalog | None:
        """The parsed catalog, or None when neither ``profiles`` nor ``catalog_file`` is set."""
        if self.profiles and self.catalog_file:
            raise ConfigError(f"{self.section_of('catalog_file')}.catalog_file",
                              "set either profiles or catalog_file, not both")
        if self.catalog_file:
            key = _catalog_file_json(self.catalog_file, f"{self.section_of('catalog_file')}.catalog_file")
            return _parse_cached(key, self._settings(), self.catalog_path)
        if self.profiles:
            return self._inline_catalog(self.profiles, self._settings(), self.catalog_path)
        return None

    def _inline_catalog(self, profiles: list, settings: Settings, path: str) -> Catalog:
        """The parsed ``profiles``, found without serialising them again: every form and spawn asks for the
        catalog, and JSON-encoding a 50-profile list cost several ms each time (benchmarks/form.py). This
        spawner's own list is recognised by identity (traits are replaced, not edited in place); another
        spawner's copy of the same configured list by equality, which is an order of magnitude cheaper."""
        memo = getattr(self, "_inline_catalog_memo", None)
        if memo is not None and memo[0] is profiles and memo[1] == settings and memo[2] == path:
            return memo[3]
        for known, known_settings, known_path, catalog in _INLINE_CATALOGS:
            if known_settings == settings and known_path == path and known == profiles:
                break
        else:
            try:
                key = json.dumps(profiles, sort_keys=True)
            except TypeError:
                raise ConfigError(path, "must be plain data (lists, mappings, strings, numbers)") from None
            catalog = _parse_cached(key, settings, path)
            _INLINE_CATALOGS.insert(0, (json.loads(key), settings, path, catalog))
            del _INLINE_CATALOGS[8:]
        self._inline_catalog_memo = (profiles, settings, path, catalog)
        return catalog

    def who(self) -> Who:
        """The spawner's user, as the catalog's access rules and the storage plan see them."""
        user = self.user
        groups = frozenset(g.name for g in (getattr(user, "groups", None) or []))
        return Who(name=user.name, groups=groups, admin=bool(getattr(user, "admin", False)))

    def user_view_key(self) -> tuple[Catalog, Who, bool]:
        """What this user's view depends on: users with the same key see the same profiles."""
        catalog = self.catalog
        assert catalog is not None
        return catalog, view_key(catalog, self.who()), self.admins_see_all

    def user_view(self) -> View:
        return _view_cached(*self.user_view_key())

    def selection_for(self, user_options: Any) -> Selection:
        """Check a request against this user's view; refuse with a message the user sees."""
        try:
            return resolve(self.user_view(), user_options)
        except SelectionError as e:
            self.log.warning("Refused spawn request for %s: %s", self.user.name, e)
            raise SpawnRefused(str(e)) from None
