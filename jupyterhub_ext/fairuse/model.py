"""The ``limits`` an operator writes, read into typed, checked records. Pure.

::

    limits:
      admins_exempt: true                 # admins start whatever the caps say (default true)
      pools:                              # profiles that share hardware, counted together
        a10g: [gpu, gpu-timeslice]
      caps:
        - pool: a10g                      # or profile: SLUG
          total: 8                        # servers at once, everyone together
          per_user: 1                     # servers at once per user
          groups: {students: 4, staff: 8} # servers at once per group (a user is charged to one of theirs)
          others: 0                       # users in none of those groups (default: no group limit)
      culling:                            # per profile or pool, for the chart's culler (culling/)
        - pool: a10g                      # or profile: SLUG
          idle_minutes: 30                # stopped after this long without activity
          max_age_hours: 12               # stopped this long after it started, active or not

Errors name the key as written (``ProfilesKubeSpawner.limits.caps[0].groups.students``), with did-you-mean.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..catalog.reader import unknown_key_message
from ..errors import ConfigError

LIMITS_FIELDS = frozenset({"admins_exempt", "pools", "caps", "budgets", "culling"})
CAP_FIELDS = frozenset({"pool", "profile", "total", "per_user", "groups", "others"})
BUDGET_FIELDS = frozenset({"pool", "profile", "hours", "period", "per", "groups", "minimum_hours", "grace_minutes"})
DEFAULT_GRACE_MINUTES = 15
CULL_FIELDS = frozenset({"pool", "profile", "idle_minutes", "max_age_hours"})
PERIODS = ("week", "month")
BUDGET_SCOPES = ("user", "group")


@dataclass(frozen=True)
class Cap:
    """At most so many servers at once of ``profiles`` (one profile, or a pool's)."""

    name: str                            # the pool's name or the profile's slug, for messages
    profiles: frozenset[str]
    total: int | None = None
    per_user: int | None = None
    groups: Mapping[str, int] = field(default_factory=dict)   # in the order written: the order of charging
    others: int | None = None
    key: str = ""


@dataclass(frozen=True)
class Budget:
    """At most ``hours`` server-hours of ``profiles`` per ``period``, for each user (``per: user``) or for each
    listed group together (``per: group``), for members of ``groups`` (none listed: everyone, per user)."""

    name: str
    profiles: frozenset[str]
    hours: float
    period: str = "week"
    per: str = "user"
    groups: tuple[str, ...] = ()
    minimum_hours: float = 0.0    # a start needs at least this much of the budget left
    grace_minutes: float = DEFAULT_GRACE_MINUTES   # warned this long before it runs out; stopped this long after
    key: str = ""

    def applies_to(self, groups: frozenset[str]) -> bool:
        return not self.groups or any(g in groups for g in self.groups)


@dataclass(frozen=True)
class CullRule:
    """Servers of ``profiles`` stopped after ``idle_minutes`` without activity and/or ``max_age_hours`` after they
    started (None: the culler's own setting decides). A profile's own rule beats its pool's."""

    name: str
    profiles: frozenset[str]
    idle_minutes: float | None = None
    max_age_hours: float | None = None
    pool: bool = False            # written for a pool (not a profile)
    key: str = ""


@dataclass(frozen=True)
class Limits:
    caps: tuple[Cap, ...] = ()
    budgets: tuple[Budget, ...] = ()
    pools: Mapping[str, frozenset[str]] = field(default_factory=dict)
    admins_exempt: bool = True
    culling: tuple[CullRule, ...] = ()

    @property
    def empty(self) -> bool:
        """No caps and no budgets: nothing is counted at a start (cull rules are the culler's, not the start's)."""
        return not self.caps and not self.budgets

    def caps_on(self, profile: str) -> tuple[Cap, ...]:
        return tuple(c for c in self.caps if profile in c.profiles)

    def budgets_on(self, profile: str) -> tuple[Budget, ...]:
        return tuple(b for b in self.budgets if profile in b.profiles)


NO_LIMITS = Limits()


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"expected a positive whole number of servers, got {value!r}"
                               + (" (to forbid a profile, use its access rule)" if value == 0 else ""))
    return value


def _known(raw: Mapping, fields: frozenset[str], key: str) -> None:
    for name in raw:
        if name not in fields:
            raise ConfigError(f"{key}.{name}", unknown_key_message(name, fields))


def _slug(value: Any, profiles: Iterable[str], key: str) -> str:
    known = sorted(profiles)
    if not isinstance(value, str) or value not in known:
        raise ConfigError(key, f"no profile {value!r} in the catalog" + _hint(value, known))
    return value


def _hint(value: Any, known: list[str]) -> str:
    close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; the catalog has {', '.join(known) or 'none'}"


def parse_limits(raw: Any, key: str, profiles: Iterable[str]) -> Limits:
    """The checked limits; ``profiles``: the catalog's profile slugs, which every cap must name."""
    if raw is None or raw == {}:
        return NO_LIMITS
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping with pools and caps, got {raw!r}")
    _known(raw, LIMITS_FIELDS, key)
    slugs = frozenset(profiles)
    exempt = raw.get("admins_exempt", True)
    if not isinstance(exempt, bool):
        raise ConfigError(f"{key}.admins_exempt", f"expected true or false, got {exempt!r}")
    pools_raw = raw.get("pools") or {}
    if not isinstance(pools_raw, Mapping):
        raise ConfigError(f"{key}.pools", "expected a mapping of pool name to a list of profile slugs")
    pools: dict[str, frozenset[str]] = {}
    for name, members in pools_raw.items():
        at = f"{key}.pools.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.pools", f"pool names are strings, got {name!r}")
        if name in slugs:
            raise ConfigError(at, f"{name!r} is also a profile; give the pool another name")
        if not isinstance(members, list) or not members:
            raise ConfigError(at, f"expected a non-empty list of profile slugs, got {members!r}")
        pools[name] = frozenset(_slug(m, slugs, f"{at}[{i}]") for i, m in enumerate(members))
    caps_raw = raw.get("caps") or []
    if not isinstance(caps_raw, list):
        raise ConfigError(f"{key}.caps", f"expected a list of caps, got {caps_raw!r}")
    caps = tuple(_parse_cap(c, f"{key}.caps[{i}]", slugs, pools) for i, c in enumerate(caps_raw))
    seen: dict[str, str] = {}
    for cap in caps:
        if cap.name in seen:
            raise ConfigError(cap.key, f"{cap.name!r} is capped twice (also {seen[cap.name]}); one cap each")
        seen[cap.name] = cap.key
    budgets_raw = raw.get("budgets") or []
    if not isinstance(budgets_raw, list):
        raise ConfigError(f"{key}.budgets", f"expected a list of budgets, got {budgets_raw!r}")
    budgets = tuple(_parse_budget(b, f"{key}.budgets[{i}]", slugs, pools) for i, b in enumerate(budgets_raw))
    culling_raw = raw.get("culling") or []
    if not isinstance(culling_raw, list):
        raise ConfigError(f"{key}.culling", f"expected a list of cull rules, got {culling_raw!r}")
    culling = _check_cull_overlaps(
        tuple(_parse_cull_rule(r, f"{key}.culling[{i}]", slugs, pools) for i, r in enumerate(culling_raw)))
    return Limits(caps=caps, budgets=budgets, pools=pools, admins_exempt=exempt, culling=culling)


def _target(raw: Mapping, key: str, slugs: frozenset[str], pools: Mapping[str, frozenset[str]]):
    if ("pool" in raw) == ("profile" in raw):
        raise ConfigError(key, "name exactly one of pool or profile")
    if "pool" in raw:
        name = raw["pool"]
        if name not in pools:
            raise ConfigError(f"{key}.pool", f"no pool {name!r} under pools" + _hint(name, sorted(pools)))
        return name, pools[name]
    name = _slug(raw["profile"], slugs, f"{key}.profile")
    return name, frozenset({name})


def _hours(value: Any, key: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 \
            or (value == 0 and not zero) or value == float("inf"):
        raise ConfigError(key, f"expected a positive number of hours, got {value!r}")
    return float(value)


def _parse_budget(raw: Any, key: str, slugs: frozenset[str], pools: Mapping[str, frozenset[str]]) -> Budget:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping (pool or profile, hours, period), got {raw!r}")
    _known(raw, BUDGET_FIELDS, key)
    name, members = _target(raw, key, slugs, pools)
    if "hours" not in raw:
        raise ConfigError(f"{key}.hours", "a budget needs its hours per period")
    hours = _hours(raw["hours"], f"{key}.hours")
    period = raw.get("period", "week")
    if period not in PERIODS:
        raise ConfigError(f"{key}.period", f"expected one of {', '.join(PERIODS)}, got {period!r}")
    per = raw.get("per", "user")
    if per not in BUDGET_SCOPES:
        raise ConfigError(f"{key}.per", f"expected one of {', '.join(BUDGET_SCOPES)}, got {per!r}")
    groups = raw.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ConfigError(f"{key}.groups", f"expected a list of group names, got {groups!r}")
    if per == "group" and not groups:
        raise ConfigError(f"{key}.groups", "a budget per group needs the groups it is for")
    minimum = _hours(raw.get("minimum_hours", 0), f"{key}.minimum_hours", zero=True)
    if minimum > hours:
        raise ConfigError(f"{key}.minimum_hours", f"{minimum:g} is more than the budget of {hours:g} hours: "
                                                  "no start could ever be made")
    grace = raw.get("grace_minutes", DEFAULT_GRACE_MINUTES)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 < grace <= 24 * 60:
        raise ConfigError(f"{key}.grace_minutes", f"expected minutes, more than 0 and at most 1440 (a running server "
                                                  f"is warned this long before its budget runs out), got {grace!r}")
    return Budget(name=name, profiles=members, hours=hours, period=period, per=per, groups=tuple(groups),
                  minimum_hours=minimum, grace_minutes=float(grace), key=key)


def _parse_cap(raw: Any, key: str, slugs: frozenset[str], pools: Mapping[str, frozenset[str]]) -> Cap:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping (pool or profile, and the limits), got {raw!r}")
    _known(raw, CAP_FIELDS, key)
    name, members = _target(raw, key, slugs, pools)
    total = _count(raw["total"], f"{key}.total") if raw.get("total") is not None else None
    per_user = _count(raw["per_user"], f"{key}.per_user") if raw.get("per_user") is not None else None
    groups_raw = raw.get("groups") or {}
    if not isinstance(groups_raw, Mapping):
        raise ConfigError(f"{key}.groups", f"expected a mapping of group name to a number, got {groups_raw!r}")
    groups = {g: _count(n, f"{key}.groups.{g}") for g, n in groups_raw.items()}
    others = None
    if raw.get("others") is not None:
        others = raw["others"]
        if isinstance(others, bool) or not isinstance(others, int) or others < 0:
            raise ConfigError(f"{key}.others", f"expected a whole number of servers (0: none), got {others!r}")
        if not groups:
            raise ConfigError(f"{key}.others", "others limits users outside the listed groups; list groups")
    if total is None and per_user is None and not groups:
        raise ConfigError(key, f"the cap on {name!r} limits nothing: set total, per_user or groups")
    for g, n in groups.items():
        if total is not None and n > total:
            raise ConfigError(f"{key}.groups.{g}", f"{n} is more than the total of {total}: it could never be met")
    if per_user is not None and total is not None and per_user > total:
        raise ConfigError(f"{key}.per_user", f"{per_user} is more than the total of {total}")
    return Cap(name=name, profiles=members, total=total, per_user=per_user, groups=groups, others=others, key=key)


def _positive(value: Any, key: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value <= 0 \
            or value == float("inf"):
        raise ConfigError(key, f"expected a positive number of {unit}, got {value!r}")
    return float(value)


def _parse_cull_rule(raw: Any, key: str, slugs: frozenset[str], pools: Mapping[str, frozenset[str]]) -> CullRule:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping (pool or profile, idle_minutes, max_age_hours), got {raw!r}")
    _known(raw, CULL_FIELDS, key)
    name, members = _target(raw, key, slugs, pools)
    if raw.get("idle_minutes") is None and raw.get("max_age_hours") is None:
        raise ConfigError(key, f"the rule for {name!r} culls nothing: set idle_minutes, max_age_hours or both")
    idle = _positive(raw["idle_minutes"], f"{key}.idle_minutes", "minutes") \
        if raw.get("idle_minutes") is not None else None
    age = _positive(raw["max_age_hours"], f"{key}.max_age_hours", "hours") \
        if raw.get("max_age_hours") is not None else None
    return CullRule(name=name, profiles=members, idle_minutes=idle, max_age_hours=age, pool="pool" in raw, key=key)


def _check_cull_overlaps(rules: tuple[CullRule, ...]) -> tuple[CullRule, ...]:
    """Each profile or pool named once; a profile in two pools with rules would have two timeouts: refused
    (its own rule, which beats a pool's, settles it)."""
    named: dict[str, str] = {}
    by_pool: dict[str, CullRule] = {}
    for rule in rules:
        if rule.name in named:
            raise ConfigError(rule.key, f"{rule.name!r} has a cull rule already ({named[rule.name]}); one rule each")
        named[rule.name] = rule.key
    own = {r.name for r in rules if not r.pool}
    for rule in (r for r in rules if r.pool):
        for slug in sorted(rule.profiles - own):
            other = by_pool.get(slug)
            if other is not None:
                raise ConfigError(rule.key, f"profile {slug!r} is in pools {other.name!r} ({other.key}) and "
                                            f"{rule.name!r}, both with cull rules: give {slug!r} a rule of its own")
            by_pool[slug] = rule
    return rules
