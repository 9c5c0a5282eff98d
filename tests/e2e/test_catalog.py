"""The shipped EKS catalog, end to end: ProfilesKubeSpawner configured exactly as the z2jh chart configures it
(helm/values.yaml, through tests/deploy's chart emulation), on node pools modelled from helm/platform, with
the EFS home and shared claims helm/platform makes. Every profile (each hardware kind) starts a real
jupyterhub-singleuser on a node of its pool and answers through the proxy.

The hub keeps JupyterHub's own slow_spawn_timeout (10 s; z2jh does not change it), so a request that is refused
is answered by the spawn request itself, as in a deployment: REST 400 with the message, or the form again with it.
"""

from __future__ import annotations

import html
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
    hub = start_module_hub(request, cluster, NAMESPACE, storage="none", slow_spawn_timeout=None,
                           spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner")
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


SUFFIXED_IMAGE = "quay.io/jupyter/base-notebook:2024-12-02@evil/miner"  # re.match (upstream) accepts this
PATTERN = PROFILES["data-engineering"]["options"][0]["free_text"]["pattern"]

# (user_options, the problem the message must name): a user in no group sees data-engineering and elyra only
REFUSED = {
    "hidden-profile": ({"profile": "gpu"},
                       "Unknown profile 'gpu', or not one you may start. Your profiles: data-engineering, elyra."),
    "unknown-profile": ({"profile": "no-such-profile"},
                        "Unknown profile 'no-such-profile', or not one you may start. Your profiles: "
                        "data-engineering, elyra."),
    "unknown-choice": ({"profile": "data-engineering", "image": "pyspark-9-9"},
                       "Image: unknown choice 'pyspark-9-9', or not one you may use. Choices: pyspark-3-5, pyspark-3-4."),
    "hidden-choice": ({"profile": "data-engineering", "size": "large"},
                      "Size: unknown choice 'large', or not one you may use. Choices: standard."),
    "free-text-suffix": ({"profile": "data-engineering", "image--unlisted-choice": SUFFIXED_IMAGE},
                         f"Image: {SUFFIXED_IMAGE!r} is not allowed; it must match {PATTERN!r} in full."),
    "free-text-not-offered": ({"profile": "data-engineering", "size--unlisted-choice": "huge"},
                              "Size: a custom value is not allowed here."),
    "unknown-option": ({"profile": "elyra", "image": "pyspark-3-5"},
                       "Unknown server option(s) for profile 'elyra': image."),
    "profile-not-text": ({"profile": 3}, "The profile must be given by its name (a string), not int."),
    "choice-not-text": ({"profile": "data-engineering", "image": ["pyspark-3-5"]},
                        "Image: expected text for 'image', got list."),
    "free-text-not-text": ({"profile": "data-engineering", "image--unlisted-choice": {"image": "x"}},
                           "Image: expected text for 'image--unlisted-choice', got dict."),
}


def assert_nothing_reached_kubernetes(catalog_hub, cluster, username, pod_creates_before):
    assert cluster.requests.count("create", "pods") == pod_creates_before
    assert cluster.find("pods", f"jupyter-{username}", NAMESPACE) is None
    model = catalog_hub.server_model(username)
    assert not (model and (model.get("ready") or model.get("pending"))), model


@pytest.mark.parametrize("case", list(REFUSED))
def test_rest_request_outside_the_users_list_is_refused_before_kubernetes(catalog_hub, cluster, username, case):
    """POST /hub/api/users/{name}/server with user_options naming something this user may not start (or of the
    wrong shape): the request itself answers 400 with a message naming the problem, and no pod is created."""
    user_options, problem = REFUSED[case]
    catalog_hub.ensure_user(username)
    before = cluster.requests.count("create", "pods")
    r = catalog_hub.spawn(username, user_options)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["message"] == problem
    assert_nothing_reached_kubernetes(catalog_hub, cluster, username, before)
    # a reloaded spawn-pending page shows the same words
    assert catalog_hub.last_spawn_error(username) == f"Spawn failed: {problem}"


def test_refusals_in_a_row_do_not_stop_the_hub(catalog_hub, chart_config, cluster, request):
    """z2jh sets consecutive_failure_limit = 5 and JupyterHub 5 exits after that many failed starts in a row,
    refusals included (JupyterHub 6 counts errors only): refused requests must not bring the hub down for
    everyone. No start succeeds in between, so the count would reach the limit here."""
    assert "c.Spawner.consecutive_failure_limit = 5" in chart_config, \
        "the chart's consecutive_failure_limit is what this test is about"
    before = cluster.requests.count("create", "pods")
    for i in range(7):
        r = catalog_hub.spawn(f"refused-{i}-{abs(hash(request.node.nodeid)) % 1000}", {"profile": "gpu"})
        assert r.status_code == 400, r.text
    assert catalog_hub.api("GET", "/").status_code == 200
    log = catalog_hub.process.log_text()
    assert "consecutive spawns failed" not in log and "Aborting due to" not in log
    assert catalog_hub.process.alive
    assert cluster.requests.count("create", "pods") == before


def test_refusal_on_the_spawn_form_shows_the_message(catalog_hub, cluster, username):
    """The browser way: a submitted form naming a profile the user may not start comes back as the form, with
    the message on the page (JupyterHub renders the error on the spawn page), and nothing reaches Kubernetes."""
    browser = catalog_hub.login(username)
    form = browser.get(f"hub/spawn/{username}")
    assert 'value="data-engineering"' in form.text and 'value="gpu"' not in form.text  # not offered
    before = cluster.requests.count("create", "pods")
    for data, problem in [({"profile": "gpu"}, REFUSED["hidden-profile"][1]),
                          ({"profile": "data-engineering",
                            "profile-option-data-engineering--image--unlisted-choice": SUFFIXED_IMAGE},
                           REFUSED["free-text-suffix"][1])]:
        page = browser.spawn_form(data)
        assert page.status_code == 400, page.status_code
        assert f"hub/spawn/{username}" in page.url and "<form" in page.text  # the spawn page again
        assert problem in html.unescape(page.text), page.text[:3000]
    assert_nothing_reached_kubernetes(catalog_hub, cluster, username, before)


def test_form_free_text_image_that_matches_is_started(catalog_hub, cluster, username):
    """The form's "Other" entry: a value that matches the pattern in full starts a pod with exactly that image."""
    image = "quay.io/jupyter/minimal-notebook:2024-12-02"
    browser = catalog_hub.login(username)
    form = browser.get(f"hub/spawn/{username}").text
    field = "profile-option-data-engineering--image--unlisted-choice"
    # what the browser's script submits when "Other" is picked: the select's name moves to the text input
    assert f'data-name="{field}"' in form and 'value="unlisted-choice"' in form
    page = browser.spawn_form({"profile": "data-engineering", field: image,
                               "profile-option-data-engineering--size": "standard"})
    assert page.status_code == 200, page.text[:2000]
    try:
        catalog_hub.wait_ready(username, timeout=120)
        pod = cluster.get("pods", f"jupyter-{username}", NAMESPACE)
        assert pod["spec"]["containers"][0]["image"] == image
        labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
        assert labels["jupyterhub-ext/profile"] == "data-engineering"
        assert labels["jupyterhub-ext/option-image"] == "custom"
        assert labels["jupyterhub-ext/option-size"] == "standard"
        assert annotations["jupyterhub-ext/image"] == image
        assert catalog_hub.server_get(username, "api/status").status_code == 200
    finally:
        catalog_hub.stop_server(username)
    cluster.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=60)


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
