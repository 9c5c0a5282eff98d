"""The usage ledger: one row per server run, in the hub's own database beside JupyterHub's tables.

A run is written when its start is admitted (``requested``), marked ``ready`` when the server answers, and closed
(``stopped``, ``ended``) when it stops, fails or is found gone. Hours are ``stopped - ready`` (a run still open
counts up to now), so a server that kept running while the hub was down is charged for that time: its row stays
open, and the hub's first poll after the restart closes it, or finds it still running.

Our tables have their own metadata and a version row (``jupyterhub_ext_schema``): created and migrated at
start-up with ``CREATE TABLE IF NOT EXISTS``, never touching JupyterHub's schema or its alembic revision. The
writes go through JupyterHub's own session (the spawner's), so sqlite sees one writer and PostgreSQL one
connection. Times are naive UTC, as JupyterHub's own columns.

The reports of the observability issue read this table: columns are plain (no pickles), indexed by user, profile
and time.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, and_, func, insert, or_, select, update

SCHEMA_VERSION = 1
COMPONENT = "usage-ledger"
ENDINGS = ("stopped", "failed", "gone", "culled", "budget")

METADATA = MetaData()
SCHEMA = Table(
    "jupyterhub_ext_schema", METADATA,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)
USAGE = Table(
    "jupyterhub_ext_usage", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(255), nullable=False, index=True),
    Column("server", String(255), nullable=False, default=""),
    Column("groups", JSON, nullable=False),            # the user's groups when the start was admitted
    Column("charges", JSON, nullable=False),           # [[cap, user, group of record]] (fairuse.rules.Charge)
    Column("profile", String(255), nullable=True, index=True),
    Column("choices", JSON, nullable=False),           # the user_options, as requested
    Column("hardware", String(64), nullable=True),     # the catalog's hardware kind
    Column("node_pool", String(255), nullable=True),
    Column("requested", DateTime, nullable=False, index=True),
    Column("ready", DateTime, nullable=True),
    Column("stopped", DateTime, nullable=True, index=True),
    Column("ended", String(32), nullable=True),        # one of ENDINGS
)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Run:
    """What a run is when it is admitted."""

    user: str
    server: str
    groups: tuple[str, ...]
    charges: tuple[tuple[str, str, str | None], ...]
    profile: str | None
    choices: Mapping[str, Any]
    hardware: str | None
    node_pool: str | None


def migrate(bind) -> None:
    """Create our tables where missing and record the schema version (a newer one is left as it is)."""
    METADATA.create_all(bind, checkfirst=True)
    with bind.begin() as conn:
        got = conn.execute(select(SCHEMA.c.version).where(SCHEMA.c.component == COMPONENT)).scalar()
        if got is None:
            conn.execute(insert(SCHEMA).values(component=COMPONENT, version=SCHEMA_VERSION))
        elif got > SCHEMA_VERSION:
            raise RuntimeError(f"the usage ledger's schema is version {got}, newer than this jupyterhub_ext "
                               f"({SCHEMA_VERSION}): upgrade jupyterhub_ext rather than run an older one on it")


class Ledger:
    """The ledger's reads and writes, on a SQLAlchemy session (JupyterHub's)."""

    def __init__(self, session) -> None:
        self.session = session

    def open(self, run: Run, at: datetime.datetime | None = None) -> int:
        result = self.session.execute(insert(USAGE).values(
            user=run.user, server=run.server, groups=list(run.groups), charges=[list(c) for c in run.charges],
            profile=run.profile, choices=dict(run.choices), hardware=run.hardware, node_pool=run.node_pool,
            requested=at or utcnow()))
        self.session.commit()
        return int(result.inserted_primary_key[0])

    def ready(self, run_id: int, at: datetime.datetime | None = None) -> None:
        self.session.execute(update(USAGE).where(USAGE.c.id == run_id, USAGE.c.ready.is_(None))
                             .values(ready=at or utcnow()))
        self.session.commit()

    def close(self, run_id: int, ended: str, at: datetime.datetime | None = None) -> bool:
        """Close an open run; False if it was closed already (a stop after a failed start, say)."""
        if ended not in ENDINGS:
            raise ValueError(ended)
        result = self.session.execute(update(USAGE).where(USAGE.c.id == run_id, USAGE.c.stopped.is_(None))
                                      .values(stopped=at or utcnow(), ended=ended))
        self.session.commit()
        return result.rowcount == 1

    def open_runs(self) -> list[dict]:
        rows = self.session.execute(select(USAGE).where(USAGE.c.stopped.is_(None))).mappings().all()
        return [dict(r) for r in rows]

    def runs(self, user: str | None = None) -> list[dict]:
        query = select(USAGE).order_by(USAGE.c.id)
        if user is not None:
            query = query.where(USAGE.c.user == user)
        return [dict(r) for r in self.session.execute(query).mappings().all()]

    def hours(self, user: str | None, profiles: Iterable[str], since: datetime.datetime,
              now: datetime.datetime | None = None, *, group: str | None = None) -> float:
        """Server-hours on ``profiles`` since ``since`` (runs overlapping the period, clipped to it) of ``user``,
        or of the runs started by members of ``group`` (its members at each start)."""
        now = now or utcnow()
        profiles = list(profiles)
        where = [USAGE.c.profile.in_(profiles), USAGE.c.ready.isnot(None),
                 or_(USAGE.c.stopped.is_(None), USAGE.c.stopped > since), USAGE.c.ready < now]
        if user is not None:
            where.append(USAGE.c.user == user)
        rows = self.session.execute(select(USAGE.c.ready, USAGE.c.stopped, USAGE.c.groups).where(and_(*where))).all()
        total = 0.0
        for ready, stopped, groups in rows:
            if group is not None and group not in (groups or ()):
                continue
            start, end = max(ready, since), min(stopped or now, now)
            if end > start:
                total += (end - start).total_seconds()
        return total / 3600.0

    def closed_runs(self, profiles: Iterable[str], since: datetime.datetime):
        """(user, groups, ready, stopped) of the closed runs on ``profiles`` that were running after ``since``."""
        return self.session.execute(
            select(USAGE.c.user, USAGE.c.groups, USAGE.c.ready, USAGE.c.stopped)
            .where(USAGE.c.profile.in_(list(profiles)), USAGE.c.ready.isnot(None), USAGE.c.stopped.isnot(None),
                   USAGE.c.stopped > since)).all()

    def count(self) -> int:
        return int(self.session.execute(select(func.count()).select_from(USAGE)).scalar())
