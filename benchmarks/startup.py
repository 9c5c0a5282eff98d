"""Hub start-up time, from launching ``jupyterhub`` to ``/hub/health`` answering 200 through the proxy, with and
without the extension; runs alternate (vanilla, ours, vanilla, ours, ...).

- vanilla: ``kubespawner.KubeSpawner`` with the chart-like settings of the end-to-end harness, the shipped
  catalog as an equivalent static ``profile_list`` (common.vanilla_profile_list) and the EFS home as z2jh's
  static storage (one claim, a ``subPath`` per user).
- ours: the same settings, ``c.ProfilesKubeSpawner.catalog_file = "builtin:eks"`` (its EFS home is the
  default ``home_mode``) and, last, ``import jupyterhub_ext.z2jh; jupyterhub_ext.z2jh.setup(c)``, as the
  chart's ``hub.extraConfig`` runs it (sets the spawner class and validates the whole configuration).

Both point at an emulated Kubernetes API (tests.harness), which a hub with no users does not call at start-up.
The hub is launched by tests/support/hub_process (temp dir, sqlite, configurable-http-proxy), polled every 10 ms.

    python benchmarks/startup.py [--runs 10] [--json results/startup.json]
"""

from __future__ import annotations

import argparse
import time

import requests

from common import machine, machine_line, process_cpu_seconds, process_peak_rss_mib, report, summary, table, vanilla_profile_list, write_json

TARGET_EXTRA_MS = 100.0
NAMESPACE = "bench"


def configs() -> dict[str, str]:
    from tests.harness.hub import kube_hub_config

    efs_home = [
        "c.KubeSpawner.volumes = {'home': {'name': 'home', 'persistentVolumeClaim': {'claimName': 'efs-home'}}}",
        "c.KubeSpawner.volume_mounts = {'home': {'name': 'home', 'mountPath': '/home/jovyan', "
        "'subPath': '{username}'}}",
    ]
    vanilla = "\n".join([kube_hub_config(namespace=NAMESPACE, storage="none"),
                         f"c.KubeSpawner.profile_list = {vanilla_profile_list()!r}", *efs_home])
    ours = "\n".join([kube_hub_config(namespace=NAMESPACE, storage="none",
                                      spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner"),
                      "c.ProfilesKubeSpawner.catalog_file = 'builtin:eks'",
                      "c.ProfilesKubeSpawner.home_pvc = 'efs-home'",
                      "import jupyterhub_ext.z2jh",
                      "jupyterhub_ext.z2jh.setup(c)"])
    return {"vanilla": vanilla, "ours": ours}


class PortTaken(RuntimeError):
    """Another process bound one of the hub's ports between picking it and the hub's bind: not a result."""


def hub_log_tail(log: str, lines: int = 40) -> str:
    """The hub's own last lines: the proxy's 404s while the hub is not routed yet would hide the reason."""
    return "\n".join([line for line in log.splitlines() if "[ConfigProxy]" not in line][-lines:])


def one_start(kind: str, config: str, kubeconfig: str, timeout: float = 120, attempts: int = 3) -> dict:
    for attempt in range(attempts):
        try:
            return timed_start(kind, config, kubeconfig, timeout)
        except PortTaken:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def timed_start(kind: str, config: str, kubeconfig: str, timeout: float) -> dict:
    from tests.support.hub_process import launch_hub

    t0 = time.perf_counter()
    hub = launch_hub(config, name=f"startup-{kind}", crypt_key=False, env={"KUBECONFIG": kubeconfig}, base_path="/",
                  debug=False, workdir=None, extra_args=())
    try:
        url = hub.url("hub/health")
        with requests.Session() as s:
            while True:
                try:
                    if s.get(url, timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if not hub.alive:
                    log = hub.log_text()
                    if "address already in use" in log.lower():
                        raise PortTaken(kind)
                    raise RuntimeError(f"{kind} hub exited during start-up:\n{hub_log_tail(log)}")
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"{kind} hub not healthy after {timeout}s:\n{hub_log_tail(hub.log_text())}")
                time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        return {"seconds": elapsed, "hub_cpu_seconds": process_cpu_seconds(hub.proc.pid),
                "hub_peak_rss_mib": process_peak_rss_mib(hub.proc.pid)}
    finally:
        hub.stop(timeout=10)


def run(runs: int, warm_up: bool = True) -> dict:
    from tests.harness import EmulatedCluster

    cfg = configs()
    samples: dict[str, list[dict]] = {"vanilla": [], "ours": []}
    order = []
    with EmulatedCluster(pools=[], namespaces=(NAMESPACE,)) as cluster:
        if warm_up:
            one_start("warm-up", cfg["vanilla"], cluster.kubeconfig)  # file caches, .pyc: not counted
        for i in range(runs):
            pair = ("vanilla", "ours") if i % 2 == 0 else ("ours", "vanilla")  # ABBA: drift hits both alike
            for kind in pair:
                samples[kind].append(one_start(kind, cfg[kind], cluster.kubeconfig))
                order.append(kind)
        api_requests = len(cluster.requests)
    out = {kind: {"seconds": summary([s["seconds"] for s in v]),
                  "hub_cpu_seconds": summary([s["hub_cpu_seconds"] for s in v if s["hub_cpu_seconds"] is not None]),
                  "hub_peak_rss_mib": summary([s["hub_peak_rss_mib"] for s in v if s["hub_peak_rss_mib"]]),
                  "runs": [round(s["seconds"], 4) for s in v]} for kind, v in samples.items()}
    extra_p50 = (out["ours"]["seconds"]["p50"] - out["vanilla"]["seconds"]["p50"]) * 1000
    extra_mean = (out["ours"]["seconds"]["mean"] - out["vanilla"]["seconds"]["mean"]) * 1000
    extra_cpu = (out["ours"]["hub_cpu_seconds"]["p50"] - out["vanilla"]["hub_cpu_seconds"]["p50"]) * 1000
    return {"by_config": out, "order": order, "extra_ms_p50": extra_p50, "extra_ms_mean": extra_mean,
            "extra_hub_cpu_ms_p50": extra_cpu,
            "kubernetes_api_requests_during_all_starts": api_requests,
            "target_extra_ms": TARGET_EXTRA_MS, "target_met": extra_p50 <= TARGET_EXTRA_MS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="start-ups of each configuration (alternating)")
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                    help="skip the uncounted first start (which fills file caches and .pyc files)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    args = ap.parse_args()

    m = machine()
    results = run(args.runs, args.warm_up)
    print(f"# hub start-up to /hub/health, {args.runs} runs each, alternating")
    print(machine_line(m) + "\n")
    rows = []
    for kind, r in results["by_config"].items():
        s = r["seconds"]
        rows.append((kind, s["n"], s["p50"] * 1000, s["p95"] * 1000, s["mean"] * 1000, s["min"] * 1000,
                     r["hub_cpu_seconds"]["p50"] * 1000, r["hub_peak_rss_mib"]["p50"]))
    print(table(["config", "runs", "p50 ms", "p95 ms", "mean ms", "min ms", "hub CPU ms p50", "hub peak RSS MiB"],
                rows, digits=1))
    print(f"\nours - vanilla: {results['extra_ms_p50']:+.1f} ms (p50), {results['extra_ms_mean']:+.1f} ms (mean); "
          f"target <= +{TARGET_EXTRA_MS:.0f} ms: {'met' if results['target_met'] else 'MISSED'}; "
          f"hub CPU to healthy {results['extra_hub_cpu_ms_p50']:+.1f} ms (p50)")
    write_json(args.json, report("startup", args, results, m))


if __name__ == "__main__":
    main()
