"""Per-profile culling end to end: a real hub on the emulated cluster, with the chart's culler service (its command
and role as z2jh 4.4.0 builds them from ``cull.*``) started by the hub as a managed service, and rewritten by
``jupyterhub_ext.z2jh.setup(c)`` to run jupyterhub-idle-culler 2.0.0 from its own environment with our hook.

Short timeouts: the GPU profile is culled after a few seconds idle, the CPU profile may idle for 8 hours, Elyra has a
maximum age of seconds. The test reports activity through the hub's REST API, as a server does. The usage ledger
records the culls as ``culled``. With the hub image's own culler 1.4 (no 2.x Python found), the hub says at
start-up that per-profile culling is off, and starts.
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
import time

import pytest
import requests

from tests.deploy.hub import configure
from tests.deploy.z2jh_chart import COMBINATIONS, user_values
from tests.e2e.conftest import NAMESPACE, chart_spawner_config, cluster  # noqa: F401  (fixture)
from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.hub import KubeHub, kube_hub_config
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND
from tests.harness.platform import efs_objects, pools_from_platform
from tests.support.culler import culler_14_wheel, culler_python
from tests.support.hub_process import free_port, start_hub
from tests.support.kubeconfig import kubeconfig_default

pytestmark = pytest.mark.e2e

CLUSTER_OPTIONS = {"pools": pools_from_platform(delay=0.2),
                   "command_map": {**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}}
IDLE_SECONDS = 10    # the GPU profile's idle timeout
MAX_AGE_SECONDS = 40  # Elyra's maximum age
LIMITS = {"culling": [
    {"profile": "gpu", "idle_minutes": IDLE_SECONDS / 60},
    {"profile": "data-engineering", "idle_minutes": 8 * 60},  # a CPU server may idle for 8 hours
    {"profile": "elyra", "max_age_hours": MAX_AGE_SECONDS / 3600},
]}
CULL = {"enabled": True, "timeout": 3600, "every": 1}  # the chart's cull.*: one hour for servers without a rule
ML = "ml-engineers"  # the catalog's group for the GPU profile


def chart_culler(cull: dict, hub_api: str) -> tuple[dict, dict]:
    """The culler service and its role as the real chart makes them from ``cull`` (its jupyterhub_config.py,
    without our extraConfig), pointed at this test hub's API instead of localhost:8081."""
    values = user_values(COMBINATIONS["base"])
    values["cull"] = cull
    values["hub"]["extraConfig"] = {}
    c = configure("culler", values=values).config
    [service] = [s for s in c.JupyterHub.services if s["name"] == "jupyterhub-idle-culler"]
    [role] = [r for r in c.JupyterHub.load_roles if r["name"] == "jupyterhub-idle-culler"]
    service["command"] = [f"--url={hub_api}" if a.startswith("--url=") else a for a in service["command"]]
    return service, role


def launch(cluster, name: str, culler: str | None, env: dict | None = None) -> KubeHub:  # noqa: F811
    port = free_port()
    service, role = chart_culler(CULL, f"http://127.0.0.1:{port}/hub/api")
    with kubeconfig_default(cluster.kubeconfig, environ=True):
        spawner = chart_spawner_config(cluster.kubeconfig, "base")
    config = "\n".join([
        kube_hub_config(namespace=NAMESPACE, spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner",
                        storage="none", slow_spawn_timeout=None),
        spawner,
        "c.KubeSpawner.start_timeout = 60",
        f"c.ProfilesKubeSpawner.limits = {LIMITS!r}",
        "c.ProfilesKubeSpawner.courses = []",
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{port}'",
        f"c.JupyterHub.services.append({service!r})",
        f"c.JupyterHub.load_roles.append({role!r})",
        *([f"c.ProfilesKubeSpawner.culler_python = {culler!r}"] if culler else []),
        # the chart's hub.extraConfig entry
        "import jupyterhub_ext.z2jh",
        "jupyterhub_ext.z2jh.setup(c)",
    ])
    process = start_hub(config, name=name, env={"KUBECONFIG": cluster.kubeconfig, **(env or {})})
    return KubeHub(process, NAMESPACE, kubeconfig=cluster.kubeconfig)


@pytest.fixture(scope="module")
def hub(request, cluster):  # noqa: F811
    for plural, body in efs_objects(NAMESPACE):
        cluster.create(plural, body, body["metadata"].get("namespace"))
    h = launch(cluster, "e2e-culling", culler_python())
    yield h
    if module_failed(request):
        save_file(h.process.log_path, artifact_dir("test_culling_e2e"), "hub.log")
    h.process.stop()


def ledger(hub: KubeHub) -> dict[str, list[dict]]:
    """Each user's runs in the hub database's usage ledger (times as datetimes)."""
    with sqlite3.connect(str(hub.process.workdir / "jupyterhub.sqlite")) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM jupyterhub_ext_usage ORDER BY id")]
    out: dict[str, list[dict]] = {}
    for row in rows:
        for key in ("requested", "ready", "stopped"):
            row[key] = datetime.datetime.fromisoformat(row[key]) if row[key] else None
        out.setdefault(row["user"], []).append(row)
    return out


def wait_ended(hub: KubeHub, name: str, timeout: float) -> dict:
    """``name``'s one run, once the ledger says it ended (the culler stopped it)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = ledger(hub).get(name) or []
        if runs and runs[-1]["ended"]:
            assert len(runs) == 1, runs
            return runs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}'s run has not ended after {timeout} s: {runs}")
        time.sleep(0.25)


class Activity(threading.Thread):
    """Reports activity for some servers every half second, as a busy server does (POST /users/:name/activity)."""

    def __init__(self, hub: KubeHub, names: list[str]):
        super().__init__(daemon=True)
        self.hub, self.names, self.done = hub, names, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
            for name in self.names:
                self.hub.api("POST", f"/users/{name}/activity",
                             json={"last_activity": now, "servers": {"": {"last_activity": now}}})


def running(hub: KubeHub, name: str) -> bool:
    return bool((hub.server_model(name) or {}).get("ready"))


def test_the_setup_runs_the_charts_culler_with_the_2x_python_and_the_hook(hub):
    log = hub.process.log_text()
    assert "per-profile culling by jupyterhub-idle-culler 2.0.0" in log, log[-3000:]
    assert "per-profile culling is off" not in log
    r = hub.api("GET", "/services/jupyterhub-idle-culler")
    assert r.status_code == 200 and r.json()["command"][:3] == [culler_python(), "-m", "jupyterhub_idle_culler"]
    assert r.json()["command"][-1].endswith("jupyterhub_ext/culling/idle_culler_config.py")


def test_idle_gpu_goes_idle_cpu_and_active_gpu_stay_and_max_age_culls(hub, cluster):  # noqa: F811
    names = {"gpu-busy": "gpu", "cpu-idle": "data-engineering", "elyra-busy": "elyra", "gpu-idle": "gpu"}
    r = hub.api("POST", "/users", json={"usernames": list(names)})
    assert r.status_code == 201, r.text
    assert hub.api("POST", f"/groups/{ML}").status_code in (201, 409)
    assert hub.api("POST", f"/groups/{ML}/users", json={"users": ["gpu-idle", "gpu-busy"]}).status_code == 200
    activity = Activity(hub, ["gpu-busy", "elyra-busy"])
    activity.start()
    try:
        for name, profile in names.items():
            r = hub.spawn(name, {"profile": profile})
            assert r.status_code in (201, 202), (name, r.status_code, r.text)
        for name in ("gpu-busy", "cpu-idle"):
            hub.wait_ready(name, timeout=90)
        # the idle GPU server goes, once idle for its timeout (read from the ledger: it may be gone before we look)
        idle = wait_ended(hub, "gpu-idle", timeout=90)
        assert idle["ended"] == "culled" and idle["ready"] is not None, idle
        # JupyterHub counts a new server's idle time from the start request (its last activity then)
        assert (idle["stopped"] - idle["requested"]).total_seconds() >= IDLE_SECONDS - 1, idle
        cluster.wait_gone("pods", "jupyter-gpu-idle", NAMESPACE, timeout=30)
        # Elyra is busy, but older than its maximum age: it goes too
        old = wait_ended(hub, "elyra-busy", timeout=MAX_AGE_SECONDS + 60)
        assert old["ended"] == "culled" and (old["stopped"] - old["requested"]).total_seconds() >= MAX_AGE_SECONDS - 1
        time.sleep(2 * CULL["every"] + 1)  # rounds of the culler after that: the others are still kept
        runs = ledger(hub)
        busy = runs["gpu-busy"][0]
        assert running(hub, "gpu-busy") and busy["ended"] is None, "a busy GPU server was culled"
        assert (old["stopped"] - busy["ready"]).total_seconds() > IDLE_SECONDS  # longer up than the idle timeout
        assert running(hub, "cpu-idle") and runs["cpu-idle"][0]["ended"] is None, "an idle CPU server was culled"
    finally:
        activity.done.set()
        activity.join(5)
    log = hub.process.log_text()
    assert "the culler stops gpu-idle/ (idle)" in log and "the culler stops elyra-busy/ (max_age)" in log
    for name in ("gpu-busy", "cpu-idle"):
        hub.stop_server(name)
    runs = ledger(hub)
    assert [r["ended"] for r in runs["gpu-busy"]] == ["stopped"] and [r["ended"] for r in runs["cpu-idle"]] == \
        ["stopped"], runs


def test_a_stop_of_someone_elses_server_cannot_be_called_a_cull(hub):
    """Marking needs delete:servers on that server: a user may not label another user's stop."""
    hub.ensure_user("mallory")
    r = hub.api("POST", "/users/mallory/tokens", json={"expires_in": 600})
    token = r.json()["token"]
    r = requests.post(hub.process.hub_api_url + "/jupyterhub-ext/culls", timeout=10,
                      headers={"Authorization": f"token {token}"},
                      json={"user": "cpu-idle", "server": "", "reason": "idle"})
    assert r.status_code in (403, 404), r.text
    r = hub.api("POST", "/jupyterhub-ext/culls", json={"user": "cpu-idle", "server": "", "reason": "bored"})
    assert r.status_code == 400 and "reason must be one of idle, max_age" in r.json()["message"]


def test_with_the_images_own_culler_14_per_profile_culling_is_off_and_said(cluster, tmp_path):  # noqa: F811
    """No 2.x Python where the setting points (the chart's hub image as it comes): the hub's own Python, with the
    culler 1.4 it pins, runs the culler as the chart made it, and the log says per-profile culling is off."""
    missing = tmp_path / "no-culler-venv" / "bin" / "python"
    h = launch(cluster, "e2e-culling-14", str(missing), env={"PYTHONPATH": culler_14_wheel()})
    try:
        line = h.process.wait_for_log(r"per-profile culling is off \(.* in limits\.culling\): .*", timeout=5)
        assert f"{missing} is not there" in line.group(0)
        assert "one timeout for every server (cull.timeout)" in line.group(0)
        r = h.api("GET", "/services/jupyterhub-idle-culler")
        assert r.json()["command"][:3] == ["python3", "-m", "jupyterhub_idle_culler"]  # as the chart made it
        time.sleep(3 * CULL["every"] + 1)  # the 1.4 culler keeps running its rounds: it is not restarted
        log = h.process.log_text()
        assert "Service jupyterhub-idle-culler exited" not in log, log[-3000:]
        assert h.api("GET", "/").status_code == 200
    finally:
        h.process.stop()
