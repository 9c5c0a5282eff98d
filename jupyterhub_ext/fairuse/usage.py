"""Hours used under each hour budget, kept in memory so that a start's budget check (and a running server's,
at each poll) reads no database.

The ledger stays the record: the book is rebuilt from it by a hub that starts, and every write of a run goes
through the book (``open``, ``ready``, ``close`` here write the ledger, then follow). For each budget and period,
the closed runs are summed from the ledger once, the first time that budget is asked about in that period (one
query over the period's rows); runs still open are followed as they become ready and close, and counted up to
the moment asked. A period that begins starts a new sum; the old one is dropped.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping

from .budgets import period_start
from .ledger import Ledger, Run
from .model import Budget


@dataclass
class OpenRun:
    user: str
    groups: frozenset[str]
    profile: str | None
    ready: datetime.datetime | None = None


def _seconds(ready: datetime.datetime, end: datetime.datetime, since: datetime.datetime) -> float:
    return max(0.0, (end - max(ready, since)).total_seconds())


def _whose(budget: Budget, user: str, groups: Iterable[str]) -> list[str]:
    """Whose count a run adds to: its user (per user), or each of the budget's groups it was started in."""
    if budget.per == "user":
        return [user]
    return [g for g in budget.groups if g in groups]


class UsageBook:
    """One hub database's runs and budget sums (one per database: see FairUseMixin)."""

    def __init__(self) -> None:
        self._open: dict[int, OpenRun] = {}
        self._by_user: dict[str, set[int]] = defaultdict(set)
        self._by_group: dict[str, set[int]] = defaultdict(set)
        # (budget, period start) -> seconds of closed runs, by user or group
        self._closed: dict[tuple[Budget, datetime.datetime], dict[str, float]] = {}

    # -- the runs ------------------------------------------------------------------------------------

    def follow(self, open_runs: Iterable[Mapping]) -> None:
        """The ledger's open runs, as a hub that starts finds them (rows of ``Ledger.open_runs``)."""
        for row in open_runs:
            self._add(int(row["id"]), OpenRun(row["user"], frozenset(row["groups"] or ()), row["profile"],
                                              row["ready"]))

    def open(self, ledger: Ledger, run: Run, at: datetime.datetime) -> int:
        run_id = ledger.open(run, at)
        self._add(run_id, OpenRun(run.user, frozenset(run.groups), run.profile))
        return run_id

    def ready(self, ledger: Ledger, run_id: int, at: datetime.datetime) -> None:
        ledger.ready(run_id, at)
        run = self._open.get(run_id)
        if run is not None and run.ready is None:
            run.ready = at

    def close(self, ledger: Ledger, run_id: int, ended: str, at: datetime.datetime) -> bool:
        closed = ledger.close(run_id, ended, at)
        run = self._open.pop(run_id, None)
        if run is None:
            return closed
        self._by_user[run.user].discard(run_id)
        for g in run.groups:
            self._by_group[g].discard(run_id)
        if closed and run.ready is not None:
            for (budget, since), sums in self._closed.items():
                if run.profile in budget.profiles and at > since:
                    for whose in _whose(budget, run.user, run.groups):
                        sums[whose] = sums.get(whose, 0.0) + _seconds(run.ready, at, since)
        return closed

    def run(self, run_id: int | None) -> OpenRun | None:
        return self._open.get(run_id) if run_id is not None else None

    def _add(self, run_id: int, run: OpenRun) -> None:
        self._open[run_id] = run
        self._by_user[run.user].add(run_id)
        for g in run.groups:
            self._by_group[g].add(run_id)

    # -- the budgets ---------------------------------------------------------------------------------

    def hours(self, ledger: Ledger, budget: Budget, whose: str, now: datetime.datetime) -> float:
        """Hours of ``budget``'s profiles used by ``whose`` (a user, or a group for ``per: group``) in the period
        holding ``now``: closed runs clipped to the period, open runs up to ``now``."""
        since = period_start(budget.period, now)
        seconds = self._sums(ledger, budget, since).get(whose, 0.0)
        for run in self._running(budget, whose):
            if run.ready < now:
                seconds += _seconds(run.ready, now, since)
        return seconds / 3600.0

    def running(self, budget: Budget, whose: str) -> int:
        """How many servers are using ``whose``'s share of ``budget`` right now."""
        return sum(1 for _ in self._running(budget, whose))

    def _running(self, budget: Budget, whose: str):
        ids = self._by_user.get(whose, ()) if budget.per == "user" else self._by_group.get(whose, ())
        for run_id in ids:
            run = self._open[run_id]
            if run.ready is not None and run.profile in budget.profiles:
                yield run

    def _sums(self, ledger: Ledger, budget: Budget, since: datetime.datetime) -> dict[str, float]:
        sums = self._closed.get((budget, since))
        if sums is None:
            for key in [k for k in self._closed if k[0] == budget]:  # an earlier period's
                del self._closed[key]
            sums = self._closed[(budget, since)] = {}
            for user, groups, ready, stopped in ledger.closed_runs(budget.profiles, since):
                for whose in _whose(budget, user, groups or ()):
                    sums[whose] = sums.get(whose, 0.0) + _seconds(ready, stopped, since)
        return sums
