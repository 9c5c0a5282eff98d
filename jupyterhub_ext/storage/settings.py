"""The storage settings as one value, and the start-up checks of that value.

:class:`StorageSettings` holds the trait values of the spawner (field names are the trait names), so nothing
here repeats a default; what the traits' own types already enforce (``Enum`` choices) is not checked again.
"""

from __future__ import annotations

import posixpath
import re
import string
from dataclasses import dataclass, fields
from typing import Any, Callable

from ..catalog.quantities import QuantityError, parse_storage
from ..errors import ConfigError
from .naming import LITERAL_RE, check_home_template, check_relative_path

KeyOf = Callable[[str], str]  # trait name -> the key as the operator wrote it, for errors


@dataclass(frozen=True)
class StorageSettings:
    """Everything the storage plan depends on besides the user: the spawner's trait values."""

    home_mode: str
    home_pvc: str
    home_mount_path: str
    home_subpath_template: str
    home_dir_scheme: str
    home_pvc_size: str
    home_storage_class: str
    home_ownership: str
    home_init_image: str
    shared_pvc: str
    shared_subpath: str
    shared_mount_path: str
    shared_write_groups: frozenset[str]
    shared_group_dirs: tuple[str, ...]
    # KubeSpawner's own traits the plan reads
    pvc_name_template: str
    uid: Any
    gid: Any
    fs_gid: Any

    @classmethod
    def from_traits(cls, obj: Any) -> "StorageSettings":
        """The values of ``obj``'s traits of these names (lists become immutable)."""
        values = {f.name: getattr(obj, f.name) for f in fields(cls)}
        values["shared_write_groups"] = frozenset(values["shared_write_groups"])
        values["shared_group_dirs"] = tuple(values["shared_group_dirs"])
        return cls(**values)


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_GROUP_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")


def _check_resource_name(value: str, key: str, what: str) -> None:
    if not (len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value)):
        raise ConfigError(key, f"{value!r} is not a valid {what} name (lowercase letters, digits, '-', '.')")


def _check_mount_path(value: str, key: str) -> None:
    if not value.startswith("/") or posixpath.normpath(value) != value or value == "/":
        raise ConfigError(key, f"{value!r} must be an absolute, normalised path other than '/'")
    if any(c in value for c in "{}:\0") or any(c.isspace() for c in value):
        raise ConfigError(key, f"{value!r} must not contain braces, ':' or spaces")


def within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _literal_prefix(template: str) -> str:
    """The leading path components of a home template that hold no field ('' for '{username}')."""
    out = []
    for part in template.split("/")[:-1]:
        if "{" in part:
            break
        out.append(part)
    return "/".join(out)


def could_be_users_claim(claim: str, template: str) -> bool:
    """Whether KubeSpawner's ``pvc_name_template`` can render to ``claim`` for some user or server.

    Every field is taken to render to anything (the slug schemes differ), so this over-approximates: a claim it
    says no to is never a user's. KubeSpawner strips trailing '-' from a rendering unless the template itself
    ends with one, so ``claim`` plus some '-' matching is enough.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return False  # not a template KubeSpawner could render either
    pattern = re.compile("".join(re.escape(literal) + (".*" if name is not None else "")
                                 for literal, name, _, _ in parts))
    if template.endswith("-"):
        return pattern.fullmatch(claim) is not None
    return any(pattern.fullmatch(claim + "-" * k) for k in range(len(template) + 1))


def check_owner_id(value: Any, key: str) -> None:
    if callable(value) or value is None or isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(key, f"must be a positive integer (0 is root, and homes need a fixed owner), "
                               f"got {value!r}")


_PASSED: list[StorageSettings] = []  # settings that passed, newest first: every start checks the same few


def check_settings(s: StorageSettings, key: KeyOf) -> None:
    """Refuse settings that cannot work or that would expose one user's files to another."""
    if s in _PASSED:
        return
    _check_settings(s, key)
    _PASSED.insert(0, s)
    del _PASSED[16:]


def _check_settings(s: StorageSettings, key: KeyOf) -> None:
    for name in ("uid", "gid", "fs_gid"):
        check_owner_id(getattr(s, name), key(name))
    _check_mount_path(s.home_mount_path, key("home_mount_path"))
    if s.home_mode == "efs":
        _check_resource_name(s.home_pvc, key("home_pvc"), "PersistentVolumeClaim")
        check_home_template(s.home_subpath_template, key("home_subpath_template"))
    if s.home_mode == "pvc":
        try:
            parse_storage(s.home_pvc_size)
        except QuantityError:
            raise ConfigError(key("home_pvc_size"), f"expected a storage size such as '1Gi', got "
                                                    f"{s.home_pvc_size!r}") from None
        if s.home_storage_class:
            _check_resource_name(s.home_storage_class, key("home_storage_class"), "StorageClass")
    if s.home_mode != "none" and s.home_ownership == "init-container" and not _IMAGE.fullmatch(s.home_init_image):
        raise ConfigError(key("home_init_image"), f"{s.home_init_image!r} is not an image reference")
    _check_shared(s, key)


def _check_shared(s: StorageSettings, key: KeyOf) -> None:
    if not s.shared_pvc:
        if s.shared_group_dirs:
            raise ConfigError(key("shared_group_dirs"), "needs a shared volume: set shared_pvc")
        return
    _check_resource_name(s.shared_pvc, key("shared_pvc"), "PersistentVolumeClaim")
    _check_mount_path(s.shared_mount_path, key("shared_mount_path"))
    if s.shared_subpath:
        try:
            check_relative_path(s.shared_subpath)
        except ValueError as e:
            raise ConfigError(key("shared_subpath"), str(e)) from None
        if not all(LITERAL_RE.fullmatch(p) for p in s.shared_subpath.split("/")):
            raise ConfigError(key("shared_subpath"), "use letters, digits, '.', '_', '-' and '/'")
    if s.home_mode != "none" and within(s.home_mount_path, s.shared_mount_path):
        # the home would be mounted inside a read-only mount, and hidden under the shared one
        raise ConfigError(key("shared_mount_path"), f"{s.shared_mount_path!r} contains the home mount "
                                                    f"{s.home_mount_path!r}; mount the shared volume elsewhere")
    if s.home_mode == "pvc" and could_be_users_claim(s.shared_pvc, s.pvc_name_template):
        # one user's own disk mounted for everyone: their home readable (or writable) by the whole hub
        raise ConfigError(key("shared_pvc"), f"{s.shared_pvc!r} could be a user's own claim (pvc_name_template "
                          f"{s.pvc_name_template!r}), whose home everyone would see; name the shared claim "
                          "so that no user's claim can have its name")
    if s.home_mode == "efs" and s.shared_pvc == s.home_pvc:
        _check_shared_beside_homes(s, key)
    _check_group_dirs(s.shared_group_dirs, key("shared_group_dirs"))


def _check_shared_beside_homes(s: StorageSettings, key: KeyOf) -> None:
    # One volume for both: the shared directory must be a sibling of the homes, never their parent (the public
    # blueprint mounts the EFS root as "shared", so every home is readable there) nor a place a username can
    # render to.
    homes = _literal_prefix(s.home_subpath_template)
    if not homes:
        raise ConfigError(key("home_subpath_template"), "the shared volume is the homes volume "
                          f"({s.home_pvc!r}): put the homes in their own directory, e.g. 'homes/{{username}}'")
    if not s.shared_subpath or within(homes, s.shared_subpath) or within(s.shared_subpath, homes):
        raise ConfigError(key("shared_subpath"), f"{s.shared_subpath!r} on {s.shared_pvc!r} would expose "
                          f"the homes under {homes!r}; use a directory beside them, e.g. 'shared'")


def _check_group_dirs(groups: tuple[str, ...], key: str) -> None:
    seen = set()
    for i, group in enumerate(groups):
        if not _GROUP_DIR.fullmatch(group) or group in (".", ".."):
            raise ConfigError(f"{key}[{i}]", f"{group!r} cannot be a directory name: "
                              "use letters, digits, '.', '_', '-' (at most 63)")
        if group in seen:
            raise ConfigError(f"{key}[{i}]", f"{group!r} is listed twice")
        seen.add(group)
