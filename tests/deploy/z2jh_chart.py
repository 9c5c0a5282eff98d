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
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from jupyterhub_ext.cli.chart import environment
from jupyterhub_ext.cli.values import coalesce as values_coalesce
from jupyterhub_ext.cli.values import merge as values_merge

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


# helm's merge of -f files and its coalescing with the chart's defaults: the package's own, which
# `jupyterhub-ext check` merges values files with (jupyterhub_ext/cli/values.py)
merge_maps = values_merge
coalesce = values_coalesce


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


# the hub container's environment, set while a block runs (jupyterhub_ext/cli/chart.py)
environ = environment
