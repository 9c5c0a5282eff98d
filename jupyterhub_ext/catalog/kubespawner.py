"""Catalog -> KubeSpawner: the form's ``profile_list`` and the trait overrides for one selection.

KubeSpawner's own form template renders the per-user list; the overrides are applied with KubeSpawner's own
``_apply_overrides`` (dicts merge into the configured value, everything else replaces it).
"""

from __future__ import annotations

import copy
import difflib
import functools
from typing import Any, Iterable, Iterator, Mapping

from traitlets import HasTraits

from ..errors import ConfigError
from ..traitvalues import put, toleration_key
from .access import Selection, View
from .hardware import MIG_PREFIX, Range, Settings, check_mig_profile
from .model import Catalog, merge_range
from .reader import snake_case

LABEL_PREFIX = "jupyterhub-ext"

# Traits the catalog sets from its own fields: setting them in a raw override as well would let the two
# disagree, so a raw override of these names the field to use instead.
MANAGED = {
    "image": "image (or an image option)",
    "cmd": "command",
    "cpu_guarantee": "hardware.cpu.guarantee",
    "cpu_limit": "hardware.cpu.limit",
    "mem_guarantee": "hardware.memory.guarantee",
    "mem_limit": "hardware.memory.limit",
    "node_selector": "hardware.node_selector or hardware.node_pool",
    "tolerations": "hardware.tolerations",
}


@functools.lru_cache(maxsize=1)
def kubespawner_traits() -> Mapping[str, Any]:
    from kubespawner import KubeSpawner

    return KubeSpawner.class_traits(config=True)


class _Owner(HasTraits):
    """What traitlets validates a value for. KubeSpawner's trait types need an owner object but none of a
    spawner's state (its cross-validators only convert deprecated forms), so no spawner - and no Kubernetes
    client - is made to check a catalog: the hub and the local run check it alike."""


def validate_value(key: str, value: Any) -> None:
    """Raise (TraitError, ...) unless ``value`` is a valid value of ``KubeSpawner.<key>``."""
    kubespawner_traits()[key]._validate(_Owner(), copy.deepcopy(value))


def check_override(override: Mapping[str, Any], path: str, validate=validate_value,
                   settings: Settings = Settings(), *, applied_alone: bool = True) -> None:
    """Every key must be a real, configurable KubeSpawner trait (upstream silently ignores typos).

    ``applied_alone=False`` (a choice's override, applied over its profile's) leaves the extended-resource
    checks to the caller, which makes them on the two as applied together."""
    traits = kubespawner_traits()
    for key, value in override.items():
        at = f"{path}.{key}"
        if key not in traits:
            raise ConfigError(at, _unknown_trait(key, traits))
        if key in MANAGED:
            raise ConfigError(at, f"set by the catalog; use the profile's {MANAGED[key]} instead")
        if validate is not None:
            try:
                validate(key, value)
            except Exception as e:  # a TraitError, or whatever the trait's validator raises
                raise ConfigError(at, f"not a valid value for KubeSpawner.{key}: {e}") from None
    if applied_alone:
        _check_extended(override, path, settings)


def _unknown_trait(key: str, traits: Iterable[str]) -> str:
    snake = snake_case(str(key))
    if snake != key and snake in traits:
        return f"{key!r} is not a KubeSpawner setting: settings are snake_case, use {snake!r}"
    close = difflib.get_close_matches(str(key), list(traits), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{key!r} is not a configurable KubeSpawner setting{hint}"


def _is_extended(name: str) -> bool:
    # extended resources are fully qualified names outside the kubernetes.io domain (GPUs, MIG, Neuron)
    domain = name.split("/", 1)[0] if "/" in name else ""
    return bool(domain) and domain != "kubernetes.io" and not domain.endswith(".kubernetes.io")


def _check_extended(override: Mapping[str, Any], path: str, settings: Settings) -> None:
    """Extended resources in a raw override get the checks a hardware kind gets: a known MIG profile, a
    whole count, and a limit equal to any request (Kubernetes rejects the pod otherwise)."""
    guarantees = override.get("extra_resource_guarantees") or {}
    limits = override.get("extra_resource_limits") or {}
    for field in ("extra_resource_limits", "extra_resource_guarantees"):
        values = override.get(field) or {}
        if not isinstance(values, Mapping):
            continue  # the trait's own validation names the type
        for name, value in values.items():
            name = str(name)
            if not _is_extended(name):
                continue
            at = f"{path}.{field}.{name}"
            if name.startswith(MIG_PREFIX):
                check_mig_profile(name[len(MIG_PREFIX):], settings, at)
            if isinstance(value, bool) or not str(value).isdigit() or int(str(value)) < 1:
                raise ConfigError(at, f"an extended resource is counted in whole devices: expected a positive "
                                      f"integer, got {value!r}")
    for name, value in guarantees.items():
        if _is_extended(str(name)) and str(limits.get(name)) != str(value):
            raise ConfigError(f"{path}.extra_resource_guarantees.{name}",
                              "an extended resource needs a limit equal to its request (Kubernetes rejects "
                              "the pod otherwise); use a hardware kind, or set extra_resource_limits too")


def raw_overrides(catalog: Catalog, path: str) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]]:
    """Every raw override of the catalog: (its key, the override, its profile's override for a choice's)."""
    for i, profile in enumerate(catalog.profiles):
        yield f"{path}[{i}].kubespawner_override", profile.kubespawner_override, None
        for j, option in enumerate(profile.options):
            for k, choice in enumerate(option.choices):
                yield (f"{path}[{i}].options[{j}].choices[{k}].kubespawner_override", choice.kubespawner_override,
                       profile.kubespawner_override)


def profile_list_overrides(profile_list: list, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every ``kubespawner_override`` of a plain KubeSpawner ``profile_list`` (no catalog), with its key."""
    for i, profile in enumerate(profile_list):
        yield f"{path}[{i}].kubespawner_override", profile.get("kubespawner_override") or {}
        for opt, option in (profile.get("profile_options") or {}).items():
            for ch, choice in (option.get("choices") or {}).items():
                yield (f"{path}[{i}].profile_options.{opt}.choices.{ch}.kubespawner_override",
                       choice.get("kubespawner_override") or {})


def check_catalog(catalog: Catalog, path: str, validate=validate_value) -> None:
    """Check every raw override, a choice's as it is applied: over its profile's (``overrides`` below)."""
    settings = catalog.settings
    for at, override, profile_override in raw_overrides(catalog, path):
        if profile_override is None:
            check_override(override, at, validate, settings)
            continue
        check_override(override, at, validate, settings, applied_alone=False)
        # a request in one and its limit in the other only meet at start: check them as ``overrides`` applies
        # them (the choice's keys replace the profile's)
        _check_extended({**profile_override, **override}, at, settings)


# -- the form ----------------------------------------------------------------------------------------

def profile_list(view: View) -> list[dict]:
    """The per-user ``profile_list`` KubeSpawner's form renders (choices it may not show are gone)."""
    out = []
    for pview in view.profiles:
        options = {}
        for oview in pview.options:
            ft = oview.free_text
            options[oview.option.slug] = {
                "display_name": oview.option.display_name,
                "choices": {c.slug: {"display_name": c.display_name, "default": c is oview.default}
                            for c in oview.choices},
                "unlisted_choice": {
                    "enabled": ft is not None,
                    "display_name": ft.display_name if ft else "",
                    "display_name_in_choices": ft.display_name if ft else "",
                    # HTML's pattern attribute anchors at both ends, like our server-side fullmatch
                    "validation_regex": ft.pattern.pattern if ft else "",
                    "validation_message": f"Must match {ft.pattern.pattern}" if ft else "",
                },
            }
        out.append({
            "slug": pview.profile.slug,
            "display_name": pview.profile.display_name,
            "description": pview.profile.description,
            "default": pview.default,
            "profile_options": options,
        })
    return out


# -- one selection -> overrides ----------------------------------------------------------------------

def with_tolerations(base: Any, extra: Iterable[Mapping[str, Any]]) -> Any:
    """The chart's tolerations (hub.jupyter.org/dedicated...) plus the profile's, in the chart's shape."""
    return put(base, [dict(t) for t in extra], toleration_key,
               key=lambda t: f"{LABEL_PREFIX}-{t.get('key', 'any')}")


def _resources(cpu: Range, memory: Range) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cpu.guarantee is not None:
        out["cpu_guarantee"] = cpu.guarantee
    if cpu.limit is not None:
        out["cpu_limit"] = cpu.limit
    if memory.guarantee is not None:
        out["mem_guarantee"] = int(memory.guarantee)
    if memory.limit is not None:
        out["mem_limit"] = int(memory.limit)
    return out


# Traits ``overrides`` sets from the catalog's own fields, whatever the selection
FIELD_TRAITS = ("image", "cmd", "cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit", "extra_resource_limits",
                "extra_resource_guarantees", "node_selector", "tolerations", "environment", "extra_labels",
                "extra_annotations")


@functools.lru_cache(maxsize=16)
def touched_traits(catalog: Catalog) -> tuple[str, ...]:
    """Every KubeSpawner trait some selection of ``catalog`` sets (``overrides``); a key that is no trait
    (refused by check_catalog) is left out."""
    names = dict.fromkeys(FIELD_TRAITS)
    traits = kubespawner_traits()
    for _, override, _ in raw_overrides(catalog, ""):
        names.update(dict.fromkeys(k for k in override if k in traits))
    return tuple(names)


def overrides(selection: Selection, base_tolerations: Any) -> dict[str, Any]:
    """KubeSpawner trait values for this selection, applied on top of the configured (chart) values."""
    profile, hw = selection.profile, selection.profile.hardware
    cpu, memory, image = hw.cpu, hw.memory, profile.image
    for _, choice in selection.choices:
        cpu, memory = merge_range(cpu, choice.cpu), merge_range(memory, choice.memory)
        image = choice.image or image
    annotations = {}
    for option, value in selection.free_text:
        image = value
        annotations[f"{LABEL_PREFIX}/{option.slug}"] = value

    out: dict[str, Any] = {}
    # raw overrides first: the catalog's own fields below are authoritative
    out.update(profile.kubespawner_override)
    for _, choice in selection.choices:
        out.update(choice.kubespawner_override)
    if image:
        out["image"] = image
    if profile.command:
        out["cmd"] = list(profile.command)
    out.update(_resources(cpu, memory))
    if hw.extended:
        limits = {name: str(count) for name, count in hw.extended}
        out["extra_resource_limits"] = {**out.get("extra_resource_limits", {}), **limits}
        out["extra_resource_guarantees"] = {**out.get("extra_resource_guarantees", {}), **limits}
    if hw.node_selector:
        out["node_selector"] = dict(hw.node_selector)
    if hw.tolerations:
        out["tolerations"] = with_tolerations(base_tolerations, hw.tolerations)
    if profile.env:
        out["environment"] = {**out.get("environment", {}), **profile.env}
    labels = {f"{LABEL_PREFIX}/{k}" if k == "profile" else f"{LABEL_PREFIX}/option-{k}": v
              for k, v in selection.labels().items()}
    out["extra_labels"] = {**out.get("extra_labels", {}), **labels}
    if annotations:
        out["extra_annotations"] = {**out.get("extra_annotations", {}), **annotations}
    return out
