"""Whether a start fits under the caps, who it is charged to, and the refusal in the user's words. Pure.

A start is charged, for each cap on its profile, to the total, to the user, and to one group of record: the first
of the cap's groups (in the order written) that the user belongs to and that has room; users in none of them are
charged to ``others`` when it is set. The charges are remembered with the server, so it gives back exactly what it
took when it stops, whatever happened to the user's groups meanwhile.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..catalog.access import Who
from .model import Budget, Cap, Limits

OTHERS = "\x00others"  # the group of record of users in none of a cap's groups (never a real group's name)
FREES_WHEN = "A place frees when someone stops their server."


@dataclass(frozen=True)
class Charge:
    cap: str             # Cap.name
    user: str
    group: str | None    # the group of record, OTHERS, or None (the cap has no group limits)


@dataclass(frozen=True)
class Refusal:
    text: str


class Counts:
    """Servers running or starting, per cap: in total, per user, per group of record."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.user: Counter[tuple[str, str]] = Counter()
        self.group: Counter[tuple[str, str]] = Counter()

    def add(self, charges: Iterable[Charge], sign: int = 1) -> None:
        for c in charges:
            self.total[c.cap] += sign
            self.user[(c.cap, c.user)] += sign
            if c.group is not None:
                self.group[(c.cap, c.group)] += sign

    def remove(self, charges: Iterable[Charge]) -> None:
        self.add(charges, -1)


def _servers(n: int) -> str:
    return "1 server" if n == 1 else f"{n} servers"


def _charge(cap: Cap, counts: Counts, who: Who, label: str) -> Charge | Refusal:
    if cap.total is not None and counts.total[cap.name] >= cap.total:
        return Refusal(f"All {_servers(cap.total)} of {label} are in use right now "
                       f"({counts.total[cap.name]} of {cap.total}).")
    mine = counts.user[(cap.name, who.name)]
    if cap.per_user is not None and mine >= cap.per_user:
        return Refusal(f"You already have {_servers(mine)} of {label} running, and the limit is "
                       f"{cap.per_user} per person: stop one to start another.")
    if not cap.groups:
        return Charge(cap.name, who.name, None)
    member = [g for g in cap.groups if g in who.groups]
    for g in member:
        if counts.group[(cap.name, g)] < cap.groups[g]:
            return Charge(cap.name, who.name, g)
    if member:
        g = member[0]
        return Refusal(f"The {_servers(cap.groups[g])} of {label} for your group {g} are all in use "
                       f"({counts.group[(cap.name, g)]} of {cap.groups[g]}).")
    if cap.others is None:
        return Charge(cap.name, who.name, OTHERS)
    if counts.group[(cap.name, OTHERS)] >= cap.others:
        if cap.others == 0:
            return Refusal(f"{label[0].upper() + label[1:]} are only for members of {', '.join(cap.groups)}.")
        return Refusal(f"The {_servers(cap.others)} of {label} for users outside the groups "
                       f"{', '.join(cap.groups)} are all in use ({counts.group[(cap.name, OTHERS)]} of {cap.others}).")
    return Charge(cap.name, who.name, OTHERS)


def decide(limits: Limits, counts: Counts, who: Who, profile: str,
           labels: Mapping[str, str] | None = None) -> tuple[Charge, ...] | Refusal:
    """The charges of a start of ``profile`` by ``who``, or why it does not fit. Admins are not charged when
    ``admins_exempt``."""
    if who.admin and limits.admins_exempt:
        return ()
    charges = []
    for cap in limits.caps_on(profile):
        got = _charge(cap, counts, who, label_of(cap, labels or {}))
        if isinstance(got, Refusal):
            return got
        charges.append(got)
    return tuple(charges)


def label_of(target: Cap | Budget, labels: Mapping[str, str]) -> str:
    """``the GPU (A10G) servers`` for a cap or budget on a profile, ``the a10g servers`` on a pool."""
    if len(target.profiles) == 1 and target.name in labels:
        return f"the {labels[target.name]} servers"
    return f"the {target.name} servers"


def refusal_text(refusal: Refusal, alternatives: Iterable[str]) -> str:
    """The whole message: why, when a place frees, and what the user may start instead."""
    text = f"{refusal.text} {FREES_WHEN}"
    alternatives = list(alternatives)
    if alternatives:
        text += " You may start instead: " + ", ".join(alternatives) + "."
    return text


def charge_anyway(limits: Limits, who: Who, profile: str) -> tuple[Charge, ...]:
    """The charges of a server that is already running (found after a restart, started before its cap existed):
    counted whatever the caps say now, to its first group of record."""
    if who.admin and limits.admins_exempt:
        return ()
    out = []
    for cap in limits.caps_on(profile):
        member = [g for g in cap.groups if g in who.groups]
        group = (member[0] if member else OTHERS) if cap.groups else None
        out.append(Charge(cap.name, who.name, group))
    return tuple(out)
