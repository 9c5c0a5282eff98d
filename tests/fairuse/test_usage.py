"""The usage book: the hours a budget check reads from memory are the ledger's own figure, whatever happened in
between (runs opening, becoming ready, closing, periods turning, a hub restarting on the same database)."""

from __future__ import annotations

import datetime
import random

import pytest
from jupyterhub import orm
from sqlalchemy import delete

from jupyterhub_ext.fairuse import budgets
from jupyterhub_ext.fairuse.ledger import USAGE, Ledger, Run, migrate
from jupyterhub_ext.fairuse.model import parse_limits
from jupyterhub_ext.fairuse.usage import UsageBook

PROFILES = ["gpu", "gpu-timeslice", "data-engineering"]
LIMITS = parse_limits({
    "pools": {"a10g": ["gpu", "gpu-timeslice"]},
    "budgets": [{"pool": "a10g", "hours": 20},
                {"pool": "a10g", "hours": 50, "per": "group", "groups": ["students", "staff"], "period": "month"},
                {"profile": "data-engineering", "hours": 100, "groups": ["staff"]}],
}, "limits", PROFILES)
USERS = ["alice", "bob", "carol"]
GROUPS = [("students",), ("staff",), ("students", "staff"), ()]


@pytest.fixture
def session(tmp_path):
    s = orm.new_session_factory(f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}", reset=False)()
    migrate(s.get_bind())
    yield s
    s.execute(delete(USAGE))
    s.commit()
    s.close()


def truth(ledger: Ledger, budget, whose: str, now: datetime.datetime) -> float:
    since = budgets.period_start(budget.period, now)
    if budget.per == "user":
        return ledger.hours(whose, budget.profiles, since, now)
    return ledger.hours(None, budget.profiles, since, now, group=whose)


@pytest.mark.parametrize("seed", range(6))
def test_the_books_hours_are_the_ledgers_through_random_histories(session, seed):
    rng = random.Random(seed)
    ledger = Ledger(session)
    book = UsageBook()
    now = datetime.datetime(2026, 11, 20, 8, 0)  # a week and a month turn during the run
    open_ids: list[int] = []
    for step in range(400):
        now += datetime.timedelta(minutes=rng.choice([1, 7, 30, 90, 300]))
        action = rng.random()
        if action < 0.35 or not open_ids:
            user = rng.choice(USERS)
            run_id = book.open(ledger, Run(user=user, server="", groups=rng.choice(GROUPS), charges=(),
                                           profile=rng.choice(PROFILES), choices={}, hardware=None, node_pool=None),
                               now)
            open_ids.append(run_id)
        elif action < 0.6:
            book.ready(ledger, rng.choice(open_ids), now)
        else:
            run_id = open_ids.pop(rng.randrange(len(open_ids)))
            book.close(ledger, run_id, rng.choice(["stopped", "failed", "culled"]), now)
        if step % 25 == 0 and rng.random() < 0.3:  # a hub restarts: a new book from the ledger alone
            book = UsageBook()
            book.follow(ledger.open_runs())
        for budget in LIMITS.budgets:
            for whose in (USERS if budget.per == "user" else budget.groups):
                assert book.hours(ledger, budget, whose, now) == pytest.approx(truth(ledger, budget, whose, now),
                                                                               abs=1e-9), (step, budget.key, whose)


def test_a_check_reads_no_database_once_the_period_is_summed(session):
    ledger = Ledger(session)
    book = UsageBook()
    t = datetime.datetime(2026, 12, 8, 9, 0)
    run_id = book.open(ledger, Run("alice", "", ("students",), (), "gpu", {}, None, None), t)
    book.ready(ledger, run_id, t)
    budget = LIMITS.budgets[0]
    assert book.hours(ledger, budget, "alice", t + datetime.timedelta(hours=2)) == pytest.approx(2)
    statements = []
    from sqlalchemy import event

    def seen(*args):
        statements.append(args[2])

    event.listen(session.get_bind(), "before_cursor_execute", seen)
    try:
        for minutes in range(1, 100):
            book.hours(ledger, budget, "alice", t + datetime.timedelta(hours=2, minutes=minutes))
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", seen)
    assert statements == []


def test_the_runway_of_a_running_server_and_what_the_user_reads():
    budget = LIMITS.budgets[0]  # 20 hours a week per user, 15 minutes' grace
    now = datetime.datetime(2026, 12, 8, 13, 0)
    way = budgets.runway(budget, "alice", used=19.5, running=2, now=now)  # two servers: 15 minutes left
    assert way.runs_out == datetime.datetime(2026, 12, 8, 13, 15)
    assert way.stop_at == datetime.datetime(2026, 12, 8, 13, 30)
    assert way.warn_from() == now
    # warned late (a hub down in between): the whole grace period still comes after the warning
    assert budgets.stop_time(way, warned_at=datetime.datetime(2026, 12, 8, 13, 20)) == \
        datetime.datetime(2026, 12, 8, 13, 35)
    text = budgets.warning(way, "", way.stop_at, now, "A10G GPUs")
    assert text == ("Your 20 hours of A10G GPUs this week run out at 13:15 UTC. Your server will be stopped at "
                    "13:30 UTC (in 30 minutes): save your work before then.")
    over = budgets.runway(budget, "alice", used=20.1, running=1, now=now)
    assert budgets.warning(over, "big", over.stop_at, now, "A10G GPUs").startswith(
        "You have used your 20 hours of A10G GPUs this week. Your server 'big' will be stopped at 13:09 UTC")
    group = budgets.runway(LIMITS.budgets[1], "students", used=10, running=1, now=now)
    assert budgets.stopped(group, "", now, "A10G GPUs") == (
        "Your server was stopped at 13:00 UTC: the 50 hours of A10G GPUs your group students has this month were "
        "used up. The budget starts again on Friday 1 January 2027, 00:00 UTC.")
    assert budgets.warning(group, "", group.stop_at, now, "A10G GPUs").startswith(
        "The 50 hours of A10G GPUs your group students has this month run out at Thursday 10 December, 05:00 UTC.")
