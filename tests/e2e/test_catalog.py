"""The shipped EKS catalog, end to end: ProfilesKubeSpawner configured exactly as the z2jh chart configures it
(helm/values.yaml, through tests/deploy's chart emulation), on node pools modelled from helm/platform, with
the EFS home and shared claims helm/platform makes. Every profile (each hardware kind) starts a real
jupyterhub-singleuser on a node of its pool and answers through the proxy.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from tests.harness.hub import SpawnFailed
from tests.harness.platform import efs_objects, pools_from_platform

from .conftest import NAMESPACE, chart_spawner_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((ROOT / "jupyterhub_ext" / "catalogs" / "eks.yaml").read_text())["profiles"]
PROFILES = {p["slug"]: p for p in CATALOG}
EVERYONE = ["gpu-users", "ml-engineers", "data-engineers"]
CLUSTER_OPTIONS = {"pools": pools_from_platform(delay=0.2)}


@pytest.fixture(scope="module")
def chart_config(cluster):
    return chart_spawner_config(cluster.kubeconfig, "base")


@pytest.fixture(scope="module")
def catalog_hub(request, cluster, chart_config):
    from .conftest import start_module_hub, stop_module_hub
    for plural, body in efs_objects(NAMESPACE):
        cluster.create(plural, body, body["metadata"].get("namespace"))
    request.module.HUB_CONFIG = "\n".join([
        chart_config,
        "c.KubeSpawner.start_timeout = 90",
        "c.KubeSpawner.http_timeout = 60",
    ])
    hub = start_module_hub(request, cluster, NAMESPACE, storage="none", spawner_class=
                     "jupyterhub_ext.spawner.ProfilesKubeSpawner")
    for group in EVERYONE:
        hub.api("POST", f"/groups/{group}")
    yield hub
    stop_module_hub(request, hub)


def _member(hub, name: str, groups: list[str]) -> None:
    hub.ensure_user(name)
    for g in groups:
        r = hub.api("POST", f"/groups/{g}/users", json={"users": [name]})
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def started(catalog_hub, cluster):
    """Every profile of the catalog started at once (one user each, in every group); slug -> outcome."""
    results: dict[str, object] = {}

    def start(slug: str) -> None:
        user = f"cat-{slug}"
        try:
            _member(catalog_hub, user, EVERYONE)
            catalog_hub.start(user, {"profile": slug}, timeout=150)
            results[slug] = (user, catalog_hub.server_get(user, "api/status").status_code,
                             cluster.get("pods", f"jupyter-{user}", NAMESPACE))
        except BaseException as e:  # reported by the test of this profile
            results[slug] = e
    threads = [threading.Thread(target=start, args=(slug,)) for slug in PROFILES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(200)
    yield results
    for slug, outcome in results.items():
        if isinstance(outcome, tuple):
            catalog_hub.stop_server(outcome[0])


@pytest.mark.parametrize("slug", list(PROFILES), ids=[f"{p['hardware']['kind']}-{s}" for s, p in PROFILES.items()])
def test_each_profile_spawns_on_its_node_pool(started, cluster, slug):
    outcome = started[slug]
    if isinstance(outcome, BaseException):
        raise outcome
    user, status, pod = outcome
    assert status == 200, "the server does not answer through the proxy"
    hardware = PROFILES[slug]["hardware"]
    node = cluster.get("nodes", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["karpenter.sh/nodepool"] == hardware["node_pool"]
    assert node["metadata"]["labels"]["hub.jupyter.org/node-purpose"] == "user"
    limits = pod["spec"]["containers"][0]["resources"].get("limits", {})
    extended = {k: v for k, v in limits.items() if "/" in k}
    expected = {"cpu": {}, "gpu": {"nvidia.com/gpu": "1"}, "gpu-timeslice": {"nvidia.com/gpu": "1"},
                "mig": {"nvidia.com/mig-1g.5gb": "1"}, "trainium": {"aws.amazon.com/neuron": "1"},
                "inferentia": {"aws.amazon.com/neuron": "1"}}[hardware["kind"]]
    assert extended == expected
    for resource in extended:
        assert resource in node["status"]["allocatable"]
    # the home is the user's directory on the EFS home claim, not the image's
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0].get("volumeMounts", [])}
    assert "/home/jovyan" in mounts
    code, out = cluster.exec(NAMESPACE, pod["metadata"]["name"], ["sh", "-c", "id -u; touch ~/probe && echo ok"])
    assert code == 0 and out.split() == ["1000", "ok"], out


def test_time_sliced_gpu_is_shared_by_four_users(started, cluster):
    """The gpu-ts pool advertises each GPU four times: the time-sliced profile's users share one node."""
    outcome = started["gpu-timeslice"]
    if isinstance(outcome, BaseException):
        raise outcome
    node = cluster.get("nodes", outcome[2]["spec"]["nodeName"])
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["labels"]["nvidia.com/gpu.replicas"] == "4"


def test_hidden_profile_is_refused_before_kubernetes(catalog_hub, cluster, username):
    """A user outside gpu-users asks the REST API for a GPU profile: refused with a message, no API call."""
    catalog_hub.ensure_user(username)
    before = cluster.requests.count("create", "pods")
    r = catalog_hub.spawn(username, {"profile": "gpu"})
    if r.status_code in (201, 202):
        with pytest.raises(SpawnFailed) as failed:
            catalog_hub.wait_ready(username, timeout=30)
        message = failed.value.message
    else:
        message = r.json().get("message", "")
        assert r.status_code in (400, 403), r.text
    # the user is told what went wrong and what they may start instead
    assert "'gpu'" in message and "not one you may start" in message and "data-engineering" in message, message
    assert cluster.requests.count("create", "pods") == before
    assert cluster.find("pods", f"jupyter-{username}", NAMESPACE) is None


def test_mig_profile_without_warm_node_shows_scheduler_reason(started, catalog_hub, cluster, username):
    """Karpenter cannot provision for MIG slices (kubernetes-sigs/karpenter#751): without the warm node the
    chart requires, the MIG profile stays pending and the spawn page tells the user why."""
    outcome = started["gpu-mig"]
    if isinstance(outcome, tuple):
        catalog_hub.stop_server(outcome[0])
        cluster.wait_gone("pods", f"jupyter-{outcome[0]}", NAMESPACE, timeout=60)
    removed = cluster.nodes("gpu-mig")  # as if warmNodes were 0: no MIG node at all
    for node in removed:
        cluster.delete("nodes", node["metadata"]["name"])
    _member(catalog_hub, username, EVERYONE)
    try:
        r = catalog_hub.spawn(username, {"profile": "gpu-mig"})
        assert r.status_code in (201, 202), r.text
        events = catalog_hub.progress(username, timeout=60, until=lambda e: "nodes are available" in e["message"])
        shown = events[-1]["message"]
        assert "didn't match Pod's node affinity/selector" in shown, shown
        assert "Preemption is not helpful for scheduling" in shown, shown
        assert cluster.nodes("gpu-mig") == [], "Karpenter must not provision a node for MIG slices"
        catalog_hub.stop_server(username)  # the user gives up: the pending pod goes
        cluster.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=60)
    finally:
        for node in removed:
            cluster.create("nodes", {"metadata": {"name": node["metadata"]["name"],
                                                  "labels": node["metadata"]["labels"]},
                                     "spec": node["spec"], "status": node["status"]})


def test_home_is_a_per_user_directory_on_efs_and_shared_is_read_only(started, cluster):
    """The chart's storage: each home is the user's own directory on the EFS home claim (owned by the access
    point's POSIX user), the shared claim is mounted read-only for users outside the writing groups."""
    outcome = started["data-engineering"]
    if isinstance(outcome, BaseException):
        raise outcome
    user, _, pod = outcome
    name = pod["metadata"]["name"]
    code, out = cluster.exec(NAMESPACE, name, ["sh", "-c", "echo mine > ~/efs-probe && echo ok; "
                                                           "touch /home/shared/x 2>&1; echo rc=$?"])
    assert code == 0 and out.startswith("ok\n"), out
    assert "Read-only file system" in out and "rc=1" in out, out
    homes = cluster.claim_dir(NAMESPACE, "efs-home")
    owned = [d for d in os.listdir(homes) if os.path.exists(os.path.join(homes, d, "efs-probe"))]
    assert len(owned) == 1, os.listdir(homes)  # one directory, this user's
    st = os.stat(os.path.join(homes, owned[0]))
    assert (st.st_uid, st.st_gid) == (1000, 100)
    other_users = {f"cat-{slug}" for slug in PROFILES} - {user}
    assert not (set(os.listdir(homes)) & other_users), "home directory names are escaped, not raw user names"
