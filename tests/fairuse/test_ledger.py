"""The usage ledger on both databases the chart offers: sqlite (z2jh's default, on the hub's volume) and PostgreSQL
(Debian's server, started here). Created beside JupyterHub's own tables without touching them."""

from __future__ import annotations

import datetime

import pytest
from jupyterhub import orm
from sqlalchemy import delete, inspect, select, text

from jupyterhub_ext.fairuse.ledger import SCHEMA, SCHEMA_VERSION, USAGE, Ledger, Run, migrate
from tests.support.postgres import postgres_server

T0 = datetime.datetime(2026, 12, 7, 9, 0, 0)
H = datetime.timedelta(hours=1)


def run(user="alice", profile="gpu", server=""):
    return Run(user=user, server=server, groups=("students",), charges=(("a10g", user, "students"),),
               profile=profile, choices={"profile": profile, "image": "x"}, hardware="gpu", node_pool="gpu")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'jupyterhub.sqlite'}"
    else:
        with postgres_server() as url:
            yield url


@pytest.fixture
def session(db_url):
    # JupyterHub's own database and session, as the hub makes them at start-up
    make = orm.new_session_factory(db_url, reset=False)
    s = make()
    migrate(s.get_bind())
    yield s
    s.rollback()
    s.execute(delete(USAGE))
    s.commit()
    s.close()


def test_tables_sit_beside_jupyterhubs_and_migrate_is_idempotent(session):
    bind = session.get_bind()
    tables = set(inspect(bind).get_table_names())
    assert {"jupyterhub_ext_usage", "jupyterhub_ext_schema"} <= tables
    assert {"users", "spawners", "alembic_version"} <= tables  # JupyterHub's, untouched
    revision = session.execute(text("SELECT version_num FROM alembic_version")).all()
    migrate(bind)
    migrate(bind)
    with bind.connect() as conn:
        assert conn.execute(select(SCHEMA)).all() == [("usage-ledger", SCHEMA_VERSION)]
    assert session.execute(text("SELECT version_num FROM alembic_version")).all() == revision  # JupyterHub's


def test_a_run_from_admission_to_stop_and_its_hours(session):
    ledger = Ledger(session)
    n = ledger.count()
    rid = ledger.open(run(), at=T0)
    ledger.ready(rid, at=T0 + datetime.timedelta(minutes=2))
    assert [r["id"] for r in ledger.open_runs()] == [rid]
    assert ledger.hours("alice", ["gpu"], since=T0, now=T0 + 2 * H) == pytest.approx(2 - 2 / 60)  # open: to now
    assert ledger.close(rid, "stopped", at=T0 + 3 * H) and not ledger.close(rid, "gone", at=T0 + 4 * H)
    [row] = [r for r in ledger.runs("alice") if r["id"] == rid]
    assert row["ended"] == "stopped" and row["stopped"] == T0 + 3 * H
    assert row["groups"] == ["students"] and row["charges"] == [["a10g", "alice", "students"]]
    assert row["choices"] == {"profile": "gpu", "image": "x"} and row["node_pool"] == "gpu"
    assert ledger.hours("alice", ["gpu"], since=T0 + H, now=T0 + 10 * H) == pytest.approx(2.0)  # clipped
    assert ledger.hours("alice", ["cpu"], since=T0, now=T0 + 10 * H) == 0
    assert ledger.count() == n + 1


def test_a_failed_start_costs_nothing(session):
    ledger = Ledger(session)
    rid = ledger.open(run(user="bob"), at=T0)
    ledger.close(rid, "failed", at=T0 + H)
    assert ledger.hours("bob", ["gpu"], since=T0, now=T0 + 5 * H) == 0.0


def test_unknown_endings_are_refused(session):
    with pytest.raises(ValueError):
        Ledger(session).close(1, "exploded")
