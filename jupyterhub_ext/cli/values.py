"""Helm values files, merged as helm merges ``-f a.yaml -f b.yaml``: mappings merge key by key, anything else
(lists included) is replaced by the later file, and ``null`` removes a key. Pure."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml


class ValuesError(Exception):
    """A values file that cannot be read: a usage error (exit 2), not a configuration problem."""


def load(path: str | Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValuesError(f"{path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValuesError(f"{path}: not YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError(f"{path}: a values file is a mapping at the top, got {type(data).__name__}")
    return data


def merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merged(paths: Iterable[str | Path]) -> dict:
    out: dict = {}
    for path in paths:
        out = merge(out, load(path))
    return out


def dig(values: dict, dotted: str, default: Any = None) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
