"""Home directory names on a shared filesystem: stable across KubeSpawner upgrades, injective, always safe.

Pure (no spawner): the local run names its homes with the same functions.
"""

from __future__ import annotations

import hashlib
import re
import string

import escapism
from kubespawner.slugs import safe_slug

from ..errors import ConfigError

DIR_SCHEMES = ("escape", "safe")

# KubeSpawner 6 (the 'escape' scheme) also used the escaped name as the value of the
# hub.jupyter.org/username label, which Kubernetes caps at 63 characters: a user whose escaped name was longer
# could never start a server, so no 6.x home exists under such a name and we are free to shorten it.
LEGACY_MAX = 63
_HASH_CHARS = 32  # 128 bits of SHA-256
_PREFIX_CHARS = LEGACY_MAX - _HASH_CHARS - 2

# KubeSpawner 6 escaped everything but these, with '-' and two hex digits per byte (escapism)
_KUBESPAWNER6_SAFE = frozenset(string.ascii_lowercase + string.digits)
# KubeSpawner 7 caps each safe slug at this length (a constant inside its _expand_user_properties; the
# compatibility test compares our fields with that method's on many names)
_KUBESPAWNER7_SLUG_MAX = 48

# Fields a home template may use: the user's identity only, so a user's named servers share one home.
HOME_FIELDS = ("username", "escaped_username", "safe_username", "userid")
LITERAL_RE = re.compile(r"[A-Za-z0-9._-]*")
_NAME_MAX = 255  # bytes in one path component on ext4, XFS, NFS/EFS


def user_fields(username: str, userid: object) -> tuple[str, str, str]:
    """(escaped, safe, userid): what ``{username}`` renders to with KubeSpawner 6 (and KubeSpawner 7's
    ``slug_scheme='escape'``), what it renders to with KubeSpawner 7's default ``slug_scheme='safe'``, and the
    user's id."""
    escaped = escapism.escape(username, safe=_KUBESPAWNER6_SAFE, escape_char="-").lower()
    return escaped, safe_slug(username, max_length=_KUBESPAWNER7_SLUG_MAX), str(userid)


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
    for _literal, name, spec, conversion in string.Formatter().parse(template):
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
    between = [literal for literal, _, _, _ in string.Formatter().parse(template)][1:len(fields)]
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
        if not LITERAL_RE.fullmatch(part.replace("\0", "")) or len(part) > 64:
            raise ConfigError(key, f"{template!r}: literal text must be letters, digits, '.', '_' or '-' "
                                   f"(at most 64 per path component)")


def home_subpath(template: str, scheme: str, username: str, fields: tuple[str, str, str]) -> str:
    """The user's home directory on the volume, relative to its root.

    ``fields`` is :func:`user_fields` for this user. ``{username}`` in ``template`` is rendered with
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
