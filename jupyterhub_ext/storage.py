"""Home and shared volumes, and a user container that never runs as root.

Three parts:

* **Naming** (:func:`home_subpath`): the per-user directory on a shared filesystem, rendered with KubeSpawner's
  own slug code, stable across KubeSpawner upgrades and injective.
* **The plan** (:func:`plan_storage`): pure, ``(who, home directory, settings) -> volumes, mounts, init
  containers, security contexts``; and the merge of that plan into whatever the chart and a profile configured
  (:func:`merge_keyed`, :func:`merge_init_containers`, :func:`merge_tolerations`), which never drops the home
  and shared mounts nor the chart's own entries.
* **Checks** (:func:`check_settings`, :func:`check_security`, :func:`check_no_clash`): what the hub refuses at
  start-up, with the exact key.

:class:`StorageMixin` holds the settings (traits) and calls the three from the spawner. docs/storage.md
explains the modes and the reasons.
"""

from __future__ import annotations

import copy
import hashlib
import posixpath
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from traitlets import Enum, HasTraits, List, Unicode, default

from .catalog.kubespawner import merged_tolerations
from .errors import ConfigError

HOME_MODES = ("efs", "pvc", "none")
OWNERSHIP_MODES = ("access-point", "init-container")
DIR_SCHEMES = ("escape", "safe")

HOME_VOLUME = "home"
SHARED_VOLUME = "shared"
INIT_CONTAINER = "home-ownership"
INIT_HOME = "/mnt/home"
INIT_SHARED = "/mnt/shared"

DEFAULT_UID, DEFAULT_GID = 1000, 100

# -- naming ------------------------------------------------------------------------------------------

# KubeSpawner 6 (the 'escape' scheme) also used the escaped name as the value of the
# hub.jupyter.org/username label, which Kubernetes caps at 63 characters: a user whose escaped name was longer
# could never start a server, so no 6.x home exists under such a name and we are free to shorten it.
LEGACY_MAX = 63
_HASH_CHARS = 32  # 128 bits of SHA-256
_PREFIX_CHARS = LEGACY_MAX - _HASH_CHARS - 2

# Fields a home template may use: the user's identity only, so a user's named servers share one home.
HOME_FIELDS = ("username", "escaped_username", "safe_username", "userid")
_LITERAL_RE = re.compile(r"[A-Za-z0-9._-]*")
_NAME_MAX = 255  # bytes in one path component on ext4, XFS, NFS/EFS


def legacy_dir_name(username: str, escaped: str) -> str:
    """KubeSpawner's escaped name, kept as it is when a 6.x home can exist under it, else shortened.

    Escaped names never contain ``--`` (the escape character is always followed by two hex digits), and a
    shortened one always does, so the two kinds never meet; shortened names differ by a 128-bit hash.
    """
    if len(escaped) <= LEGACY_MAX:
        return escaped
    prefix = escaped[:_PREFIX_CHARS]
    cut = prefix.rfind("-")
    if cut >= len(prefix) - 2:  # do not keep half an escape sequence
        prefix = prefix[:cut]
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{prefix}--{digest}"


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of a home template; raises ValueError for anything but plain fields."""
    fields = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion or name not in HOME_FIELDS:
            raise ValueError(f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                             f"is not allowed; use one of {', '.join('{' + f + '}' for f in HOME_FIELDS)}")
        fields.append(name)
    return fields


def check_home_template(template: str, key: str) -> None:
    """A relative path of literal ``[A-Za-z0-9._-]`` parts and user fields, naming one directory per user.

    Rendering is then injective in the field values: the literal text is fixed, and two fields are separated by
    a character none of them can contain ('/', '.' or '_'), so ``{username}{userid}`` cannot make ``a1`` + ``2``
    and ``a`` + ``12`` the same directory.
    """
    try:
        fields = template_fields(template)
    except ValueError as e:
        raise ConfigError(key, str(e)) from None
    if not fields:
        raise ConfigError(key, f"{template!r} names the same directory for every user; include {{username}}")
    between = [literal for literal, name, _, _ in string.Formatter().parse(template)][1:len(fields)]
    if any(not set(text) & set("/._") for text in between):
        raise ConfigError(key, f"{template!r}: separate fields with '/', '.' or '_' (characters no field holds)")
    literal = template
    for name in HOME_FIELDS:
        literal = literal.replace("{" + name + "}", "\0")
    if template.startswith("/"):
        raise ConfigError(key, f"{template!r} must be relative to the volume, not absolute")
    for part in literal.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(key, f"{template!r} has an empty, '.' or '..' path component")
        if not _LITERAL_RE.fullmatch(part.replace("\0", "")) or len(part) > 64:
            raise ConfigError(key, f"{template!r}: literal text must be letters, digits, '.', '_' or '-' "
                                   f"(at most 64 per path component)")


# Every field a home may need, in one expansion ('/' occurs in none of them): escaping is the costly part.
FIELDS_TEMPLATE = "{escaped_username}/{safe_username}/{userid}"


def kubespawner_fields(expand: Callable[[str], str]) -> tuple[str, str, str]:
    """(escaped, safe, userid) for the spawner's user, from KubeSpawner's own ``_expand_user_properties``.

    ``{escaped_username}`` is what ``{username}`` renders to with ``slug_scheme='escape'`` (KubeSpawner < 7),
    ``{safe_username}`` what it renders to with ``slug_scheme='safe'`` (KubeSpawner 7's default).
    """
    escaped, safe, userid = expand(FIELDS_TEMPLATE).split("/")
    return escaped, safe, userid


def home_subpath(template: str, scheme: str, username: str, fields: tuple[str, str, str]) -> str:
    """The user's home directory on the volume, relative to its root.

    ``fields`` is :func:`kubespawner_fields` for this user. ``{username}`` in ``template`` is rendered with
    ``scheme``: 'escape' (KubeSpawner < 7's rendering, shortened only for names no 6.x home can exist under)
    or 'safe' (KubeSpawner 7's). Raises ValueError when no safe directory exists for the name (the empty
    name, which JupyterHub never has).
    """
    if scheme not in DIR_SCHEMES:
        raise ValueError(f"home_dir_scheme must be one of {DIR_SCHEMES}, not {scheme!r}")
    if not username:
        raise ValueError("an empty username has no home directory")
    escaped, safe, userid = fields
    escaped = legacy_dir_name(username, escaped)
    values = {
        "username": escaped if scheme == "escape" else safe,
        "escaped_username": escaped,
        "safe_username": safe,
        "userid": userid,
    }
    path = template.format(**values)
    check_relative_path(path)
    return path


def check_relative_path(path: str) -> None:
    """Raise ValueError unless ``path`` is a plain relative path that stays below the volume root."""
    if not path or path.startswith("/") or "\0" in path:
        raise ValueError(f"{path!r} is not a relative path")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"{path!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8", "surrogatepass")) > _NAME_MAX:
            raise ValueError(f"{path!r} has a component longer than {_NAME_MAX} bytes")


# -- settings ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StorageSettings:
    """Everything the plan depends on besides the user (the traits of :class:`StorageMixin`)."""

    home_mode: str = "efs"
    home_pvc: str = "efs-persist"
    home_mount_path: str = "/home/jovyan"
    home_subpath_template: str = "{username}"
    home_dir_scheme: str = "escape"
    home_pvc_size: str = "1Gi"
    home_storage_class: str = ""
    pvc_name_template: str = "claim-{user_server}"  # KubeSpawner's, naming each user's claim in 'pvc' mode
    ownership: str = "access-point"
    init_image: str = "quay.io/jupyterhub/k8s-network-tools:4.4.0"
    shared_pvc: str = ""
    shared_subpath: str = ""
    shared_mount_path: str = "/home/shared"
    shared_write_groups: frozenset[str] = frozenset({"instructors"})
    shared_group_dirs: tuple[str, ...] = ()
    uid: int = DEFAULT_UID
    gid: int = DEFAULT_GID
    fs_gid: int = DEFAULT_GID
    section: str = "ProfilesKubeSpawner"  # how errors name our settings

    def key(self, name: str) -> str:
        return f"{self.section}.{name}"


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUANTITY = re.compile(r"(?P<num>[0-9]+(\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
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


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _literal_prefix(template: str) -> str:
    """The leading path components of a home template that hold no field ('' for '{username}')."""
    parts = template.split("/")
    out = []
    for part in parts[:-1]:
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


def check_settings(s: StorageSettings) -> None:
    """Refuse settings that cannot work or that would expose one user's files to another."""
    if s.home_mode not in HOME_MODES:
        raise ConfigError(s.key("home_mode"), f"expected one of {HOME_MODES}, got {s.home_mode!r}")
    if s.ownership not in OWNERSHIP_MODES:
        raise ConfigError(s.key("home_ownership"), f"expected one of {OWNERSHIP_MODES}, got {s.ownership!r}")
    if s.home_dir_scheme not in DIR_SCHEMES:
        raise ConfigError(s.key("home_dir_scheme"), f"expected one of {DIR_SCHEMES}, got {s.home_dir_scheme!r}")
    for name, value in (("uid", s.uid), ("gid", s.gid), ("fs_gid", s.fs_gid)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(s.key(name), f"must be a positive integer (never 0, root), got {value!r}")
    _check_mount_path(s.home_mount_path, s.key("home_mount_path"))
    if s.home_mode == "efs":
        _check_resource_name(s.home_pvc, s.key("home_pvc"), "PersistentVolumeClaim")
        check_home_template(s.home_subpath_template, s.key("home_subpath_template"))
    if s.home_mode == "pvc":
        m = _QUANTITY.fullmatch(s.home_pvc_size)
        if not m or float(m["num"]) <= 0:
            raise ConfigError(s.key("home_pvc_size"), f"expected a storage size such as '1Gi', got "
                                                      f"{s.home_pvc_size!r}")
        if s.home_storage_class:
            _check_resource_name(s.home_storage_class, s.key("home_storage_class"), "StorageClass")
    if s.home_mode != "none" and s.ownership == "init-container" and not _IMAGE.fullmatch(s.init_image):
        raise ConfigError(s.key("home_init_image"), f"{s.init_image!r} is not an image reference")
    _check_shared(s)


def _check_shared(s: StorageSettings) -> None:
    if not s.shared_pvc:
        if s.shared_group_dirs:
            raise ConfigError(s.key("shared_group_dirs"), "needs a shared volume: set shared_pvc")
        return
    _check_resource_name(s.shared_pvc, s.key("shared_pvc"), "PersistentVolumeClaim")
    _check_mount_path(s.shared_mount_path, s.key("shared_mount_path"))
    if s.shared_subpath:
        try:
            check_relative_path(s.shared_subpath)
        except ValueError as e:
            raise ConfigError(s.key("shared_subpath"), str(e)) from None
        if not all(_LITERAL_RE.fullmatch(p) for p in s.shared_subpath.split("/")):
            raise ConfigError(s.key("shared_subpath"), "use letters, digits, '.', '_', '-' and '/'")
    if s.home_mode != "none":
        if _within(s.home_mount_path, s.shared_mount_path):
            # the home would be mounted inside a read-only mount, and hidden under the shared one
            raise ConfigError(s.key("shared_mount_path"), f"{s.shared_mount_path!r} contains the home mount "
                                                          f"{s.home_mount_path!r}; mount the shared volume elsewhere")
    if s.home_mode == "pvc" and could_be_users_claim(s.shared_pvc, s.pvc_name_template):
        # one user's own disk mounted for everyone: their home readable (or writable) by the whole hub
        raise ConfigError(s.key("shared_pvc"), f"{s.shared_pvc!r} could be a user's own claim (pvc_name_template "
                          f"{s.pvc_name_template!r}), whose home everyone would see; name the shared claim "
                          "so that no user's claim can have its name")
    if s.home_mode == "efs" and s.shared_pvc == s.home_pvc:
        # One volume for both: the shared directory must be a sibling of the homes, never their parent (the
        # public blueprint mounts the EFS root as "shared", so every home is readable there) nor a place a
        # username can render to.
        homes = _literal_prefix(s.home_subpath_template)
        if not homes:
            raise ConfigError(s.key("home_subpath_template"), "the shared volume is the homes volume "
                              f"({s.home_pvc!r}): put the homes in their own directory, e.g. 'homes/{{username}}'")
        if not s.shared_subpath or _within(homes, s.shared_subpath) or _within(s.shared_subpath, homes):
            raise ConfigError(s.key("shared_subpath"), f"{s.shared_subpath!r} on {s.shared_pvc!r} would expose "
                              f"the homes under {homes!r}; use a directory beside them, e.g. 'shared'")
    seen = set()
    for i, group in enumerate(s.shared_group_dirs):
        if not _GROUP_DIR.fullmatch(group) or group in (".", ".."):
            raise ConfigError(f"{s.key('shared_group_dirs')}[{i}]", f"{group!r} cannot be a directory name: "
                              "use letters, digits, '.', '_', '-' (at most 63)")
        if group in seen:
            raise ConfigError(f"{s.key('shared_group_dirs')}[{i}]", f"{group!r} is listed twice")
        seen.add(group)


# -- the plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Who:
    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False


@dataclass
class Plan:
    """What one user's pod gets, in KubeSpawner's dict form (keyed as :func:`merge_keyed` keys everything)."""

    volumes: dict[str, dict] = field(default_factory=dict)            # by volume name
    volume_mounts: dict[str, dict] = field(default_factory=dict)      # by mount path
    init_containers: dict[str, dict] = field(default_factory=dict)    # by container name
    container_security_context: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)              # other KubeSpawner traits to set
    shared_access: str | None = None                                  # 'read-write', 'read-only' or None


# Ownership is fixed on the mount roots only: never recursively, and only when it is wrong, so a start costs
# the same whether a home holds ten files or a million. No braces: KubeSpawner formats init containers.
OWNERSHIP_SCRIPT = """\
set -eu
uid="$1"; gid="$2"; shift 2
for d in "$@"; do
  if [ "$(stat -c %u:%g "$d")" != "$uid:$gid" ]; then
    chown "$uid:$gid" "$d"
    echo "home-ownership: $d now owned by $uid:$gid"
  fi
  case "$(stat -c %A "$d")" in
    drwx*) ;;
    *) chmod u+rwx "$d"; echo "home-ownership: $d made usable by its owner" ;;
  esac
done
"""


def user_container_security(s: StorageSettings) -> dict[str, Any]:
    return {
        "runAsUser": s.uid,
        "runAsGroup": s.gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def ownership_init_container(s: StorageSettings, mounts: list[dict]) -> dict:
    """Root, but only CHOWN/DAC_OVERRIDE/FOWNER, only the user's own directories, and only in this container."""
    return {
        "name": INIT_CONTAINER,
        "image": s.init_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", OWNERSHIP_SCRIPT, INIT_CONTAINER, str(s.uid), str(s.gid),
                    *[m["mountPath"] for m in mounts]],
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": mounts,
    }


def shared_access(who: Who, s: StorageSettings) -> str | None:
    if not s.shared_pvc:
        return None
    if who.admin or not s.shared_write_groups.isdisjoint(who.groups):
        return "read-write"
    return "read-only"


def plan_storage(who: Who, home_dir: str | None, s: StorageSettings) -> Plan:
    """The volumes, mounts, init container and security settings for this user. Pure.

    ``home_dir`` is :func:`home_subpath` for this user in 'efs' mode (ignored otherwise).
    """
    plan = Plan()
    init_mounts: list[dict] = []
    if s.home_mode == "efs":
        if home_dir is None:
            raise ValueError("efs mode needs the user's home directory")
        check_relative_path(home_dir)
        plan.volumes[HOME_VOLUME] = {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": s.home_pvc}}
        plan.volume_mounts[s.home_mount_path] = {"name": HOME_VOLUME, "mountPath": s.home_mount_path,
                                                 "subPath": home_dir}
        init_mounts.append({"name": HOME_VOLUME, "mountPath": INIT_HOME, "subPath": home_dir})
    elif s.home_mode == "pvc":
        # KubeSpawner's own PVC machinery: it creates claim {pvc_name} (pvc_name_template, remembered across
        # restarts, legacy 6.x names found) and fills in the name when it formats the volume.
        plan.volumes[HOME_VOLUME] = {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        plan.volume_mounts[s.home_mount_path] = {"name": HOME_VOLUME, "mountPath": s.home_mount_path}
        init_mounts.append({"name": HOME_VOLUME, "mountPath": INIT_HOME})
        plan.traits.update(storage_pvc_ensure=True, storage_capacity=s.home_pvc_size,
                           storage_class=s.home_storage_class or None)

    plan.shared_access = access = shared_access(who, s)
    if access is not None:
        plan.volumes[SHARED_VOLUME] = {"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": s.shared_pvc}}
        mount = {"name": SHARED_VOLUME, "mountPath": s.shared_mount_path, "readOnly": access == "read-only"}
        if s.shared_subpath:
            mount["subPath"] = s.shared_subpath
        plan.volume_mounts[s.shared_mount_path] = mount
        if access == "read-write":
            init_mounts.append({**mount, "mountPath": INIT_SHARED, "readOnly": False})
        elif access == "read-only":
            # a member writes in their group's directory, mounted read-write over the read-only parent
            for group in s.shared_group_dirs:
                if group in who.groups:
                    sub = posixpath.join(s.shared_subpath, group) if s.shared_subpath else group
                    path = posixpath.join(s.shared_mount_path, group)
                    plan.volume_mounts[path] = {"name": SHARED_VOLUME, "mountPath": path, "subPath": sub}
                    init_mounts.append({"name": SHARED_VOLUME, "mountPath": f"{INIT_SHARED}-{group}",
                                        "subPath": sub})

    if s.ownership == "init-container" and init_mounts:
        plan.init_containers[INIT_CONTAINER] = ownership_init_container(s, init_mounts)

    plan.container_security_context = user_container_security(s)
    # fsGroup makes a fresh per-user disk writable for gid 100; OnRootMismatch stops the kubelet from
    # re-walking every file on each start (the slow, recursive chown this module exists to avoid).
    # runAsNonRoot stays per container: the chart's own root init container (iptables) must still run.
    plan.pod_security_context = {"fsGroup": s.fs_gid, "fsGroupChangePolicy": "OnRootMismatch"}
    plan.traits.update(uid=s.uid, gid=s.gid, fs_gid=s.fs_gid, allow_privilege_escalation=False,
                       privileged=False)
    return plan


# -- merging into the configured values --------------------------------------------------------------

def _items(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]  # KubeSpawner's order for dict-form values
    return list(value or [])


def entries(value: Any, identity: Callable[[Any], str]) -> dict[str, Any]:
    """A list or dict-form trait value as a dict keyed by each entry's identity (later entries win).

    Entries may be plain dicts or Kubernetes client objects (the z2jh chart appends a ``V1Container`` for
    its cloud-metadata block): both are kept as they are.
    """
    out: dict[str, Any] = {}
    for i, item in enumerate(_items(value)):
        out[identity(item) or f"#{i}"] = item
    return out


def with_base(base: Any, current: Any) -> list[Any]:
    """``current`` plus whatever of ``base`` a profile's override replaced.

    KubeSpawner merges a dict override into a dict value (removals with ``None`` included) but replaces the
    value when either is a list; then the configured entries come back, under the override's.
    """
    if current == base or (isinstance(base, dict) and isinstance(current, dict)):
        return _items(current)
    return _items(base) + _items(current)


def _field(item: Any, camel: str, snake: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(camel)
    return getattr(item, snake, None)


def volume_identity(v: Any) -> str:
    """Volumes and containers are identified by name (unique in a pod)."""
    name = _field(v, "name", "name")
    return "" if name is None else str(name)


def mount_identity(m: Any) -> str:
    """Mounts are identified by path (unique in a container; one volume may be mounted at several)."""
    path = _field(m, "mountPath", "mount_path")
    return "" if path is None else str(path)


def merge_keyed(base: Any, current: Any, identity: Callable[[Any], str],
                plan: Mapping[str, dict]) -> tuple[dict[str, Any], list[str]]:
    """Configured + override + plan, keyed by identity; the plan wins. Returns (value, replaced identities)."""
    merged = entries(with_base(base, current), identity)
    replaced = [k for k, v in plan.items() if k in merged and merged[k] != v]
    merged.update(copy.deepcopy(dict(plan)))
    return merged, replaced


def merge_init_containers(base: Any, current: Any, plan: Mapping[str, dict]) -> dict[str, Any]:
    """Ours first, then the configured ones in their order (init containers run one after another)."""
    merged = entries(with_base(base, current), volume_identity)
    for key in plan:
        merged.pop(key, None)
    ordered = [*copy.deepcopy(list(plan.values())), *merged.values()]
    return {f"{i:03d}-{volume_identity(c)}": c for i, c in enumerate(ordered)}


def merge_tolerations(base: Any, current: Any) -> dict[str, dict] | None:
    """The configured tolerations back under a profile's list override; None when nothing was dropped."""
    if current == base or (isinstance(base, dict) and isinstance(current, dict)):
        return None
    present = {_tol_key(t) for t in _items(current)}
    if all(_tol_key(t) in present for t in _items(base)):
        return None
    return merged_tolerations(base, _items(current))


def _tol_key(t: Mapping[str, Any]) -> tuple:
    return tuple(t.get(k) for k in ("key", "operator", "value", "effect"))


def merge_security(configured: Any, ours: Mapping[str, Any]) -> dict[str, Any]:
    """Our hardened context plus the configured extras; capabilities dropped by either stay dropped."""
    out = copy.deepcopy(dict(ours))
    for key, value in dict(configured or {}).items():
        if key == "capabilities" and isinstance(value, dict):
            drop = list(dict.fromkeys([*out.get("capabilities", {}).get("drop", []), *(value.get("drop") or [])]))
            out["capabilities"] = {**value, "drop": drop}
            if not value.get("add"):
                out["capabilities"].pop("add", None)
        elif key not in out:
            out[key] = copy.deepcopy(value)
        # keys we set win; check_security has already refused configured values weaker than ours
    return out


# -- security checks ---------------------------------------------------------------------------------

# Environment variables that make the docker-stacks start script do root things.
ROOT_ENV = ("GRANT_SUDO", "CHOWN_HOME", "CHOWN_HOME_OPTS", "CHOWN_EXTRA", "CHOWN_EXTRA_OPTS")
_FALSY = {"", "0", "no", "false", "off", "n"}
# chmod giving write to everyone: octal modes whose last digit has the write bit, or symbolic o/a(+|=)...w
_CHMOD = re.compile(r"\bchmod\b(?P<args>[^;&|\n]*)")
_OCTAL_WW = re.compile(r"(?:^|\s)0*[0-7]?[0-7]?[0-7][2367](?=\s|$)")
_SYMBOLIC_WW = re.compile(r"(?:^|[\s,])[ugo]*[oa][ugoa]*[+=][rwxXst]*w")

# z2jh values that set a KubeSpawner trait, for error messages operators can act on
Z2JH_KEYS = {
    "uid": "singleuser.uid", "fs_gid": "singleuser.fsGid", "environment": "singleuser.extraEnv",
    "cmd": "singleuser.cmd", "allow_privilege_escalation": "singleuser.allowPrivilegeEscalation",
    "lifecycle_hooks": "singleuser.lifecycleHooks", "init_containers": "singleuser.initContainers",
    "extra_containers": "singleuser.extraContainers", "extra_pod_config": "singleuser.extraPodConfig",
    "volumes": "singleuser.storage", "volume_mounts": "singleuser.storage",
}


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
    for name, v in entries(volumes, volume_identity).items():
        if name in plan.volumes and v != plan.volumes[name]:
            raise ConfigError(key("volumes"), f"volume name {name!r} is used by the {name} volume of "
                                              "jupyterhub_ext; rename yours")
        claim = _field(_field(v, "persistentVolumeClaim", "persistent_volume_claim") or {}, "claimName", "claim_name")
        if home_pvc and claim == home_pvc and name not in plan.volumes:
            raise ConfigError(key("volumes"), f"volume {name!r} mounts the homes' PVC {home_pvc!r}, which would "
                              "expose every user's home; only the home mount may use it")
    ours = list(plan.volume_mounts)
    for path, m in entries(mounts, mount_identity).items():
        if path in plan.volume_mounts and m != plan.volume_mounts[path]:
            hint = (" (the chart's singleuser.storage: set singleuser.storage.type to none, storage is "
                    "configured with ProfilesKubeSpawner.home_mode)")
            raise ConfigError(key("volume_mounts"), f"{path!r} is already mounted by jupyterhub_ext{hint}")
        for p in ours:
            if path != p and _within(p, path):
                raise ConfigError(key("volume_mounts"), f"a mount at {path!r} would contain the storage mount {p!r}")


# -- the mixin ---------------------------------------------------------------------------------------

# Every KubeSpawner trait apply_storage_plan may set: captured before the first change, restored before each start.
STORAGE_TRAITS = ("volumes", "volume_mounts", "init_containers", "tolerations", "container_security_context",
                  "pod_security_context", "uid", "gid", "fs_gid", "allow_privilege_escalation", "privileged",
                  "storage_pvc_ensure", "storage_capacity", "storage_class")


class StorageMixin(HasTraits):
    """Home and shared volumes and a non-root user container for a KubeSpawner subclass.

    The spawner calls :meth:`apply_storage_plan` in ``load_user_options`` after a start's profile overrides
    are applied, and :meth:`check_storage_config` at hub start-up. Every trait the plan sets is captured
    first (the spawner's ``_base_value``), so the next start begins from the configured values again.
    """

    home_mode = Enum(
        list(HOME_MODES),
        default_value="efs",
        config=True,
        help="""Where each user's home (``home_mount_path``) lives.

        - ``efs``: one directory per user (``home_subpath_template``) on one shared ReadWriteMany PVC
          (``home_pvc``, e.g. EFS through the EFS CSI driver).
        - ``pvc``: one PVC per user, created on first start by KubeSpawner itself (``pvc_name_template``,
          ``home_pvc_size``, ``home_storage_class``): the AKS classroom setup, one disk per user.
        - ``none``: no home volume; files live as long as the pod (demos).

        With ``efs`` or ``pvc`` set the chart's ``singleuser.storage.type`` to ``none``.
        """,
    )
    home_pvc = Unicode(
        "efs-persist",
        config=True,
        help="The PersistentVolumeClaim holding every user's home directory in ``efs`` mode.",
    )
    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="Where the home is mounted in the user container.",
    )
    home_subpath_template = Unicode(
        "{username}",
        config=True,
        help="""The user's directory on ``home_pvc`` in ``efs`` mode, relative to its root.

        Fields: ``{username}`` (rendered with ``home_dir_scheme``), ``{escaped_username}``,
        ``{safe_username}`` and ``{userid}``; other text may use letters, digits, ``.``, ``_``, ``-`` and ``/``,
        e.g. ``homes/{username}`` (needed when the shared volume is the same PVC). The z2jh chart's
        ``singleuser.storage.static.subPath`` default is ``{username}``.
        """,
    )
    home_dir_scheme = Enum(
        list(DIR_SCHEMES),
        default_value="escape",
        config=True,
        help="""How ``{username}`` becomes a directory name, independent of KubeSpawner's ``slug_scheme``.

        - ``escape`` (default): KubeSpawner < 7's rendering (``Alice.B`` -> ``-41lice-2eb``), so homes made
          under z2jh 3 / KubeSpawner 6 stay where they are. Exactly injective; names whose escaped form is
          longer than 63 characters (which KubeSpawner 6 could not start) become ``<prefix>--<128-bit hash>``.
        - ``safe``: KubeSpawner 7's default (``alice.b`` kept, others ``alice-b---1a2b3c4d``). Choose it only
          for homes created with z2jh 4 defaults; its 32-bit hash suffix is KubeSpawner's.

        Changing it moves every home whose name renders differently: see docs/storage.md.
        """,
    )
    home_pvc_size = Unicode(
        "1Gi",
        config=True,
        help="Size of a new per-user PVC in ``pvc`` mode (KubeSpawner's ``storage_capacity``).",
    )
    home_storage_class = Unicode(
        "",
        config=True,
        help="StorageClass of a new per-user PVC in ``pvc`` mode; empty for the cluster's default class.",
    )
    home_ownership = Enum(
        list(OWNERSHIP_MODES),
        default_value="access-point",
        config=True,
        help="""How the home comes to be owned by ``uid``/``gid`` (1000/100) without root in the user container.

        - ``access-point`` (the default in ``efs`` and ``none`` mode): nothing runs in the pod. The storage hands
          out the ownership: an EFS access point with a POSIX user 1000/100 (``efs``), or ``fsGroup`` with
          ``fsGroupChangePolicy: OnRootMismatch`` on a per-user disk (``pvc``) - which leaves a fresh disk's
          root owned by root (group 100, group-writable). Meets Pod Security ``restricted``.
        - ``init-container`` (the default in ``pvc`` mode, where a fresh disk's root is root's: git refuses a
          repository there, "detected dubious ownership", and the user cannot chmod their own home): a small
          init container (``home_init_image``) runs as root with only the CHOWN, DAC_OVERRIDE and FOWNER
          capabilities, sees only this user's own directories, and fixes their owner and mode
          non-recursively, only when wrong (once per disk). Needs Pod Security ``baseline``.
        """,
    )

    @default("home_ownership")
    def _home_ownership_default(self):
        # a fresh per-user disk's root is root:root; fsGroup only makes it root:100
        return "init-container" if self.home_mode == "pvc" else "access-point"

    home_init_image = Unicode(
        "quay.io/jupyterhub/k8s-network-tools:4.4.0",
        config=True,
        help="""Image of the ``init-container`` ownership fix: needs ``sh``, ``stat`` and ``chown``. The default
        is the z2jh 4.4.0 chart's own network-tools image, already on user nodes. Never the user's image.""",
    )
    shared_pvc = Unicode(
        "",
        config=True,
        help="""PVC mounted at ``shared_mount_path`` for everyone (e.g. ``efs-persist-shared``); empty for none.

        Read-only for users, read-write for admins and ``shared_write_groups``. It must not be the homes'
        volume root: the same PVC as ``home_pvc`` is refused unless both live in separate directories.
        """,
    )
    shared_subpath = Unicode(
        "",
        config=True,
        help="Directory of ``shared_pvc`` to mount (its root when empty).",
    )
    shared_mount_path = Unicode(
        "/home/shared",
        config=True,
        help="Where the shared volume is mounted in the user container.",
    )
    shared_write_groups = List(
        Unicode(),
        default_value=["instructors"],
        config=True,
        help="Groups whose members mount the shared volume read-write (admins always do).",
    )
    shared_group_dirs = List(
        Unicode(),
        config=True,
        help="""Groups with a directory ``<shared_mount_path>/<group>`` that their members may write (mounted
        read-write over the read-only shared volume); everyone else reads it.""",
    )

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

    storage_config_name = "ProfilesKubeSpawner"

    # -- settings and names ---------------------------------------------------------------------------

    def storage_settings(self) -> StorageSettings:
        s = StorageSettings(
            home_mode=self.home_mode,
            home_pvc=self.home_pvc,
            home_mount_path=self.home_mount_path,
            home_subpath_template=self.home_subpath_template,
            home_dir_scheme=self.home_dir_scheme,
            home_pvc_size=self.home_pvc_size,
            home_storage_class=self.home_storage_class,
            pvc_name_template=getattr(self, "pvc_name_template", StorageSettings.pvc_name_template),
            ownership=self.home_ownership,
            init_image=self.home_init_image,
            shared_pvc=self.shared_pvc,
            shared_subpath=self.shared_subpath,
            shared_mount_path=self.shared_mount_path,
            shared_write_groups=frozenset(self.shared_write_groups),
            shared_group_dirs=tuple(self.shared_group_dirs),
            uid=self._storage_id("uid"),
            gid=self._storage_id("gid"),
            fs_gid=self._storage_id("fs_gid"),
            section=self.storage_config_name,
        )
        return s

    def _storage_id(self, name: str) -> Any:
        value = self._storage_base(name)
        if callable(value) or value is None or isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(self.config_key(name), f"must be a positive integer (0 is root, and homes need a "
                                                     f"fixed owner), got {value!r}")
        return value

    def home_dir(self) -> str | None:
        """This user's home directory on ``home_pvc`` (``efs`` mode), or None."""
        if self.home_mode != "efs":
            return None
        return home_subpath(self.home_subpath_template, self.home_dir_scheme, self.user.name,
                            kubespawner_fields(self._expand_user_properties))

    def config_key(self, trait: str) -> str:
        """Where ``trait`` is set: our section, KubeSpawner's or Spawner's, with the z2jh value when known."""
        section = next((s for s in (self.storage_config_name, "KubeSpawner", "Spawner")
                        if trait in self.config.get(s, {})), None)
        where = f"{section or self.storage_config_name}.{trait}"
        if section == "KubeSpawner" and trait in Z2JH_KEYS:
            where += f" (Helm: {Z2JH_KEYS[trait]})"
        return where

    def _who(self) -> Who:
        if hasattr(self, "who"):
            w = self.who()
            return Who(name=w.name, groups=frozenset(w.groups), admin=bool(w.admin))
        groups = frozenset(g.name for g in (getattr(self.user, "groups", None) or []))
        return Who(self.user.name, groups, bool(getattr(self.user, "admin", False)))

    def _storage_base(self, name: str) -> Any:
        """The configured value of a trait, captured (for restoring before the next start) before we touch it."""
        if hasattr(self, "_base_value"):
            return self._base_value(name)
        if not hasattr(self, "_storage_bases"):
            self._storage_bases: dict[str, Any] = {}
        if name not in self._storage_bases:
            self._storage_bases[name] = copy.deepcopy(getattr(self, name))
        return self._storage_bases[name]

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
        if (not state and self.home_mode == "pvc" and getattr(self, "handle_legacy_names", False)
                and getattr(self, "_state_kubespawner_version", "") is None):
            self._state_kubespawner_version = "unknown"

    # -- start-up ------------------------------------------------------------------------------------

    def check_storage_config(self) -> None:
        """Refuse, naming the key, a storage or security setting that cannot work or would allow root."""
        s = self.storage_settings()
        check_settings(s)
        if s.home_mode == "efs" and s.home_dir_scheme == "safe" and "{username}" in s.home_subpath_template:
            self.log.warning("home_dir_scheme 'safe' names homes with KubeSpawner 7's slugs, whose 32-bit hash can "
                             "give two users one directory; 'escape' cannot (docs/storage.md)")
        trait_names = set(self.traits())
        security_traits = ("uid", "gid", "fs_gid", "privileged", "allow_privilege_escalation",
                           "container_security_context", "pod_security_context", "environment",
                           "extra_pod_config", "extra_container_config", "cmd", "lifecycle_hooks",
                           "init_containers", "extra_containers")
        check_security({n: getattr(self, n) for n in security_traits if n in trait_names}, self.config_key)
        sample = plan_storage(Who("user", frozenset(s.shared_group_dirs), admin=False), "user", s)
        home_pvc = s.home_pvc if s.home_mode == "efs" else ""
        check_no_clash(self.volumes, self.volume_mounts, sample, self.config_key, home_pvc)
        catalog = getattr(self, "catalog", None)
        if catalog is not None:
            self._check_catalog_storage(catalog, sample, s)
        elif isinstance(self.profile_list, list):  # plain KubeSpawner profiles (no catalog)
            root = self.config_key("profile_list").split(" ")[0]
            overrides = []
            for i, profile in enumerate(self.profile_list):
                overrides.append((f"{root}[{i}].kubespawner_override", profile.get("kubespawner_override") or {}))
                for opt, option in (profile.get("profile_options") or {}).items():
                    for ch, choice in (option.get("choices") or {}).items():
                        overrides.append((f"{root}[{i}].profile_options.{opt}.choices.{ch}.kubespawner_override",
                                          choice.get("kubespawner_override") or {}))
            self._check_overrides(overrides, sample, s)

    def _check_catalog_storage(self, catalog: Any, sample: Plan, s: StorageSettings) -> None:
        section = getattr(self, "catalog_config_name", self.storage_config_name)
        file = getattr(self, "catalog_file", "")
        root = f"{section}.catalog_file({file}).profiles" if file else f"{section}.profiles"
        for i, profile in enumerate(catalog.profiles):
            at = f"{root}[{i}]"
            check_environment(profile.env, f"{at}.env")
            for j, arg in enumerate(profile.command or ()):
                if world_writable_chmod(arg):
                    raise ConfigError(f"{at}.command[{j}]", f"{arg!r} makes files writable by every user")
            overrides = [(f"{at}.kubespawner_override", profile.kubespawner_override)]
            for j, option in enumerate(profile.options):
                for k, choice in enumerate(option.choices):
                    overrides.append((f"{at}.options[{j}].choices[{k}].kubespawner_override",
                                      choice.kubespawner_override))
            self._check_overrides(overrides, sample, s)

    def _check_overrides(self, overrides: list[tuple[str, Mapping[str, Any]]], sample: Plan,
                         s: StorageSettings) -> None:
        for path, override in overrides:
            if not isinstance(override, Mapping):
                continue

            def key(name: str, path: str = path) -> str:
                return f"{path}.{name}"

            check_security(override, key)
            for name in ("uid", "gid", "fs_gid"):
                if name in override and override[name] != getattr(s, name):
                    raise ConfigError(key(name), f"a profile may not change {name}: homes are owned by "
                                                 f"{getattr(s, name)}")
            check_no_clash(override.get("volumes"), override.get("volume_mounts"), sample, key,
                           s.home_pvc if s.home_mode == "efs" else "")

    # -- each start ----------------------------------------------------------------------------------

    async def load_user_options(self) -> None:
        """Capture the configured values of the traits the plan touches before KubeSpawner applies one of its
        own ``profile_list`` overrides (``super()``), so that :meth:`apply_storage_plan` can bring back what a
        list override replaced. (A catalog's overrides are applied by the spawner itself, which captures them
        first.) Without the spawner's ``_restore_base_values``, they are restored here too."""
        restore = not hasattr(self, "_restore_base_values")
        for name in STORAGE_TRAITS:
            base = self._storage_base(name)
            if restore:
                setattr(self, name, copy.deepcopy(base))
        await super().load_user_options()  # type: ignore[misc]

    def apply_storage_plan(self) -> Plan:
        """Add this user's storage and the non-root settings to the traits, on top of the profile's overrides.

        Every trait touched is captured first (``_base_value``), so the next start begins from the configured
        value again. Raises ConfigError if the effective values (after a profile's overrides) would allow root.
        """
        s = self.storage_settings()
        check_settings(s)
        who = self._who()
        try:
            home = self.home_dir()
        except ValueError as e:
            raise ConfigError(self.config_key("home_subpath_template"),
                              f"no safe home directory for user {who.name!r}: {e}") from None
        plan = plan_storage(who, home, s)

        base = {n: self._storage_base(n) for n in STORAGE_TRAITS}
        # what the profile's overrides made of the security-relevant traits must still be safe
        check_security({n: getattr(self, n) for n in ("privileged", "allow_privilege_escalation",
                                                      "container_security_context", "pod_security_context",
                                                      "environment", "extra_pod_config",
                                                      "extra_container_config", "cmd", "lifecycle_hooks",
                                                      "init_containers", "extra_containers")},
                       self.config_key)
        for n in ("uid", "gid", "fs_gid"):
            if getattr(self, n) != plan.traits[n]:
                raise ConfigError(self.config_key(n), f"a profile may not change {n} ({getattr(self, n)!r}): "
                                                      f"homes are owned by {plan.traits[n]!r}")

        volumes, replaced = merge_keyed(base["volumes"], self.volumes, volume_identity, plan.volumes)
        mounts, replaced_mounts = merge_keyed(base["volume_mounts"], self.volume_mounts, mount_identity,
                                              plan.volume_mounts)
        for what in replaced + replaced_mounts:
            self.log.warning("jupyterhub_ext storage: %r from the configuration or profile was replaced by the "
                             "storage plan for %s", what, who.name)
        self.volumes = volumes
        self.volume_mounts = mounts
        self.init_containers = merge_init_containers(base["init_containers"], self.init_containers,
                                                     plan.init_containers)
        tolerations = merge_tolerations(base["tolerations"], self.tolerations)
        if tolerations is not None:
            self.tolerations = tolerations
        self.container_security_context = merge_security(self.container_security_context,
                                                         plan.container_security_context)
        self.pod_security_context = merge_security(self.pod_security_context, plan.pod_security_context)
        for name, value in plan.traits.items():
            setattr(self, name, value)
        self.log.info("Storage for %s: home %s, shared %s", who.name,
                      f"{s.home_pvc}:{home}" if home else s.home_mode, plan.shared_access or "none")
        return plan


__all__ = ["StorageMixin", "StorageSettings", "Plan", "Who", "plan_storage", "home_subpath", "kubespawner_fields",
           "legacy_dir_name", "check_settings", "check_security", "check_no_clash", "world_writable_chmod", "merge_keyed",
           "merge_init_containers", "merge_tolerations"]
