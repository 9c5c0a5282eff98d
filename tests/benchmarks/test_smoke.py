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


def test_all_requests_percentile_counts_failures_as_never(monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "spawn_burst.py"
    monkeypatch.syspath_prepend(str(path.parent))  # the script imports its neighbour common.py
    spec = importlib.util.spec_from_file_location("spawn_burst_for_test", path)
    sb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sb)
    done = [float(i) for i in range(1, 9)]  # 8 of 10 requests finished, in 1..8 s
    assert sb.rank_or_none(done, 10, 50) == 5.0
    assert sb.rank_or_none(done, 10, 80) == 8.0
    assert sb.rank_or_none(done, 10, 95) is None  # the 10th request never finished
    assert sb._no_slower(10.0, None) and not sb._no_slower(None, 10.0) and not sb._no_slower(None, None)
    assert sb._no_slower(10.5, 10.0) and not sb._no_slower(10.6, 10.0)
