"""Hour budgets: the period a budget counts, whose hours count, and the refusal in the user's words. Pure.

The hours themselves come from the usage ledger (``Ledger.hours``); this module only decides.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..catalog.access import Who
from .model import Budget
from .rules import Refusal

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def period_start(period: str, now: datetime.datetime) -> datetime.datetime:
    """The beginning of the period holding ``now`` (naive UTC): Monday 00:00, or the 1st of the month."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - datetime.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(period)


def period_end(period: str, now: datetime.datetime) -> datetime.datetime:
    start = period_start(period, now)
    if period == "week":
        return start + datetime.timedelta(days=7)
    return (start + datetime.timedelta(days=32)).replace(day=1)


def charged_to(budget: Budget, who: Who) -> str | None:
    """Whose hours a start counts against: the user (``per: user``) or their first listed group, or None when the
    budget is not for them."""
    if not budget.applies_to(who.groups):
        return None
    if budget.per == "user":
        return who.name
    return next(g for g in budget.groups if g in who.groups)


def _hours(h: float) -> str:
    """19.5, 20, 0.25: at most two decimals, no trailing zeros."""
    return f"{h:.2f}".rstrip("0").rstrip(".")


def refusal(budget: Budget, who: Who, used: float, now: datetime.datetime, label: str) -> Refusal | None:
    """Why ``who`` may not start under ``budget`` having ``used`` hours this period, or None."""
    left = budget.hours - used
    needed = budget.minimum_hours
    if left > 0 and left >= needed:
        return None
    whose = "you have" if budget.per == "user" else f"your group {charged_to(budget, who)} has"
    text = (f"{whose[0].upper() + whose[1:]} used {_hours(min(used, budget.hours))} of "
            f"{'your' if budget.per == 'user' else 'its'} {_hours(budget.hours)} hours of {label} this "
            f"{budget.period}")
    if needed:
        text += f"; a start needs at least {_hours(needed)} hour{'s' if needed != 1 else ''} left"
    end = period_end(budget.period, now)
    return Refusal(f"{text}. The budget starts again on {WEEKDAYS[end.weekday()]} {end.day} "
                   f"{end.strftime('%B %Y')}, 00:00 UTC.")


# -- a running server and its budget ---------------------------------------------------------------------

@dataclass(frozen=True)
class Runway:
    """When a running server's budget runs out at the rate it is used now, and when the server is stopped."""

    budget: Budget
    whose: str
    runs_out: datetime.datetime
    stop_at: datetime.datetime

    def warn_from(self) -> datetime.datetime:
        return self.runs_out - datetime.timedelta(minutes=self.budget.grace_minutes)


def runway(budget: Budget, whose: str, used: float, running: int, now: datetime.datetime) -> Runway:
    """``running`` servers use ``whose``'s share together, so it runs out that many times faster."""
    runs_out = now + datetime.timedelta(hours=(budget.hours - used) / max(1, running))
    return Runway(budget, whose, runs_out, runs_out + datetime.timedelta(minutes=budget.grace_minutes))


def stop_time(way: Runway, warned_at: datetime.datetime) -> datetime.datetime:
    """Never sooner than a whole grace period after the user was first warned, whatever the rate did since."""
    return max(way.stop_at, warned_at + datetime.timedelta(minutes=way.budget.grace_minutes))


def _clock(at: datetime.datetime, now: datetime.datetime) -> str:
    if at.date() == now.date():
        return f"{at:%H:%M} UTC"
    return f"{WEEKDAYS[at.weekday()]} {at.day} {at:%B}, {at:%H:%M} UTC"


def _server(server: str) -> str:
    return f"Your server {server!r}" if server else "Your server"


def _theirs(way: Runway, label: str) -> str:
    """'your 20 hours of A10G GPUs this week', or 'the 50 hours of A10G GPUs your group students has this month'."""
    b = way.budget
    if b.per == "user":
        return f"your {_hours(b.hours)} hours of {label} this {b.period}"
    return f"the {_hours(b.hours)} hours of {label} your group {way.whose} has this {b.period}"


def warning(way: Runway, server: str, stop_at: datetime.datetime, now: datetime.datetime, label: str) -> str:
    """What a user whose running server will be stopped for its budget reads on the hub's pages."""
    if way.runs_out > now:
        theirs = _theirs(way, label)
        first = f"{theirs[0].upper()}{theirs[1:]} run out at {_clock(way.runs_out, now)}."
    elif way.budget.per == "user":
        first = f"You have used {_theirs(way, label)}."
    else:
        first = (f"Your group {way.whose} has used its {_hours(way.budget.hours)} hours of {label} this "
                 f"{way.budget.period}.")
    return (f"{first} {_server(server)} will be stopped at {_clock(stop_at, now)} "
            f"(in {_minutes(stop_at - now)}): save your work before then.")


def stopped(way: Runway, server: str, now: datetime.datetime, label: str) -> str:
    end = period_end(way.budget.period, now)
    return (f"{_server(server)} was stopped at {_clock(now, now)}: {_theirs(way, label)} were used up. The budget "
            f"starts again on {WEEKDAYS[end.weekday()]} {end.day} {end.strftime('%B %Y')}, 00:00 UTC.")


def _minutes(delta: datetime.timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 1:
        return "less than a minute"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
