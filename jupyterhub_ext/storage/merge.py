"""The storage plan merged into what the chart and a profile configured, keeping each value's shape. Pure.

The home and shared mounts and our init container always end up in the pod; the chart's own entries (its
cloud-metadata block, ``singleuser.extraVolumes``...) are never dropped, even under a profile's list override.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

from ..traitvalues import items, name_of, put, restored, toleration_key, without

# KubeSpawner orders a dict-form value by key: '!' sorts before any letter or digit, and our init container
# (the ownership fix) must run before the configured ones, which may write in the home.
FIRST_KEY_PREFIX = "!"


def merge_keyed(base: Any, current: Any, identity: Callable[[Any], str],
                plan: Mapping[str, dict]) -> tuple[Any, list[str]]:
    """Configured + override + plan, in ``current``'s shape; the plan wins. Returns (value, replaced identities)."""
    value = restored(base, current, identity, key=identity)
    present = {identity(v): v for v in items(value)}
    replaced = [k for k, v in plan.items() if k in present and present[k] != v]
    return put(value, plan.values(), identity, key=identity), replaced


def merge_init_containers(base: Any, current: Any, plan: Mapping[str, dict]) -> Any:
    """Ours first, then the configured ones in their order (init containers run one after another)."""
    value = without(restored(base, current, name_of, key=name_of), plan, name_of)
    return put(value, plan.values(), name_of, key=lambda c: FIRST_KEY_PREFIX + name_of(c), first=True)


def merge_tolerations(base: Any, current: Any) -> Any:
    """The configured tolerations back under a profile's list override."""
    return restored(base, current, toleration_key, key=lambda t: f"configured-{toleration_key(t)[0] or 'any'}")


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
