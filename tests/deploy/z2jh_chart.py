"""Helm values without a cluster: what ``helm -f a -f b`` merges, and the chart's values schema.

* ``merged_values`` merges values files the way helm does (maps merge recursively, anything else replaces,
  ``null`` deletes the key) over the chart's own ``values.yaml`` (../shared/z2jh/); ``validate`` checks them
  against the chart's ``values.schema.json``.
* The hub's configuration is made by the real chart now (rendered by helm, its own ``jupyterhub_config.py`` run
  over it: tests/deploy/hub.py, jupyterhub_ext/cli/chart.py); the emulation of it that lived here is gone.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared"))
Z2JH = SHARED / "z2jh"
HELM = ROOT / "helm"
RELEASE = "jupyterhub"
NAMESPACE = "jupyterhub"
CHART_VERSION = "4.4.0"

# Every shipped combination: the base alone (port-forward) and the base with each overlay.
COMBINATIONS = {
    "base": ["values.yaml"],
    "eks-cognito": ["values.yaml", "values-eks-cognito.yaml"],
    "eks-keycloak": ["values.yaml", "values-eks-keycloak.yaml"],
    "aks-classroom": ["values.yaml", "values-aks-classroom.yaml"],
}


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _load_cached(path: Path, mtime: float) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


def load_yaml(path: Path) -> Any:
    """A YAML file (parsed once per modification; callers get their own copy)."""
    return copy.deepcopy(_load_cached(path, path.stat().st_mtime))


def merge_maps(a: Any, b: Any) -> Any:
    """Helm's merge of several ``-f`` files (pkg/cli/values): maps merge recursively, the later file wins,
    a ``null`` is kept as a value (it is resolved against the chart's defaults by ``coalesce``)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return copy.deepcopy(b)
    out = copy.deepcopy(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce(user: Any, defaults: Any) -> Any:
    """Helm's coalescing of user values with the chart's values.yaml (pkg/chartutil/coalesce.go): a user
    ``null`` deletes the key together with its default; defaults fill in what the user did not set; a
    ``null`` for a key the chart has no default for stays a null."""
    if not isinstance(user, dict) or not isinstance(defaults, dict):
        return copy.deepcopy(user)
    out = copy.deepcopy(user)
    for key, default in defaults.items():
        if key in out:
            if out[key] is None:
                del out[key]
            elif isinstance(out[key], dict) and isinstance(default, dict):
                out[key] = coalesce(out[key], default)
        else:
            out[key] = copy.deepcopy(default)
    return out


def user_values(files: list[str]) -> dict:
    merged: dict = {}
    for name in files:
        merged = merge_maps(merged, load_yaml(HELM / name) or {})
    return merged


def merged_values(files: list[str] | dict) -> dict:
    """The chart's values.yaml with the given values files (or already merged user values) on top."""
    chart = load_yaml(Z2JH / "values.yaml")
    overrides = files if isinstance(files, dict) else user_values(files)
    return coalesce(overrides, chart)


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft7Validator:
    with open(Z2JH / "values.schema.json", encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validate(values: dict) -> None:
    """Raise jsonschema.ValidationError as ``helm install`` would (the chart's schema, draft 7)."""
    _validator().validate(values)


# -- the hub container's environment ---------------------------------------------------------------------

@contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
