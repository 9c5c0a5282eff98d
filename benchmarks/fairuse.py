#!/usr/bin/env python3
"""Cost of the fair-use check at each start (caps and hour budgets), with a big hub: not a test.

What is timed is what ``ProfilesKubeSpawner.start()`` adds, run by the spawner's own code:
``spawner.take_place(profile)`` (the budget: the user's hours of the period from the usage book in memory, which
the period's first check sums from the ledger, timed apart; the caps: the in-memory places), on a hub database
holding ``--users`` users with a real JupyterHub ``orm.Spawner`` each and ``--rows`` usage-ledger rows spread over
the last weeks, and ``--running`` servers holding places. Side by side, in the same run and interleaved, the same
spawners with no limits configured (the check returns at once). Each start's place is given back after it is
timed, so every iteration meets the same counts.

    python benchmarks/fairuse.py                        # 10,000 users, 1,000,000 rows, sqlite
    python benchmarks/fairuse.py --users 200 --rows 5000 --iterations 50 --json out.json
    python benchmarks/fairuse.py --db-url postgresql+psycopg2://...    # an empty PostgreSQL database
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import random
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import machine, machine_line, ratio, report, summary, table, write_json  # noqa: E402
from jupyterhub import orm  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from traitlets.config import Config  # noqa: E402

from jupyterhub_ext.fairuse.ledger import USAGE, migrate, utcnow  # noqa: E402

PROFILES = ["gpu", "gpu-timeslice", "data-engineering", "elyra"]
LIMITS = {
    "pools": {"a10g": ["gpu", "gpu-timeslice"]},
    "caps": [{"pool": "a10g", "total": 100000, "per_user": 1, "groups": {"students": 90000, "staff": 100000}}],
    "budgets": [{"pool": "a10g", "hours": 100000, "groups": ["students"], "minimum_hours": 1}],
}


def fill(session, users: int, rows: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    now = utcnow()
    names = [f"user{i:05d}" for i in range(users)]
    for name in names:
        user = orm.User(name=name)
        session.add(user)
        session.add(orm.Spawner(user=user, name=""))
    session.commit()
    batch = []
    for i in range(rows):
        ready = now - datetime.timedelta(seconds=rng.randrange(60, 8 * 7 * 86400))
        profile = PROFILES[i % len(PROFILES)]
        batch.append(dict(user=names[i % users], server="", groups=["students"], charges=[], profile=profile,
                          choices={"profile": profile}, hardware="gpu", node_pool="gpu", requested=ready,
                          ready=ready, stopped=ready + datetime.timedelta(seconds=rng.randrange(60, 4 * 3600)),
                          ended="stopped"))
        if len(batch) == 50000:
            session.execute(insert(USAGE), batch)
            session.commit()
            batch = []
    if batch:
        session.execute(insert(USAGE), batch)
        session.commit()


def spawners(session, names: list[str], limits: dict):
    from jupyterhub_ext.spawner import ProfilesKubeSpawner

    config = Config()
    config.ProfilesKubeSpawner.catalog_file = "builtin:eks"
    config.ProfilesKubeSpawner.limits = limits
    out = []
    for name in names:
        row = session.query(orm.User).filter_by(name=name).one()
        user = SimpleNamespace(name=name, id=row.id, groups=[SimpleNamespace(name="students")], admin=False,
                               url=f"/user/{name}/", escaped_name=name)
        s = ProfilesKubeSpawner(config=config, user=user, orm_spawner=row.orm_spawners[""], _mock=True)
        out.append(s)
    return out


def _kubeconfig() -> None:
    import kubernetes_asyncio.config.kube_config as kube_config

    from tests.support.kubeconfig import write_dummy_kubeconfig

    path = str(write_dummy_kubeconfig(tempfile.mkdtemp(prefix="bench-fairuse-kube-")))
    os.environ["KUBECONFIG"] = path
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--running", type=int, default=2000, help="servers holding places during the measurement")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--db-url", default="", help="an empty database (default: a new sqlite file)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    _kubeconfig()  # KubeSpawner loads one even with _mock; no cluster is asked anything

    m = machine()
    results = asyncio.run(measure(args))
    print(f"# fair-use check per start: {args.users} users, {args.rows} ledger rows, {args.running} running, "
          f"{results['database']}")
    print(machine_line(m))
    print(table(["check", "n", "p50 ms", "p95 ms", "max ms"],
                [(k, s["n"], s["p50"], s["p95"], s["max"]) for k, s in results["ms"].items()]))
    print(f"\nthe first check of the period (sums the period from the ledger, once): "
          f"{results['first_check_of_period_ms']:.0f} ms")
    print(f"target: caps and budget p95 < 1 ms: {'met' if results['ms']['caps and budget']['p95'] < 1 else 'MISSED'}")
    write_json(args.json, report("fairuse", args, results, m))


async def measure(args) -> dict:
    """Inside an event loop, as in the hub (KubeSpawner makes its API clients for the running loop)."""
    workdir = tempfile.mkdtemp(prefix="bench-fairuse-")
    url = args.db_url or f"sqlite:///{os.path.join(workdir, 'jupyterhub.sqlite')}"
    session = orm.new_session_factory(url, reset=False)()
    migrate(session.get_bind())
    t0 = time.perf_counter()
    fill(session, args.users, args.rows)
    filled = time.perf_counter() - t0

    rng = random.Random(11)
    names = [f"user{i:05d}" for i in range(args.users)]
    sample = rng.sample(names, min(args.users, max(args.running + 200, 400)))
    holders, probes = sample[:args.running], sample[args.running:]
    with_limits = spawners(session, holders + probes, LIMITS)
    without = spawners(session, probes, {})
    # the first budget check of a period sums the period's closed runs from the ledger, once (fairuse/usage.py);
    # every later check reads memory: timed apart
    start = time.perf_counter()
    with_limits[0].take_place("gpu")
    first_check = (time.perf_counter() - start) * 1000
    for s in with_limits[1:len(holders)]:
        s.take_place("gpu")  # the running servers
    probe_spawners = with_limits[len(holders):]

    times: dict[str, list[float]] = {"caps and budget": [], "no limits": []}
    for i in range(args.iterations):
        for label, pool in (("caps and budget", probe_spawners), ("no limits", without))[::1 if i % 2 else -1]:
            s = pool[i % len(pool)]
            start = time.perf_counter()
            s.take_place("gpu")
            took = time.perf_counter() - start
            times[label].append(took * 1000)
            s.give_back_place()
    results = {"filled_seconds": filled, "first_check_of_period_ms": first_check, "ledger_rows": args.rows, "users": args.users, "running": args.running,
               "database": url.split(":", 1)[0],
               "ms": {k: summary(v) for k, v in times.items()},
               "added_p95_ms": summary(times["caps and budget"])["p95"] - summary(times["no limits"])["p95"],
               "ratio_p50": ratio(summary(times["caps and budget"])["p50"], summary(times["no limits"])["p50"])}
    return results


if __name__ == "__main__":
    main()
