"""Helm values files, merged as helm merges ``-f a.yaml -f b.yaml``: mappings merge key by key, anything else
(lists included) is replaced by the later file, and a ``null`` stays a null (helm's mergeMaps) until the merged
values meet the chart's defaults: there a ``null`` removes the key and its default, and a ``null`` for a key the
chart has no default for stays (``catalog_file:`` left empty reaches the hub as None, which it refuses). Pure."""

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


# The z2jh 4.4.0 chart's defaults under what the values alone are read for (hub.config, hub.extraEnv,
# hub.extraConfig): where a null deletes instead of staying.
CHART_DEFAULTS = {"hub": {"config": {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}},
                          "extraEnv": {}, "extraConfig": {}}}


def merge(base: dict, top: dict) -> dict:
    """One more ``-f`` file: a null is kept as a value, as helm keeps it until it coalesces (``coalesce``)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce(values: dict, defaults: dict) -> dict:
    """The merged values over the chart's defaults (helm's coalesce): a null removes the key with its default,
    defaults fill in what is not set, a null for a key without a default stays."""
    out = copy.deepcopy(values)
    for key, default in defaults.items():
        if key in out:
            if out[key] is None:
                del out[key]
            elif isinstance(out[key], dict) and isinstance(default, dict):
                out[key] = coalesce(out[key], default)
        else:
            out[key] = copy.deepcopy(default)
    return out


def merged(paths: Iterable[str | Path]) -> dict:
    out: dict = {}
    for path in paths:
        out = merge(out, load(path))
    return coalesce(out, CHART_DEFAULTS)


def dig(values: dict, dotted: str, default: Any = None) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
