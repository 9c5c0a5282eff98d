"""Hour budgets: the period a budget counts, whose hours count, and the refusal in the user's words. Pure.

The hours themselves come from the usage ledger (``Ledger.hours``); this module only decides.
"""

from __future__ import annotations

import datetime

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
