"""A burst of N users spawning at once through a real hub's REST API, ProfilesKubeSpawner (shipped catalog) against
vanilla KubeSpawner (an equivalent profile_list), in alternating rounds on one emulated cluster.

One ``tests.harness.EmulatedCluster`` serves every round: emulated Kubernetes API (with its request log),
scheduler, and the local kubelet, which runs each pod's ``jupyterhub-singleuser`` as the stdlib stand-in
(tests/harness/standin_singleuser.py: it answers JupyterHub's readiness check and the API), so hundreds of
servers fit on a laptop. Each round starts a fresh hub (tests/support/hub_process: real jupyterhub +
configurable-http-proxy) with one configuration:

- ours: ``jupyterhub_ext.spawner.ProfilesKubeSpawner``, ``catalog_file = "builtin:eks"``, the EFS home
  (``home_mode: efs``, the default, on the claim ``efs-home``), then ``jupyterhub_ext.z2jh.setup(c)``.
- vanilla: ``kubespawner.KubeSpawner``, ``profile_list = common.vanilla_profile_list()`` (the same catalog
  translated once: the same image, resources, node selector, labels for the same selection) and the same EFS
  home as z2jh's static storage (``volumes``/``volume_mounts`` with ``subPath: {username}``).

Everything else is the harness' z2jh-like KubeSpawner configuration (kube_hub_config, shared-password login,
no per-user PVC). Both start ``{"profile": "data-engineering"}`` (the default CPU profile; every user may
start it), on pre-made nodes of pool ``cpu`` (so no round waits for node provisioning).
``concurrent_spawn_limit`` is lifted (0) so the whole burst is in flight at once (z2jh's default, 64, would
answer the rest 429); ``start_timeout``/``http_timeout`` are raised so a slow machine shows up as time, not
failures, and ``k8s_api_request_retry_timeout`` is KubeSpawner's (and z2jh's) default, 30 s (the harness
uses 10 s for its fault tests).

Per round: users are created first (not timed), then all N ``POST /hub/api/users/<name>/server`` are sent at
once. Measured per spawn: request -> pod created (the emulated API's store, same clock), request -> server
ready (hub's REST model polled every 0.25 s), and the hub's own "User x took N seconds to start" from its log;
Kubernetes API requests (the emulator's request log, from the burst's start until every server is ready) per
spawn; failures; hub CPU seconds over the burst and its peak RSS (VmHWM). Then every server is stopped and the
pods are waited for, before the next round.

    python benchmarks/spawn_burst.py [--users 300] [--rounds 2] [--json results/spawn_burst.json]

``--compare limits``: what the fair-use limits (docs/fair-use.md) cost the same burst. Both configurations are
"ours" above (ProfilesKubeSpawner, the shipped catalog, the EFS home, z2jh.setup), the burst users are members of
one group (``burst-users``, made through ``POST /hub/api/groups/burst-users`` before the burst, not timed) and the
usage ledger is on (its default) in both, so the ledger's writes (a row per start, its ``ready`` and its close) are
on both sides; the difference measured is the caps and budgets:

- limits: ``c.ProfilesKubeSpawner.limits`` = ``limits_setting(N)``: a cap on ``data-engineering`` (``total: N``,
  ``per_user: 1``, ``groups: {burst-users: N}``) and an hour budget on it (``hours: 1000``, ``period: week``,
  ``per: user``, ``groups: [burst-users]``, ``minimum_hours: 1``), so every start runs the budget check (its
  query of the user's hours in the ledger) and the cap check, and is charged to the group.
- no-limits: the same without ``limits``.

Rounds alternate limits, no-limits, no-limits, limits, ... (ABBA). Per round as above, plus hub CPU ms per spawn
and the requests the spawns make (every request but the reflectors' list/watch, whose count follows how long the
round lasts); the ratios limits/no-limits are of the medians over rounds. Every round is checked: every POST was
answered 201/202 and every server became ready (a refused start is a failure), and the hub's sqlite database
(table ``jupyterhub_ext_usage``, read with sqlite3 after the burst and again after the stops) holds exactly one row
per user, for ``data-engineering``, ready, then closed as ``stopped``; charged to the cap and the group in the
limits rounds, to nothing in the others. A round that fails the check makes the script exit 1 (after the JSON).

    python benchmarks/spawn_burst.py --compare limits --users 100 --rounds 4 [--json results/fairuse_burst.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import re
import signal
import sqlite3
import statistics
import sys
import time
from collections import Counter

import aiohttp

from common import (load_average, machine, machine_line, process_cpu_seconds, process_peak_rss_mib, process_rss_mib,
                    ratio, report, summary, table, vanilla_profile_list, write_json)

NAMESPACE = "bench"
PROFILE = {"profile": "data-engineering"}
TARGET_TIME_RATIO = 1.05
PODS_PER_NODE = 60
_TOOK = re.compile(r"User (\S+) took ([0-9.]+) seconds to start")
_USER = re.compile(r"r[0-9]+[a-z]-[0-9]+")  # a burst user's name: round, the configuration's initial, number
_USER_PREFIX = re.compile(r"r[0-9]+[a-z]-")
GROUP = "burst-users"
# --compare: the two configurations, A and B of the ABBA rounds
COMPARISONS = {"vanilla": ("ours", "vanilla"), "limits": ("limits", "no-limits")}
OURS = ("ours", "limits", "no-limits")  # the configurations run with ProfilesKubeSpawner
REFLECTOR_VERBS = ("list", "watch", "discovery")  # requests of the shared reflectors, not of one spawn


# -- configuration ------------------------------------------------------------------------------------------------

def spawner_class(kind: str) -> str:
    return "jupyterhub_ext.spawner.ProfilesKubeSpawner" if kind in OURS else "kubespawner.KubeSpawner"


def limits_setting(users: int) -> dict:
    """The limits of the "limits" rounds: a cap and an hour budget on the profile the burst starts, each high enough
    that every one of ``users`` (all in GROUP, one server each) is admitted."""
    profile = PROFILE["profile"]
    return {"caps": [{"profile": profile, "total": users, "per_user": 1, "groups": {GROUP: users}}],
            "budgets": [{"profile": profile, "hours": 1000, "period": "week", "per": "user", "groups": [GROUP],
                         "minimum_hours": 1}]}


def hub_config(kind: str, users: int, timeout: int, api_timeout: int) -> str:
    from tests.harness.hub import kube_hub_config

    spawner = spawner_class(kind)
    lines = [kube_hub_config(namespace=NAMESPACE, spawner_class=spawner, storage="none", start_timeout=timeout,
                             http_timeout=timeout, request_retry_timeout=30),
             "c.JupyterHub.concurrent_spawn_limit = 0",
             f"c.KubeSpawner.k8s_api_request_timeout = {api_timeout}",
             "c.JupyterHub.log_level = 'INFO'"]
    if kind in OURS:
        lines += ["c.ProfilesKubeSpawner.catalog_file = 'builtin:eks'",
                  "c.ProfilesKubeSpawner.home_pvc = 'efs-home'"]
        if kind == "limits":
            lines.append(f"c.ProfilesKubeSpawner.limits = {limits_setting(users)!r}")
        lines += ["import jupyterhub_ext.z2jh",
                  "jupyterhub_ext.z2jh.setup(c)"]
    else:
        lines += [f"c.KubeSpawner.profile_list = {vanilla_profile_list()!r}",
                  "c.KubeSpawner.volumes = {'home': {'name': 'home', 'persistentVolumeClaim': "
                  "{'claimName': 'efs-home'}}}",
                  "c.KubeSpawner.volume_mounts = {'home': {'name': 'home', 'mountPath': '/home/jovyan', "
                  "'subPath': '{username}'}}"]
    return "\n".join(lines)


def make_cluster(users: int):
    from tests.harness import DEFAULT_COMMAND_MAP, STANDIN_COMMAND, EmulatedCluster, make_node

    nodes = [make_node(f"cpu-bench-{i}", cpu=2 * PODS_PER_NODE + 4, memory=f"{8 * PODS_PER_NODE + 40}Gi",
                       pods=PODS_PER_NODE + 10, labels={"karpenter.sh/nodepool": "cpu"}, reserve=False)
             for i in range(math.ceil(users / PODS_PER_NODE) + 1)]
    cluster = EmulatedCluster(pools=[], nodes=nodes, namespaces=(NAMESPACE,), backoff_max=2.0,
                              command_map={**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}).start()
    cluster.create("persistentvolumeclaims", {
        "metadata": {"name": "efs-home", "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc",
                 "resources": {"requests": {"storage": "1Ti"}}}}, NAMESPACE)
    cluster.wait_for(lambda: (cluster.find("persistentvolumeclaims", "efs-home", NAMESPACE) or {})
                     .get("status", {}).get("phase") == "Bound", timeout=30, what="efs-home bound")
    return cluster


class PodTimes:
    """When each pod appeared in the emulated API's store (time.monotonic, the clock of this process)."""

    def __init__(self, cluster):
        self.created: dict[str, float] = {}
        self.running: dict[str, float] = {}

        def listener(plural, change):
            if plural != "pods":
                return
            name = change.obj["metadata"]["name"]
            if change.type == "ADDED":
                self.created.setdefault(name, time.monotonic())
            elif change.type == "MODIFIED" and name not in self.running and \
                    change.obj.get("status", {}).get("phase") == "Running":
                self.running[name] = time.monotonic()

        cluster.call(lambda: cluster.store.subscribe(listener))


# -- the usage ledger, read from the hub's sqlite file ---------------------------------------------------------------

def ledger_rows(db_path) -> list[dict]:
    """Every row of the hub's ``jupyterhub_ext_usage`` (read-only; the hub may be writing)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(
            'SELECT id, "user", server, profile, charges, ready, stopped, ended FROM jupyterhub_ext_usage ORDER BY id')]
    except sqlite3.OperationalError as e:  # no table: the ledger was never written
        return [{"error": str(e)}]
    finally:
        conn.close()


def check_ledger(rows: list[dict], names: list[str], kind: str, *, closed: bool) -> list[str]:
    """What is wrong with the ledger after a round: one row per user, for the burst's profile, ready (and, after the
    stops, closed as stopped), charged to the cap and GROUP in a limits round and to nothing otherwise."""
    if rows and "error" in rows[0]:
        return [f"ledger unreadable: {rows[0]['error']}"]
    problems = []
    per_user = Counter(r["user"] for r in rows)
    missing = [n for n in names if per_user[n] == 0]
    doubled = [n for n in names if per_user[n] > 1]
    strangers = sorted(set(per_user) - set(names))
    for what, who in (("no row", missing), ("more than one row", doubled),
                      ("rows of users not in the burst", strangers)):
        if who:
            problems.append(f"{what}: {len(who)} ({', '.join(who[:3])}{', ...' if len(who) > 3 else ''})")
    profile = PROFILE["profile"]
    for r in rows:
        charges = json.loads(r["charges"]) if isinstance(r["charges"], str) else r["charges"]
        expected = [[profile, r["user"], GROUP]] if kind == "limits" else []
        bad = []
        if r["profile"] != profile or r["server"] != "":
            bad.append(f"profile {r['profile']!r} server {r['server']!r}")
        if r["ready"] is None:
            bad.append("never ready")
        if charges != expected:
            bad.append(f"charges {charges!r}, expected {expected!r}")
        if closed and (r["stopped"] is None or r["ended"] != "stopped"):
            bad.append(f"not closed as stopped (stopped {r['stopped']!r}, ended {r['ended']!r})")
        elif not closed and r["stopped"] is not None:
            bad.append(f"closed during the burst ({r['ended']!r})")
        if bad:
            problems.append(f"row {r['id']} of {r['user']}: {'; '.join(bad)}")
    return problems[:20]


# -- one round ------------------------------------------------------------------------------------------------------

async def _names(session: aiohttp.ClientSession, api: str, headers: dict, state: str) -> set[str]:
    """Users whose server is in ``state`` (ready: up; active: pending or up)."""
    names, offset = set(), 0
    h = {**headers, "Accept": "application/jupyterhub-pagination+json"}
    while True:
        async with session.get(f"{api}/users", params={"state": state, "offset": offset, "limit": 200},
                               headers=h) as r:
            body = await r.json()
        items = body.get("items", [])
        names.update(u["name"] for u in items)
        nxt = (body.get("_pagination") or {}).get("next")
        if not nxt or not items:
            return names
        offset = nxt["offset"]


async def burst(hub, names: list[str], timeout: float) -> dict:
    api = hub.process.hub_api_url
    headers = {"Authorization": f"token {hub.process.api_token}"}
    sent, answered, status, ready, failed = {}, {}, {}, {}, {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def spawn(name):
            sent[name] = time.monotonic()
            try:
                async with session.post(f"{api}/users/{name}/server", json=PROFILE, headers=headers) as r:
                    status[name] = r.status
                    await r.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                status[name] = repr(e)
            answered[name] = time.monotonic()

        start = time.monotonic()
        tasks = [asyncio.create_task(spawn(n)) for n in names]
        deadline = start + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            try:
                answered_before = set(answered)  # a spawn answered before this poll and not active now: failed
                now_ready = await _names(session, api, headers, "ready")
                active = await _names(session, api, headers, "active")
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                continue
            t = time.monotonic()
            for n in now_ready:
                ready.setdefault(n, t)
            for n in answered_before:
                if n not in ready and (n not in active or status[n] not in (201, 202)):
                    failed.setdefault(n, t)
            if len(ready) + len(failed) >= len(names) and all(task.done() for task in tasks):
                break
        await asyncio.gather(*tasks, return_exceptions=True)
        end = time.monotonic()
    return {"start": start, "end": end, "sent": sent, "answered": answered, "status": status, "ready": ready,
            "failed": failed}


async def stop_all(hub, names: list[str]) -> None:
    api = hub.process.hub_api_url
    headers = {"Authorization": f"token {hub.process.api_token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50),
                                     timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def stop(name):
            try:
                async with session.delete(f"{api}/users/{name}/server", headers=headers) as r:
                    await r.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
        await asyncio.gather(*(stop(n) for n in names))


def run_round(cluster, pods: PodTimes, kind: str, round_no: int, users: int, timeout: int, api_timeout: int) -> dict:
    from tests.harness.hub import start_kube_hub

    prefix = f"r{round_no}{kind[0]}"
    names = [f"{prefix}-{i:04d}" for i in range(users)]
    hub = start_kube_hub(cluster.kubeconfig, namespace=NAMESPACE, storage="none", name=f"burst-{kind}",
                         spawner_class=spawner_class(kind),
                         config=hub_config(kind, users, timeout, api_timeout), start_timeout=timeout, http_timeout=timeout,
                         request_retry_timeout=30)
    ledger_checked = kind in COMPARISONS["limits"]
    ledger: dict = {}
    try:
        r = hub.api("POST", "/users", json={"usernames": names}, timeout=120)
        if r.status_code != 201:
            raise RuntimeError(f"creating users: {r.status_code} {r.text[:500]}")
        if ledger_checked:  # every burst user in the group the limits name (in both configurations)
            r = hub.api("POST", f"/groups/{GROUP}", json={"users": names}, timeout=120)
            if r.status_code != 201:
                raise RuntimeError(f"creating group {GROUP}: {r.status_code} {r.text[:500]}")
        pid = hub.process.proc.pid
        rss_before = process_rss_mib(pid)
        cpu0 = process_cpu_seconds(pid)
        res = asyncio.run(burst(hub, names, timeout))
        cpu1 = process_cpu_seconds(pid)
        peak_rss = process_peak_rss_mib(pid)
        recs = cluster.requests.records(since=res["start"])
        recs = [rec for rec in recs if rec.start <= res["end"]]
        log = hub.process.log_text()
        took = {m.group(1): float(m.group(2)) for m in _TOOK.finditer(log)}
        spawn_errors = Counter(f"{e}: {_USER.sub('<user>', msg)}"
                               for e, msg in re.findall(r"finish_user_spawn\(\) .*?exception=(\w+)\('([^']*)'", log))
        refused = Counter(_USER.sub("<user>", m) for m in re.findall(r"Refused \S+ a start of '[^']*': (.*)", log))
        pod_sample = cluster.find("pods", f"jupyter-{names[0]}", NAMESPACE)
        db_path = hub.process.workdir / "jupyterhub.sqlite"
        if ledger_checked:
            rows = ledger_rows(db_path)
            ledger["after_burst"] = {"rows": len(rows), "problems": check_ledger(rows, names, kind, closed=False)}

        t_stop = time.monotonic()
        asyncio.run(stop_all(hub, names))
        orphans: list[str] = []
        try:
            cluster.wait_for(lambda: not cluster.list("pods", NAMESPACE), timeout=120, interval=0.5,
                             what="every pod gone")
        except TimeoutError:
            # Pods no server owns any more: under overload a create the hub gave up on (timeout, then 409 and a
            # retry) can still leave a pod behind after the spawn failed. Counted, then removed for the next round.
            orphans = sorted(p["metadata"]["name"] for p in cluster.list("pods", NAMESPACE))
            for name in orphans:
                try:
                    cluster.delete("pods", name, NAMESPACE, grace_period_seconds=0)
                except Exception:
                    pass
            cluster.wait_for(lambda: not cluster.list("pods", NAMESPACE), timeout=120, interval=0.5,
                             what="orphan pods gone")
        stop_seconds = time.monotonic() - t_stop
        if ledger_checked:
            # a run is closed when its spawner's stop returns, a moment after its pod is gone
            deadline = time.monotonic() + 60
            while True:
                rows = ledger_rows(db_path)
                problems = check_ledger(rows, names, kind, closed=True)
                if not problems or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            ledger["after_stop"] = {"rows": len(rows), "problems": problems}
            if any(phase["problems"] for phase in ledger.values()):
                hub.process.keep_log(f"spawn_burst round {round_no} {kind}: the ledger check failed")
    finally:
        hub.process.stop(timeout=30)

    to_pod, to_ready, hub_took, failures = [], [], [], []
    for n in names:
        t0 = res["sent"][n]
        created = pods.created.get(f"jupyter-{n}")
        if created is not None:
            to_pod.append(created - t0)
        if n in res["ready"]:
            to_ready.append(res["ready"][n] - t0)
        else:
            failures.append((n, res["status"].get(n)))
        if n in took:
            hub_took.append(took[n])
    answered = [res["answered"][n] - res["sent"][n] for n in names if n in res["answered"]]
    histogram = Counter(f"{rec.verb} {rec.resource}{'/' + rec.subresource if rec.subresource else ''} {rec.status}"
                        for rec in recs)
    return {
        "kind": kind, "round": round_no, "users": users,
        "burst_seconds": res["end"] - res["start"],
        "post_answer_s": summary(answered),
        "request_to_pod_created_s": summary(to_pod),
        "request_to_ready_s": summary(to_ready),
        # every request, a failed one counted as never ready (nearest rank; None where it falls on a failure):
        # the percentiles above drop failed spawns, which flatters a spawner with many of them
        "request_to_ready_all_s": {"p50": rank_or_none(to_ready, users, 50), "p95": rank_or_none(to_ready, users, 95)},
        "hub_logged_spawn_s": summary(hub_took),
        "k8s_requests": len(recs),
        "k8s_requests_per_spawn": len(recs) / users,
        "k8s_requests_by_kind": dict(sorted(histogram.items())),
        # what the spawns themselves asked (creates, gets, deletes...): all but the shared reflectors' list/watch
        "k8s_spawn_requests_per_spawn": sum(1 for rec in recs if rec.verb not in REFLECTOR_VERBS) / users,
        "failures": len(failures),
        "failed_examples": failures[:5],
        "hub_spawn_errors": dict(spawn_errors),
        "hub_refused_starts": dict(refused),
        "post_status": dict(Counter(str(s) for s in res["status"].values())),
        "hub_cpu_seconds": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        "hub_cpu_ms_per_spawn": (cpu1 - cpu0) / users * 1000 if cpu0 is not None and cpu1 is not None else None,
        "hub_rss_before_mib": rss_before,
        "hub_peak_rss_mib": peak_rss,
        "stop_all_seconds": stop_seconds,
        "orphan_pods_after_stop": len(orphans),
        "orphan_pod_examples": orphans[:5],
        **({"ledger": ledger} if ledger_checked else {}),
        "pod_sample": pod_sample,
    }


def _no_slower(ours: float | None, vanilla: float | None) -> bool:
    """ours <= 1.05 x vanilla, where None means never (some spawns failed at that rank)."""
    if ours is None:
        return False
    return vanilla is None or ours <= TARGET_TIME_RATIO * vanilla


def rank_or_none(values: list[float], total: int, q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``total`` requests of which only ``values`` finished; None when
    that rank falls among the ones that never did."""
    k = max(1, math.ceil(q / 100 * total))
    data = sorted(values)
    return data[k - 1] if k <= len(data) else None


def pod_differences(a: dict | None, b: dict | None, labels: tuple[str, str] = ("ours", "vanilla")) -> list[str]:
    """Paths where two pods' specs differ (names of the user aside): how equivalent the configurations are."""
    if not a or not b:
        return ["(no pod to compare)"]

    def norm(pod):
        spec = dict(pod["spec"])
        spec.pop("nodeName", None)
        containers = []
        for c in spec.get("containers", []):
            c = dict(c)  # tokens and URLs of the round's own hub differ by construction
            c["env"] = [{**e, "value": "<this hub's>"} if "value" in e and e["name"].startswith(("JUPYTERHUB_", "JPY_"))
                        else e for e in c.get("env", [])]
            containers.append(c)
        spec["containers"] = containers
        return {"spec": spec, "labels": pod["metadata"].get("labels", {})}

    out: list[str] = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (xi, yi) in enumerate(zip(x, y)):
                walk(xi, yi, f"{path}[{i}]")
        elif x != y:
            if isinstance(x, str) and isinstance(y, str) and _USER_PREFIX.sub("", x) == _USER_PREFIX.sub("", y):
                return  # the user's name
            out.append(f"{path}: {labels[0]}={x!r} {labels[1]}={y!r}")

    walk(norm(a), norm(b), "pod")
    return out


def aggregate(rounds: list[dict], kind: str) -> dict:
    mine = [r for r in rounds if r["kind"] == kind]

    def pooled(key, stat):
        vals = [r[key][stat] for r in mine if r[key][stat] is not None]
        return sum(vals) / len(vals) if vals else None

    def pooled_all(stat):  # None (never ready) in any round makes the mean "never" too
        vals = [r["request_to_ready_all_s"][stat] for r in mine]
        return None if not vals or any(v is None for v in vals) else sum(vals) / len(vals)

    return {
        "rounds": len(mine),
        "request_to_pod_created_p50_s": pooled("request_to_pod_created_s", "p50"),
        "request_to_pod_created_p95_s": pooled("request_to_pod_created_s", "p95"),
        "request_to_ready_p50_s": pooled("request_to_ready_s", "p50"),
        "request_to_ready_p95_s": pooled("request_to_ready_s", "p95"),
        "request_to_ready_all_p50_s": pooled_all("p50"),
        "request_to_ready_all_p95_s": pooled_all("p95"),
        "hub_logged_spawn_p50_s": pooled("hub_logged_spawn_s", "p50"),
        "hub_logged_spawn_p95_s": pooled("hub_logged_spawn_s", "p95"),
        "k8s_requests_per_spawn": sum(r["k8s_requests_per_spawn"] for r in mine) / len(mine),
        "failures": sum(r["failures"] for r in mine),
        "hub_cpu_seconds": sum(r["hub_cpu_seconds"] or 0 for r in mine) / len(mine),
        "hub_cpu_ms_per_spawn": sum((r["hub_cpu_seconds"] or 0) / r["users"] for r in mine) / len(mine) * 1000,
        "hub_peak_rss_mib": max(r["hub_peak_rss_mib"] or 0 for r in mine),
        # medians over rounds (what --compare limits compares)
        "median": {key: _median([r[key] for r in mine]) for key in
                   ("hub_cpu_ms_per_spawn", "k8s_requests_per_spawn", "k8s_spawn_requests_per_spawn",
                    "hub_cpu_seconds", "burst_seconds")}
                  | {f"{key}_{stat}": _median([r[key][stat] for r in mine]) for key in
                     ("request_to_pod_created_s", "request_to_ready_s", "request_to_ready_all_s", "hub_logged_spawn_s")
                     for stat in ("p50", "p95")},
    }


def _median(values: list) -> float | None:
    """The median; None when there is none, or when any value is None (a percentile that fell on a failure)."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(values)


# -- hub-side CPU of one spawn, without the hub (--spawner-only) ---------------------------------------------------

async def _spawner_cpu(iterations: int, profile: bool) -> dict:
    """Thread CPU ms of what the spawner does for one spawn before it talks to Kubernetes: load_user_options +
    get_pod_manifest, on mock spawners built from the same settings as the burst's hubs (new spawner per spawn,
    as the hub makes one per user). Isolates our share of the hub's CPU from the hub's own work."""
    import cProfile
    import io
    import pstats
    from types import SimpleNamespace

    from traitlets.config import Config

    from jupyterhub_ext.spawner import ProfilesKubeSpawner
    from kubespawner import KubeSpawner

    base = {"namespace": NAMESPACE, "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
            "cmd": ["jupyterhub-singleuser"], "port": 8888, "uid": 1000, "fs_gid": 100, "mem_guarantee": "1G",
            "events_enabled": True, "common_labels": {"app": "jupyterhub", "heritage": "jupyterhub", "release": "e2e"}}
    configs = {}
    c = Config()
    for k, v in base.items():
        setattr(c.KubeSpawner, k, v)
    c.ProfilesKubeSpawner.catalog_file = "builtin:eks"
    c.ProfilesKubeSpawner.home_pvc = "efs-home"
    ProfilesKubeSpawner.check_config(c)
    configs["ours"] = (ProfilesKubeSpawner, c)
    v = Config()
    for k, val in base.items():
        setattr(v.KubeSpawner, k, val)
    v.KubeSpawner.profile_list = vanilla_profile_list()
    v.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "efs-home"}}}
    v.KubeSpawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan", "subPath": "{username}"}}
    configs["vanilla"] = (KubeSpawner, v)

    out: dict = {}
    profiles_text = {}
    for kind in ("ours", "vanilla", "ours", "vanilla"):
        cls, config = configs[kind]
        gc.collect()  # a full collection falls inside a round less often (it costs ~140 ms, in one sample)
        prof = cProfile.Profile() if profile else None
        samples = []
        for i in range(iterations):
            spawner = cls(config=config, _mock=True)
            spawner.user.name = f"cpu-{kind}-{i}"
            spawner.user.groups = []
            spawner.user.admin = False
            spawner.user_options = dict(PROFILE)
            c0 = time.thread_time()
            if prof:
                prof.enable()
            await spawner.load_user_options()
            await spawner.get_pod_manifest()
            if prof:
                prof.disable()
            samples.append((time.thread_time() - c0) * 1000)
        out.setdefault(kind, []).extend(samples)
        if prof:
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            profiles_text[kind] = buf.getvalue()
    return {"cpu_ms": {k: summary(vals) for k, vals in out.items()}, "profiles": profiles_text}


def spawner_only(args) -> None:
    from form import _kubeconfig

    _kubeconfig()  # the spawners are built with a client; nothing is ever sent
    m = machine()
    results = asyncio.run(_spawner_cpu(args.iterations, args.profile))
    cpu = results["cpu_ms"]
    print(f"# spawner CPU per spawn (load_user_options + get_pod_manifest), {args.iterations} x 2 per spawner")
    print(machine_line(m) + "\n")
    print(table(["spawner", "n", "CPU p50 ms", "CPU p95 ms", "mean ms"],
                [(k, s["n"], s["p50"], s["p95"], s["mean"]) for k, s in cpu.items()]))
    print(f"\nours/vanilla (mean): {ratio(cpu['ours']['mean'], cpu['vanilla']['mean']):.2f}")
    for kind, text in results["profiles"].items():
        print(f"\n## cProfile, {kind} (cumulative)\n" + "\n".join(text.splitlines()[:45]))
    write_json(args.json, report("spawn_burst --spawner-only", args, results, m))


# -- --compare limits: the report ----------------------------------------------------------------------------------

def round_problems(r: dict) -> list[str]:
    """Why a round does not measure what it claims: a spawn refused, failed or never ready, or a wrong ledger."""
    out = []
    if r["failures"]:
        out.append(f"{r['failures']} spawns failed or never became ready ({r['failed_examples'][:2]})")
    bad_status = {s: n for s, n in r["post_status"].items() if s not in ("201", "202")}
    if bad_status:
        out.append(f"POST answers {bad_status}")
    if r["hub_refused_starts"]:
        out.append(f"refused starts {r['hub_refused_starts']}")
    for phase, got in (r.get("ledger") or {}).items():
        out += [f"ledger {phase.replace('_', ' ')}: {p}" for p in got["problems"]]
    return out


def _ledger_wrong(r: dict) -> bool:
    return any(phase["problems"] for phase in r["ledger"].values())


def report_limits(args, m: dict, order: list[str], rounds: list[dict], samples: dict) -> bool:
    """Print and write the limits/no-limits comparison; False when a round failed its checks."""
    a, b = COMPARISONS["limits"]
    agg = {kind: aggregate(rounds, kind) for kind in (a, b)}
    med = {kind: agg[kind]["median"] for kind in (a, b)}
    keys = ("request_to_pod_created_s_p50", "request_to_pod_created_s_p95", "request_to_ready_s_p50",
            "request_to_ready_s_p95", "request_to_ready_all_s_p50", "request_to_ready_all_s_p95",
            "hub_logged_spawn_s_p50", "hub_logged_spawn_s_p95", "k8s_requests_per_spawn",
            "k8s_spawn_requests_per_spawn", "hub_cpu_seconds", "hub_cpu_ms_per_spawn", "burst_seconds")
    ratios = {k: ratio(med[a][k], med[b][k]) for k in keys}
    # each ABBA pair of adjacent rounds holds one round of each: the ratios within a pair, where drift is least
    paired = []
    for j in range(0, len(rounds) - 1, 2):
        x, y = rounds[j], rounds[j + 1]
        lim, nol = (x, y) if x["kind"] == a else (y, x)
        paired.append({"rounds": [x["round"], y["round"]],
                       "hub_cpu_ms_per_spawn": ratio(lim["hub_cpu_ms_per_spawn"], nol["hub_cpu_ms_per_spawn"]),
                       "k8s_requests_per_spawn": ratio(lim["k8s_requests_per_spawn"], nol["k8s_requests_per_spawn"]),
                       "hub_logged_spawn_p50": ratio(lim["hub_logged_spawn_s"]["p50"],
                                                     nol["hub_logged_spawn_s"]["p50"])})
    paired_median = {k: _median([p[k] for p in paired]) for k in
                     ("hub_cpu_ms_per_spawn", "k8s_requests_per_spawn", "hub_logged_spawn_p50")}
    extra = {k: med[a][k] - med[b][k] for k in ("k8s_requests_per_spawn", "k8s_spawn_requests_per_spawn")}
    by_kind = {}
    for kind in (a, b):
        total = Counter()
        for r in rounds:
            if r["kind"] == kind:
                total.update(r["k8s_requests_by_kind"])
        spawns = sum(r["users"] for r in rounds if r["kind"] == kind)
        by_kind[kind] = {k: n / spawns for k, n in sorted(total.items())}
    problems = {f"round {r['round']} {r['kind']}": round_problems(r) for r in rounds}
    problems = {k: v for k, v in problems.items() if v}
    verified = not problems
    targets = {
        # the bar: hub-side time per spawn within 5 %; the hub's CPU per spawn is that cost on a busy hub,
        # the hub-logged spawn time (its "took N seconds") what a user waits for it
        "hub_cpu_per_spawn_ratio_le_1.05": _no_slower(med[a]["hub_cpu_ms_per_spawn"], med[b]["hub_cpu_ms_per_spawn"]),
        "hub_logged_spawn_time_ratio_le_1.05": all(_no_slower(med[a][k], med[b][k]) for k in
                                                   ("hub_logged_spawn_s_p50", "hub_logged_spawn_s_p95")),
        # no extra Kubernetes API request per spawn: the spawns' own requests (reflectors' list/watch aside)
        "no_extra_k8s_request_per_spawn":
            med[a]["k8s_spawn_requests_per_spawn"] <= med[b]["k8s_spawn_requests_per_spawn"],
        "every_spawn_admitted_ready_and_in_the_ledger": verified,
    }
    configurations = {
        a: "ProfilesKubeSpawner, catalog builtin:eks, EFS home, z2jh.setup; usage ledger on (default); users in group "
           f"{GROUP}; limits = {json.dumps(limits_setting(args.users))}",
        b: f"the same (usage ledger on, users in group {GROUP}) without limits",
    }
    results = {"compare": "limits", "configurations": configurations, "order": order, "aggregate": agg,
               "ratios_limits_over_no_limits_of_medians": ratios, "paired_ratios": paired,
               "paired_ratios_median": paired_median, "extra_requests_per_spawn": extra,
               "k8s_requests_by_kind_per_spawn": by_kind, "targets": targets, "verified": verified,
               "problems": problems,
               "pod_differences": pod_differences(samples.get(a), samples.get(b), (a, b)), "rounds": rounds}

    print(f"\n# spawn burst, fair-use limits: {args.users} users x {args.rounds} rounds per configuration, "
          f"order {' '.join(order)}")
    print(machine_line(m) + f"; load at end {load_average()}\n")
    for kind, text in configurations.items():
        print(f"- {kind}: {text}")
    print()
    rows = []
    for label, key in (("request -> pod created p50 (s)", "request_to_pod_created_s_p50"),
                       ("request -> pod created p95 (s)", "request_to_pod_created_s_p95"),
                       ("request -> ready p50 (s)", "request_to_ready_s_p50"),
                       ("request -> ready p95 (s)", "request_to_ready_s_p95"),
                       ("hub-logged spawn p50 (s)", "hub_logged_spawn_s_p50"),
                       ("hub-logged spawn p95 (s)", "hub_logged_spawn_s_p95"),
                       ("k8s API requests per spawn", "k8s_requests_per_spawn"),
                       ("  of which the spawns' own", "k8s_spawn_requests_per_spawn"),
                       ("hub CPU s per round", "hub_cpu_seconds"),
                       ("hub CPU ms per spawn", "hub_cpu_ms_per_spawn")):
        rows.append((label, med[a][key], med[b][key], ratios[key]))
    rows.append(("failures (all rounds)", agg[a]["failures"], agg[b]["failures"], None))
    rows.append(("hub peak RSS (MiB, max)", agg[a]["hub_peak_rss_mib"], agg[b]["hub_peak_rss_mib"],
                 ratio(agg[a]["hub_peak_rss_mib"], agg[b]["hub_peak_rss_mib"])))
    print(table(["median of rounds", a, b, f"{a}/{b}"], rows))
    print("\nper round:")
    print(table(["round", "config", "burst s", "pod p50", "pod p95", "ready p50", "ready p95", "req/spawn", "failed",
                 "hub CPU s", "CPU ms/spawn", "peak RSS MiB", "ledger rows"],
                [(r["round"], r["kind"], r["burst_seconds"], r["request_to_pod_created_s"]["p50"],
                  r["request_to_pod_created_s"]["p95"], r["request_to_ready_s"]["p50"],
                  r["request_to_ready_s"]["p95"], r["k8s_requests_per_spawn"], r["failures"], r["hub_cpu_seconds"],
                  r["hub_cpu_ms_per_spawn"], r["hub_peak_rss_mib"],
                  f"{r['ledger']['after_stop']['rows']}, {'WRONG' if _ledger_wrong(r) else 'ok'}")
                 for r in rounds]))
    print("\npaired rounds (limits/no-limits within each ABBA pair):")
    print(table(["rounds", "hub CPU/spawn", "req/spawn", "hub-logged p50"],
                [("+".join(map(str, p["rounds"])), p["hub_cpu_ms_per_spawn"], p["k8s_requests_per_spawn"],
                  p["hub_logged_spawn_p50"]) for p in paired]
                + [("median", paired_median["hub_cpu_ms_per_spawn"], paired_median["k8s_requests_per_spawn"],
                    paired_median["hub_logged_spawn_p50"])]))
    print("\nAPI requests per spawn by kind (all rounds):")
    for kind in (a, b):
        print(f"  {kind}: " + ", ".join(f"{k} {v:.3f}" for k, v in by_kind[kind].items()))
    print(f"\nextra requests per spawn (limits - no-limits, medians): {extra['k8s_requests_per_spawn']:+.3f} in all, "
          f"{extra['k8s_spawn_requests_per_spawn']:+.3f} of the spawns' own")
    print(f"pod differences ({a} vs {b}): " + ("; ".join(results["pod_differences"]) or "none"))
    if verified:
        print("checks: every POST answered 201/202, every server ready, no refused start; the ledger had one row per "
              "user, ready, then closed as stopped (charged to the cap and the group in the limits rounds)")
    else:
        print("\nCHECKS FAILED, these rounds do not measure what they claim:")
        for where, what in problems.items():
            for x in what:
                print(f"  {where}: {x}")
    print("\ntargets: " + ", ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in targets.items()))
    write_json(args.json, report("spawn_burst --compare limits", args, results, m))
    return verified


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=300, help="concurrent users per round")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of each configuration; order A, B, B, A, ... (ABBA)")
    ap.add_argument("--compare", choices=sorted(COMPARISONS), default="vanilla",
                    help="vanilla: ours against vanilla KubeSpawner (the default); limits: ours with the fair-use "
                         "limits against ours without them")
    ap.add_argument("--timeout", type=int, default=900, help="seconds a round may take to get every server ready")
    ap.add_argument("--api-timeout", type=int, default=3,
                    help="KubeSpawner.k8s_api_request_timeout (its default: 3 s): the hub gives up on an API request "
                         "its own busy event loop has not read in this time, and retries")
    ap.add_argument("--spawner-only", action="store_true",
                    help="no hub: CPU of the spawner's own work per spawn, ours vs vanilla (see _spawner_cpu)")
    ap.add_argument("--iterations", type=int, default=200, help="with --spawner-only: spawns per spawner")
    ap.add_argument("--profile", action="store_true", help="with --spawner-only: print cProfile of each")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    args = ap.parse_args()
    if args.spawner_only:
        spawner_only(args)
        return

    # SIGTERM (a CI timeout, kill) ends like Ctrl-C: the hub and every pod process are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    m = machine()
    a, b = COMPARISONS[args.compare]
    order = []
    for i in range(args.rounds):
        order += [a, b] if i % 2 == 0 else [b, a]
    cluster = make_cluster(args.users)
    try:
        pods = PodTimes(cluster)
        rounds = []
        for i, kind in enumerate(order):
            r = run_round(cluster, pods, kind, i, args.users, args.timeout, args.api_timeout)
            checked = ""
            if "ledger" in r:
                problems = [x for phase in r["ledger"].values() for x in phase["problems"]]
                checked = f", ledger {'ok' if not problems else 'WRONG: ' + problems[0]}"
            print(f"round {i} {kind}: {args.users} spawns in {r['burst_seconds']:.1f} s, {r['failures']} failed, "
                  f"{r['k8s_requests_per_spawn']:.2f} API requests/spawn, hub CPU {r['hub_cpu_ms_per_spawn'] or 0:.1f} "
                  f"ms/spawn{checked}, load {os.getloadavg()[0]:.1f}", flush=True)
            rounds.append(r)
    finally:
        cluster.stop()

    samples = {r["kind"]: r.pop("pod_sample") for r in rounds}
    for r in rounds:
        r.pop("pod_sample", None)
    if args.compare == "limits":
        if not report_limits(args, m, order, rounds, samples):
            sys.exit(1)
        return
    agg = {kind: aggregate(rounds, kind) for kind in ("ours", "vanilla")}
    o, v = agg["ours"], agg["vanilla"]
    ratios = {k: ratio(o[k], v[k]) for k in ("request_to_pod_created_p50_s", "request_to_pod_created_p95_s",
                                             "request_to_ready_p50_s", "request_to_ready_p95_s",
                                             "request_to_ready_all_p50_s", "request_to_ready_all_p95_s",
                                             "hub_logged_spawn_p50_s", "hub_logged_spawn_p95_s",
                                             "k8s_requests_per_spawn", "hub_cpu_seconds")}
    targets = {
        # hub-side time to a ready server over every request (a failed spawn counts as never ready), p50 and p95
        "hub_time_ratio_le_1.05": all(_no_slower(o[k], v[k]) for k in
                                      ("request_to_ready_all_p50_s", "request_to_ready_all_p95_s")),
        "requests_per_spawn_le_vanilla": o["k8s_requests_per_spawn"] <= v["k8s_requests_per_spawn"],
        "zero_failures": o["failures"] == 0,  # ours; vanilla's are reported beside it
    }
    results = {"order": order, "aggregate": agg, "ratios_ours_over_vanilla": ratios, "targets": targets,
               "pod_differences": pod_differences(samples.get("ours"), samples.get("vanilla")), "rounds": rounds}

    print(f"\n# spawn burst: {args.users} users x {args.rounds} rounds per spawner, order {' '.join(order)}")
    print(machine_line(m) + "\n")
    rows = []
    for label, key, scale in (("request -> pod created p50 (s)", "request_to_pod_created_p50_s", 1),
                              ("request -> pod created p95 (s)", "request_to_pod_created_p95_s", 1),
                              ("request -> ready p50 (s)", "request_to_ready_p50_s", 1),
                              ("request -> ready p95 (s)", "request_to_ready_p95_s", 1),
                              ("ready p50, all requests (s)", "request_to_ready_all_p50_s", 1),
                              ("ready p95, all requests (s)", "request_to_ready_all_p95_s", 1),
                              ("hub-logged spawn p50 (s)", "hub_logged_spawn_p50_s", 1),
                              ("hub-logged spawn p95 (s)", "hub_logged_spawn_p95_s", 1),
                              ("k8s API requests per spawn", "k8s_requests_per_spawn", 1),
                              ("failures", "failures", 1),
                              ("hub CPU s per round", "hub_cpu_seconds", 1),
                              ("hub CPU ms per spawn", "hub_cpu_ms_per_spawn", 1),
                              ("hub peak RSS (MiB)", "hub_peak_rss_mib", 1)):
        rows.append((label, o[key], v[key], ratios.get(key)))
    print(table(["per spawner (mean of rounds)", "ours", "vanilla", "ours/vanilla"], rows))
    print("\nper round:")
    print(table(["round", "spawner", "burst s", "pod p50", "pod p95", "ready p50", "ready p95", "req/spawn",
                 "failed", "hub CPU s", "peak RSS MiB"],
                [(r["round"], r["kind"], r["burst_seconds"], r["request_to_pod_created_s"]["p50"],
                  r["request_to_pod_created_s"]["p95"], r["request_to_ready_s"]["p50"],
                  r["request_to_ready_s"]["p95"], r["k8s_requests_per_spawn"], r["failures"], r["hub_cpu_seconds"],
                  r["hub_peak_rss_mib"]) for r in rounds]))
    print("\npod differences (ours vs vanilla):")
    for d in results["pod_differences"] or ["(none)"]:
        print("  " + d)
    print("\ntargets: " + ", ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in targets.items()))
    write_json(args.json, report("spawn_burst", args, results, m))


if __name__ == "__main__":
    main()
