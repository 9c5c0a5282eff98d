"""Caps end to end: a real hub (ProfilesKubeSpawner as the chart configures it for EKS) on the emulated cluster.

300 start requests arrive together through the REST API for a cap of 4: exactly 4 start, the others are refused
with the reason before anything reaches Kubernetes. A start that fails gives its place back; a stop too. The hub
killed with SIGKILL and started again on the same database counts the servers that kept running.
"""

from __future__ import annotations

import datetime
import json
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import NAMESPACE, chart_spawner_config, cluster  # noqa: F401  (fixture)
from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.hub import KubeHub, SpawnFailed, kube_hub_config, port_free_on_all_interfaces
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND
from tests.harness.platform import efs_objects, pools_from_platform
from tests.support.hub_process import free_port, start_hub

pytestmark = pytest.mark.e2e

CLUSTER_OPTIONS = {"pools": pools_from_platform(delay=0.2),
                   "command_map": {**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND},
                   "missing_images": ["quay.io/jupyter/pyspark-notebook:spark-3.4.1"]}
CAP = 4
LIMITS = {"caps": [{"profile": "data-engineering", "total": CAP}],
          # 36 seconds of Elyra a week, and a start needs 18 left: a minute of use is over it; a running server is
          # warned 6 seconds before its budget runs out and stopped 6 seconds after
          "budgets": [{"profile": "elyra", "hours": 0.01, "minimum_hours": 0.005, "grace_minutes": 0.1}]}
BURST = 300
PROFILE = {"profile": "data-engineering", "image": "pyspark-3-5"}


@pytest.fixture(scope="module")
def hub_workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fairuse-hub")


# the hub's own address and the servers' port stay across a restart, as in a deployment
HUB_PORT = free_port()
SERVER_PORT = 8888 if port_free_on_all_interfaces(8888) else 18888


def launch(cluster, workdir) -> KubeHub:  # noqa: F811
    config = "\n".join([
        "c.JupyterHub.template_vars = {'announcement_home': 'Exam on Friday.'}",  # the operator's, kept
        kube_hub_config(namespace=NAMESPACE, spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner",
                        storage="none", slow_spawn_timeout=None, singleuser_port=SERVER_PORT),
        chart_spawner_config(cluster.kubeconfig, "base"),
        # the burst keeps the hub's one event loop busy for seconds: the admitted starts must not time out
        "c.KubeSpawner.start_timeout = 40",
        "c.KubeSpawner.k8s_api_request_timeout = 20",
        "c.JupyterHub.cleanup_servers = False",  # as z2jh: servers outlive the hub
        f"c.ProfilesKubeSpawner.limits = {LIMITS!r}",
        "c.ProfilesKubeSpawner.courses = []",
        "c.JupyterHub.concurrent_spawn_limit = 0",
        "c.KubeSpawner.poll_interval = 1",  # the budget of a running server is looked at each poll
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{HUB_PORT}'",
        # what jupyterhub_ext.z2jh.setup(c) does last in the chart's config (tests/deploy checks it there)
        "import jupyterhub_ext.fairuse.notices; jupyterhub_ext.fairuse.notices.wire(c)",
    ])
    process = start_hub(config, name="e2e-fairuse", env={"KUBECONFIG": cluster.kubeconfig}, workdir=workdir)
    return KubeHub(process, NAMESPACE, kubeconfig=cluster.kubeconfig)


@pytest.fixture(scope="module")
def hub(request, cluster, hub_workdir):  # noqa: F811
    for plural, body in efs_objects(NAMESPACE):
        cluster.create(plural, body, body["metadata"].get("namespace"))
    h = launch(cluster, hub_workdir)
    holder = {"hub": h}
    yield holder
    h = holder["hub"]
    if module_failed(request):
        save_file(h.process.log_path, artifact_dir("test_fairuse_e2e"), "hub.log")
    h.process.stop()


def ledger(workdir) -> dict[str, list[dict]]:
    """The hub database's usage ledger, by user (read with a second connection, as a report would)."""
    with sqlite3.connect(str(workdir / "jupyterhub.sqlite")) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM jupyterhub_ext_usage ORDER BY id")]
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["user"], []).append(row)
    return out


def user_pods(cluster) -> list[str]:  # noqa: F811
    return sorted(p["metadata"]["name"] for p in cluster.list("pods", NAMESPACE)
                  if p["metadata"]["name"].startswith("jupyter-") and not p["metadata"].get("deletionTimestamp"))


def message_of(r) -> str:
    try:
        return r.json().get("message", "")
    except ValueError:
        return r.text


def test_a_burst_of_300_starts_exactly_the_cap(hub, cluster, hub_workdir):  # noqa: F811
    h = hub["hub"]
    names = [f"burst-{i:03d}" for i in range(BURST)]
    r = h.api("POST", "/users", json={"usernames": names})
    assert r.status_code == 201, r.text
    creates_before = cluster.requests.count("create", "pods")
    with ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(lambda n: (n, h.api("POST", f"/users/{n}/server", json=PROFILE)), names))
    started = [n for n, r in answers if r.status_code in (201, 202)]
    refused = [(n, r) for n, r in answers if r.status_code not in (201, 202)]
    assert len(started) == CAP, [(n, r.status_code, message_of(r)[:80]) for n, r in answers[:10]]
    assert {r.status_code for _, r in refused} == {400}, {(r.status_code, message_of(r)[:200]) for _, r in refused if r.status_code != 400}
    for n, r in refused:
        text = message_of(r)
        assert "All 4 servers of the Data Engineering (CPU) servers are in use right now (4 of 4)." in text, text
        assert "A place frees when someone stops their server." in text
        assert not any(other in text for other in started), "no other user's name in a refusal"
    for n in started:
        h.wait_ready(n, timeout=120)
    assert user_pods(cluster) == sorted(f"jupyter-{n}" for n in started)  # nothing else reached Kubernetes
    assert cluster.requests.count("create", "pods") - creates_before == CAP  # one create per admitted start
    hub["started"] = started
    runs = ledger(hub_workdir)
    assert sorted(runs) == sorted(started)  # one run each, none for a refused start
    for n in started:
        [row] = runs[n]
        assert row["profile"] == "data-engineering" and row["hardware"] == "cpu" and row["ready"] is not None
        assert row["stopped"] is None and json.loads(row["choices"]) == PROFILE
        assert json.loads(row["charges"]) == [["data-engineering", n, None]]


def test_a_stop_gives_the_place_back(hub, cluster):  # noqa: F811
    h = hub["hub"]
    started = hub["started"]
    r = h.spawn("burst-next", PROFILE)
    assert r.status_code == 400 and "4 of 4" in message_of(r)
    h.stop_server(started[0])
    h.start("burst-next", PROFILE, timeout=120)
    started[0] = "burst-next"


def test_a_failed_start_gives_its_place_back(hub, cluster, hub_workdir):  # noqa: F811
    h = hub["hub"]
    started = hub["started"]
    h.stop_server(started.pop())
    # this image cannot be pulled: the start fails (after the start timeout), and its place is free again
    with pytest.raises(SpawnFailed) as failed:
        h.start("fails-to-start", {"profile": "data-engineering", "image": "pyspark-3-4"}, timeout=90)
    assert "could not be pulled" in failed.value.message
    h.start("after-failure", PROFILE, timeout=120)
    started.append("after-failure")
    r = h.spawn("one-too-many", PROFILE)
    assert r.status_code == 400 and "4 of 4" in message_of(r)
    runs = ledger(hub_workdir)
    [failed_run] = runs["fails-to-start"]
    assert failed_run["ended"] == "failed" and failed_run["ready"] is None  # no hours for it
    assert [r["ended"] for r in runs["burst-next"]] == [None]
    stopped = [r for rows in runs.values() for r in rows if r["ended"] == "stopped"]
    assert len(stopped) == 2  # the two stops so far


def test_a_start_the_hour_budget_cannot_cover_is_refused_with_the_figures(hub, cluster, hub_workdir):  # noqa: F811
    h = hub["hub"]
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    week = now.replace(hour=0, minute=0, second=0, microsecond=0) - datetime.timedelta(days=now.weekday())
    ready = max(week, now - datetime.timedelta(seconds=60))
    with sqlite3.connect(str(hub_workdir / "jupyterhub.sqlite")) as db:  # a run of a minute, this week
        db.execute("INSERT INTO jupyterhub_ext_usage (user, server, groups, charges, profile, choices, hardware, "
                   "requested, ready, stopped, ended) VALUES ('spent', '', '[]', '[]', 'elyra', '{}', 'cpu', ?, ?, "
                   "?, 'stopped')", (ready.isoformat(" "), ready.isoformat(" "), now.isoformat(" ")))
    h.ensure_user("spent")
    r = h.spawn("spent", {"profile": "elyra"})
    assert r.status_code == 400, r.text
    text = message_of(r)
    assert text.startswith("You have used 0.01 of your 0.01 hours of the Elyra (CPU) servers this week"), text
    assert "The budget starts again on Monday" in text
    assert "jupyter-spent" not in user_pods(cluster)
    assert [r["ended"] for r in ledger(hub_workdir)["spent"]] == ["stopped"]  # the seeded run only: none for a refusal
    h.start("fresh", {"profile": "elyra"}, timeout=120)  # someone with the budget left
    h.stop_server("fresh")


def test_a_running_server_is_warned_then_stopped_when_its_budget_runs_out(hub, cluster, hub_workdir):  # noqa: F811
    h = hub["hub"]
    h.ensure_user("overrun")
    browser = h.login("overrun")  # before the start: a login with a server running goes on to the server
    h.start("overrun", {"profile": "elyra"}, timeout=120)
    ready_at = time.monotonic()
    warned = None
    while time.monotonic() - ready_at < 60:
        home = browser.get("hub/home").text
        if "save your work before then" in home:
            warned = time.monotonic()
            break
        assert h.server_model("overrun") is not None, "stopped without a warning"
        time.sleep(0.5)
    assert warned is not None, "no warning on the home page"
    assert "Exam on Friday." in home  # the operator's announcement stays, ours after it
    assert ("Your 0.01 hours of the Elyra (CPU) servers this week run out at " in home
            or "You have used your 0.01 hours of the Elyra (CPU) servers this week." in home), home
    assert "Your server will be stopped at " in home
    screenshot(h, "overrun", "budget-warning")
    assert h.server_model("overrun") is not None  # warned first, still running
    deadline = time.monotonic() + 60
    while h.server_model("overrun") is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert h.server_model("overrun") is None, "not stopped after the grace period"
    assert time.monotonic() - warned >= 6 - 1.5  # a whole grace period after the warning (poll: 1 s)
    cluster.wait_gone("pods", "jupyter-overrun", NAMESPACE, timeout=60)
    home = browser.get("hub/home").text
    assert "Your server was stopped at " in home and "were used up. The budget starts again on Monday" in home
    [run] = ledger(hub_workdir)["overrun"]
    assert run["ended"] == "budget" and run["stopped"] is not None
    r = h.spawn("overrun", {"profile": "elyra"})  # and the budget is spent: a new start is refused
    assert r.status_code == 400 and message_of(r).startswith("You have used 0.01 of your 0.01 hours"), r.text


def screenshot(h: KubeHub, name: str, shot: str) -> None:
    """The hub's home page as ``name`` sees it, in Debian's chromium, under artifacts/ (docs/images has a copy)."""
    import os

    if not os.path.exists("/usr/bin/chromium"):
        assert os.environ.get("REQUIRE_BROWSER") != "1", "chromium is missing"
        return
    from playwright import sync_api

    out = artifact_dir("test_fairuse_e2e")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 520})
            page.goto(f"{h.url}/hub/login")
            page.fill("input[name=username]", name)
            page.fill("input[name=password]", h.password)
            page.click("input[type=submit], button[type=submit]")
            page.goto(f"{h.url}/hub/home")
            page.screenshot(path=str(out / f"{shot}.png"))
        finally:
            browser.close()


def test_a_hub_killed_and_started_again_counts_the_servers_that_kept_running(hub, cluster, hub_workdir):  # noqa: F811
    h = hub["hub"]
    started = hub["started"]
    open_before = sorted(r["id"] for rows in ledger(hub_workdir).values() for r in rows if r["stopped"] is None)
    assert len(open_before) == CAP
    h.process.proc.send_signal(signal.SIGKILL)
    h.process.proc.wait(10)
    h.process.stop()  # the proxy of the dead hub goes too; the pods stay (as when the hub pod is evicted)
    assert len(user_pods(cluster)) == CAP
    h = hub["hub"] = launch(cluster, hub_workdir)
    deadline = time.monotonic() + 60
    for n in started:  # the servers that kept running are the hub's again, and answer through the new proxy
        while h.server_get(n, "api/status").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert h.server_get(n, "api/status").status_code == 200, n
    r = h.spawn("after-restart", PROFILE)
    assert r.status_code == 400 and "4 of 4" in message_of(r), message_of(r)
    h.stop_server(started[0])
    h.start("after-restart", PROFILE, timeout=120)
    for n in started[1:] + ["after-restart"]:
        h.stop_server(n)
    cluster.wait_gone("pods", "jupyter-after-restart", NAMESPACE, timeout=60)
    runs = ledger(hub_workdir)
    assert all(r["stopped"] is not None for rows in runs.values() for r in rows)
    # the runs that lived through the crash are one row each, closed by the stops of the new hub
    survivors = [r for rows in runs.values() for r in rows if r["id"] in open_before]
    assert {r["ended"] for r in survivors} == {"stopped"} and len(survivors) == CAP
    assert [r["ended"] for r in runs["after-restart"]] == ["stopped"]
