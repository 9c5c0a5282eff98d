"""A strict reader for plain config data (dicts and lists from YAML/Helm) with path-precise errors.

Every accessor knows where it is (``profiles[3].hardware``), so a mistake is reported as
``ProfilesKubeSpawner.profiles[3].hardware.gpus: expected a positive integer, got 0``.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable, NoReturn, TypeVar

from ..errors import ConfigError

T = TypeVar("T")
_CAMEL = re.compile(r"[a-z0-9][A-Z]")


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def describe(value: object) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def unknown_key_message(key: str, known: Iterable[str]) -> str:
    known = sorted(known)
    if isinstance(key, str) and _CAMEL.search(key) and snake_case(key) in known:
        return f"unknown key {key!r}: keys are snake_case here, use {snake_case(key)!r}"
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r}: {hint}expected one of {', '.join(known)}"


class Node:
    """A mapping being read at ``path``; ``done()`` rejects any key nobody asked for."""

    def __init__(self, data: object, path: str):
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a mapping, got {type_name(data)} {describe(data)}")
        self.data: dict = data
        self.path = path
        self._known: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        self._known.add(key)
        return key in self.data and self.data[key] is not None

    def get(self, key: str, check: Callable[[object, str], T], default: T | None = None, *,
            required: bool = False) -> T:
        self._known.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self._missing(key)
            return default  # type: ignore[return-value]
        return check(self.data[key], self.at(key))

    def node(self, key: str, *, required: bool = False) -> "Node | None":
        self._known.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self._missing(key)
            return None
        return Node(self.data[key], self.at(key))

    def _missing(self, key: str) -> NoReturn:
        """A required key is absent: a key written in its place that is nobody's and reads like it is a typo of
        it, and the error names the typo (``dispaly_name``), not the absence."""
        strangers = [k for k in self.data if isinstance(k, str) and k not in self._known]
        for k in strangers:
            if snake_case(k) == key:
                raise ConfigError(self.at(k), f"unknown key {k!r}: keys are snake_case here, use {key!r}")
        close = difflib.get_close_matches(key, strangers, n=1, cutoff=0.75)
        if close:
            raise ConfigError(self.at(close[0]), f"unknown key {close[0]!r}: did you mean {key!r}?")
        raise ConfigError(self.at(key), "is required")

    def items(self, key: str) -> list[tuple[str, object]]:
        """A list under ``key`` as (path, item) pairs (empty when absent)."""
        self._known.add(key)
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.at(key), f"expected a list, got {type_name(value)} {describe(value)}")
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def done(self, extra_known: Iterable[str] = ()) -> None:
        known = self._known | set(extra_known)
        for key in self.data:
            if key not in known:
                raise ConfigError(self.at(str(key)) if isinstance(key, str) else self.path,
                                  unknown_key_message(key, known))


# -- value checks: (value, path) -> value ----------------------------------------------------------

def string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a string, got {type_name(value)} {describe(value)}")
    return value


def nonempty_string(value: object, path: str) -> str:
    text = string(value, path)
    if not text.strip():
        raise ConfigError(path, "must not be empty")
    return text


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {type_name(value)} {describe(value)}")
    return value


def positive_int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(path, f"expected a positive integer, got {describe(value)}")
    return value


def string_list(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of strings, got {type_name(value)} {describe(value)}")
    return tuple(nonempty_string(v, f"{path}[{i}]") for i, v in enumerate(value))


def string_map(value: object, path: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping of strings, got {type_name(value)} {describe(value)}")
    out = {}
    for k, v in value.items():
        key = nonempty_string(k, path)
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ConfigError(f"{path}.{k}", f"expected a string, got {type_name(v)} {describe(v)}")
        out[key] = str(v)
    return out


def command(value: object, path: str) -> tuple[str, ...]:
    """A container command: a list of strings, or one string (one argv word, like KubeSpawner's cmd)."""
    if isinstance(value, str):
        return (nonempty_string(value, path),)
    return string_list(value, path)


_SLUG = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def slug(value: object, path: str) -> str:
    text = string(value, path)
    if not _SLUG.fullmatch(text):
        raise ConfigError(path, f"expected a slug (lowercase letters, digits and '-', at most 63, "
                                f"starting and ending with a letter or digit), got {describe(text)}")
    return text


def regex(value: object, path: str) -> "re.Pattern[str]":
    text = nonempty_string(value, path)
    try:
        return re.compile(text)
    except re.error as e:
        raise ConfigError(path, f"not a valid regular expression ({e}): {describe(text)}") from None


def plain_mapping(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, got {type_name(value)} {describe(value)}")
    return dict(value)
