"""Per-profile culling, decided. Pure, standard library only: it runs in the hub (from the limits) and in the
culler's process (the hook), where neither JupyterHub nor this package's dependencies are installed.

The policy is plain JSON, ``{slug: {"idle_seconds": s | None, "max_age_seconds": s | None}}``, handed from the hub
to the culler in its service environment (``ENV``).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:  # the hub's side only: the culler's process has no model (it needs the catalog's reader)
    from ..fairuse.model import Limits

ENV = "JUPYTERHUB_EXT_CULLING"
IDLE, MAX_AGE = "idle", "max_age"
# the policy's entry for every profile without a maximum age of its own: the chart's cull.maxAge, decided by the
# hook (so the hub is told, and the ledger says culled) before the culler's own check would make the same cull.
# No profile slug can be "*" (the catalog's slugs are lowercase letters, digits and dashes).
EVERY_PROFILE = "*"

Policy = Mapping[str, Mapping[str, Optional[float]]]


def policy_of(limits: "Limits") -> dict[str, dict[str, float | None]]:
    """Each profile's idle timeout and maximum age, in seconds; a profile's own rule beats its pool's."""
    out: dict[str, dict[str, float | None]] = {}
    for rule in sorted(limits.culling, key=lambda r: not r.pool):  # pools first: a profile's own rule overwrites
        for slug in sorted(rule.profiles):
            out[slug] = {"idle_seconds": None if rule.idle_minutes is None else rule.idle_minutes * 60,
                         "max_age_seconds": None if rule.max_age_hours is None else rule.max_age_hours * 3600}
    return out


def decide(profile: str | None, inactive_seconds: float | None, age_seconds: float | None, inactive_limit: float,
           policy: Policy) -> str | None:
    """Why this server should be culled now (``"max_age"``, ``"idle"``), or None.

    A profile without a rule keeps the culler's own test (inactive for its ``--timeout``); the culler's global
    ``--max-age`` (the ``EVERY_PROFILE`` entry) applies to every profile without a maximum age of its own. Unknown
    times never cull by themselves.
    """
    rule = (policy.get(profile) if profile and profile != EVERY_PROFILE else None) or {}
    max_age = rule.get("max_age_seconds")
    if max_age is None:
        max_age = (policy.get(EVERY_PROFILE) or {}).get("max_age_seconds")
    if max_age is not None and age_seconds is not None and age_seconds >= max_age:
        return MAX_AGE
    idle = rule.get("idle_seconds")
    limit = inactive_limit if idle is None else idle
    if inactive_seconds is not None and inactive_seconds >= limit:
        return IDLE
    return None


def to_env(policy: Policy) -> str:
    return json.dumps(policy, sort_keys=True, separators=(",", ":"))


def from_env(environ: Mapping[str, str] = os.environ) -> dict:
    """The policy the hub put in the culler's environment ({} without one: every server by the culler's test)."""
    text = environ.get(ENV)
    return json.loads(text) if text else {}


def describe(policy: Policy) -> str:
    """``gpu: idle 30 min, max age 12 h; cpu: idle 480 min`` for the hub's log."""
    def one(rule: Mapping[str, float | None]) -> str:
        parts = []
        if rule.get("idle_seconds") is not None:
            parts.append(f"idle {rule['idle_seconds'] / 60:g} min")
        if rule.get("max_age_seconds") is not None:
            parts.append(f"max age {rule['max_age_seconds'] / 3600:g} h")
        return ", ".join(parts)
    return "; ".join(f"{slug}: {one(rule)}" for slug, rule in sorted(policy.items()) if slug != EVERY_PROFILE)
