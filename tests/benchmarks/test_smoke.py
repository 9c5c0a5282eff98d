"""The benchmark scripts run end to end with tiny sizes and write well-formed JSON.

Nothing here is timed: numbers belong in docs/benchmarks.md, not in assertions. The scripts all run at the
same time (each is mostly waiting on its own hub or cluster), to keep this module well under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNS = {  # name: (script, arguments)
    "spawn_burst": ("spawn_burst", ["--users", "3", "--rounds", "1", "--timeout", "120"]),
    "spawn_burst_limits": ("spawn_burst", ["--compare", "limits", "--users", "4", "--rounds", "2", "--timeout", "120"]),
    "spawner_only": ("spawn_burst", ["--spawner-only", "--iterations", "5"]),
    "form": ("form", ["--iterations", "20"]),
    "startup": ("startup", ["--runs", "1", "--no-warm-up"]),
    "seeder_delivery": ("seeder", ["--delivery", "--files", "20", "--size", "200K", "--rounds", "1"]),
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KUBECONFIG", None)  # the scripts make their own (emulated cluster or a dummy one)
    procs = {}
    for name, (script, args) in RUNS.items():
        procs[name] = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args, "--json", str(out / f"{name}.json")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for name, proc in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        path = out / f"{name}.json"
        results[name] = (proc.returncode, stdout, json.loads(path.read_text()) if path.exists() else None)
    return results


def check_common(name, outputs, benchmark: str | None = None) -> dict:
    code, stdout, doc = outputs[name]
    benchmark = benchmark or name
    assert code == 0, stdout[-4000:]
    assert doc is not None, stdout[-4000:]
    assert doc["benchmark"] == benchmark
    assert doc["command"].startswith(f"benchmarks/{RUNS[name][0]}.py")
    m = doc["machine"]
    assert m["nproc"] >= 1 and m["cpu_model"] and m["python"] and m["packages"]["jupyterhub"]
    assert "|" in stdout  # the printed table
    return doc["results"]


def finite(x) -> bool:
    return isinstance(x, (int, float)) and x == x and x >= 0


def test_spawn_burst(outputs):
    results = check_common("spawn_burst", outputs)
    assert results["order"] == ["ours", "vanilla"]
    for kind in ("ours", "vanilla"):
        agg = results["aggregate"][kind]
        assert agg["rounds"] == 1 and agg["failures"] == 0
        for key in ("request_to_pod_created_p50_s", "request_to_ready_p95_s", "hub_logged_spawn_p50_s",
                    "request_to_ready_all_p50_s", "request_to_ready_all_p95_s", "k8s_requests_per_spawn", "hub_cpu_seconds", "hub_peak_rss_mib"):
            assert finite(agg[key]), (kind, key, agg[key])
    for r in results["rounds"]:
        assert r["users"] == 3 and r["request_to_ready_s"]["n"] == 3
        # no failure: the all-requests percentiles are the same spawns' (nearest rank)
        assert r["request_to_ready_all_s"]["p95"] == r["request_to_ready_s"]["max"]
        assert any(k.startswith("create pods") for k in r["k8s_requests_by_kind"])
    assert set(results["targets"]) == {"hub_time_ratio_le_1.05", "requests_per_spawn_le_vanilla", "zero_failures"}
    assert isinstance(results["pod_differences"], list)


def test_spawn_burst_limits(outputs):
    results = check_common("spawn_burst_limits", outputs, "spawn_burst --compare limits")
    assert results["order"] == ["limits", "no-limits", "no-limits", "limits"]
    assert set(results["configurations"]) == {"limits", "no-limits"}
    assert "limits = " in results["configurations"]["limits"]
    assert "without limits" in results["configurations"]["no-limits"]
    for kind in ("limits", "no-limits"):
        agg = results["aggregate"][kind]
        assert agg["rounds"] == 2 and agg["failures"] == 0, (kind, agg)
        for key in ("hub_cpu_ms_per_spawn", "k8s_requests_per_spawn", "k8s_spawn_requests_per_spawn",
                    "request_to_ready_s_p95", "hub_logged_spawn_s_p50"):
            assert finite(agg["median"][key]), (kind, key, agg["median"])
    # every start admitted, ready and in the ledger, once; charged to the cap and the group only with limits
    assert results["verified"] is True and results["problems"] == {}, results["problems"]
    for r in results["rounds"]:
        assert r["users"] == 4 and r["failures"] == 0 and r["request_to_ready_s"]["n"] == 4
        assert set(r["post_status"]) <= {"201", "202"} and r["hub_refused_starts"] == {}
        assert r["ledger"]["after_burst"] == {"rows": 4, "problems": []}
        assert r["ledger"]["after_stop"] == {"rows": 4, "problems": []}
        assert finite(r["hub_cpu_ms_per_spawn"])
    for key in ("hub_cpu_ms_per_spawn", "k8s_requests_per_spawn", "k8s_spawn_requests_per_spawn"):
        assert finite(results["ratios_limits_over_no_limits_of_medians"][key]), key
    assert len(results["paired_ratios"]) == 2
    assert set(results["targets"]) == {"hub_cpu_per_spawn_ratio_le_1.05", "hub_logged_spawn_time_ratio_le_1.05",
                                       "no_extra_k8s_request_per_spawn", "every_spawn_admitted_ready_and_in_the_ledger"}
    assert results["targets"]["every_spawn_admitted_ready_and_in_the_ledger"] is True
    assert results["pod_differences"] == []  # the limits change nothing in the pod


def test_ledger_check_catches_a_wrong_ledger(monkeypatch):
    """The round check is what makes the limits comparison trustworthy: it must fail on a missing, doubled,
    uncharged or unclosed row."""
    sb = _load_spawn_burst(monkeypatch)
    names = ["r0l-0000", "r0l-0001"]

    def row(i, user, charges, stopped="2026-12-08 10:00:00", ended="stopped"):
        return {"id": i, "user": user, "server": "", "profile": "data-engineering", "charges": json.dumps(charges),
                "ready": "2026-12-08 09:00:00", "stopped": stopped, "ended": ended}

    charged = [["data-engineering", "r0l-0000", sb.GROUP]]
    good = [row(1, "r0l-0000", charged), row(2, "r0l-0001", [["data-engineering", "r0l-0001", sb.GROUP]])]
    assert sb.check_ledger(good, names, "limits", closed=True) == []
    assert sb.check_ledger([row(1, "r0l-0000", []), row(2, "r0l-0001", [])], names, "no-limits", closed=True) == []
    assert any("no row" in p for p in sb.check_ledger(good[:1], names, "limits", closed=True))
    assert any("more than one row" in p for p in sb.check_ledger(good + [row(3, "r0l-0001", charged)], names,
                                                                   "limits", closed=True))
    assert any("charges" in p for p in sb.check_ledger(good, names, "no-limits", closed=True))
    unclosed = [row(1, "r0l-0000", charged, None, None), good[1]]
    assert any("not closed" in p for p in sb.check_ledger(unclosed, names, "limits", closed=True))
    assert sb.check_ledger(unclosed[:1], names[:1], "limits", closed=False) == []  # during the burst: open
    assert any("closed during the burst" in p for p in sb.check_ledger(good, names, "limits", closed=False))


def test_spawner_only(outputs):
    results = check_common("spawner_only", outputs, "spawn_burst --spawner-only")
    for kind in ("ours", "vanilla"):
        s = results["cpu_ms"][kind]
        assert s["n"] == 10 and finite(s["p50"]) and s["p50"] <= s["p95"], (kind, s)


def test_form(outputs):
    results = check_common("form", outputs)
    for label in ("ours/cold-process", "ours/first-of-kind", "ours/cold-user", "ours/warm", "vanilla/cold-user",
                  "vanilla/warm"):
        s = results["measurements"][label]
        assert s["n"] == 20 and finite(s["p50"]) and finite(s["p95"]) and s["p50"] <= s["p95"]
        assert finite(results["cpu_ms"][label]["p95"])
    assert results["sizes"]["profiles_in_catalog"] == 50
    assert 0 < results["sizes"]["profiles_seen_by_user"] < 50  # group rules hide some
    assert results["target_applies_to"] == "ours/cold-user" and isinstance(results["target_met"], bool)


def test_startup(outputs):
    results = check_common("startup", outputs)
    assert results["order"] == ["vanilla", "ours"]
    for kind in ("vanilla", "ours"):
        r = results["by_config"][kind]
        assert r["seconds"]["n"] == 1 and finite(r["seconds"]["p50"]) and finite(r["hub_cpu_seconds"]["p50"])
    assert isinstance(results["extra_ms_p50"], float) and isinstance(results["target_met"], bool)


def test_seeder_delivery(outputs):
    results = check_common("seeder_delivery", outputs, "seeder --delivery")
    assert results["files"] == 20 and results["bytes"] == 200 << 10 and results["rounds"] == 1
    modes = results["modes"]
    assert list(modes) == ["no course", "init-container", "image-volume", "postStart", "seeder alone"]
    assert results["order"] == [list(modes)]
    assert modes["init-container"]["delivered_by"].startswith("init container ")
    assert modes["image-volume"]["delivered_by"].startswith("image volume ")
    assert modes["postStart"]["delivered_by"] == "postStart from the user image"
    for mode, m in modes.items():
        for phase in ("first", "restart"):
            p = m[phase]
            assert len(p["runs"]) == 1 and finite(p["ready_s"]["best"]) and finite(p["ready_s"]["median"])
            assert p["ready_s"]["best"] <= p["ready_s"]["median"]
            if mode == "no course":
                assert p["seeder_took_s"] == {}
            elif mode == "seeder alone":  # the yardstick: no pod
                assert finite(p["seeder_took_s"]["median"]) and "added_s" not in p
            else:
                # every start was checked: the seeder ran (its status line), the added cost is over the same round
                assert finite(p["seeder_took_s"]["median"]), (mode, phase)
                assert p["delivery_cpu_s"]["median"] > 0, (mode, phase)  # the delivery's processes ran
                assert isinstance(p["added_s"]["median"], float) and len(p["added_s"]["paired_runs"]) == 1
    for name in ("init-container/postStart", "image-volume/postStart"):
        for phase in ("first", "restart"):
            assert set(results["ratios"][name][phase]) == {"ready_best", "ready_median", "added_best", "added_median",
                                                           "delivery_cpu_median"}
            assert finite(results["ratios"][name][phase]["ready_median"])


def _load_spawn_burst(monkeypatch):
    import importlib.util

    path = ROOT / "benchmarks" / "spawn_burst.py"
    monkeypatch.syspath_prepend(str(path.parent))  # the script imports its neighbour common.py
    spec = importlib.util.spec_from_file_location("spawn_burst_for_test", path)
    sb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sb)
    return sb


def test_all_requests_percentile_counts_failures_as_never(monkeypatch):
    sb = _load_spawn_burst(monkeypatch)
    done = [float(i) for i in range(1, 9)]  # 8 of 10 requests finished, in 1..8 s
    assert sb.rank_or_none(done, 10, 50) == 5.0
    assert sb.rank_or_none(done, 10, 80) == 8.0
    assert sb.rank_or_none(done, 10, 95) is None  # the 10th request never finished
    assert sb._no_slower(10.0, None) and not sb._no_slower(None, 10.0) and not sb._no_slower(None, None)
    assert sb._no_slower(10.5, 10.0) and not sb._no_slower(10.6, 10.0)
