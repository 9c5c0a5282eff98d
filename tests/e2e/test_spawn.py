"""A real hub with vanilla KubeSpawner: spawn through the REST API and the form, reach the server through the
proxy, stop, delete; a profile no node pool accepts fails with the scheduler's reason. Then the same with our
ProfilesKubeSpawner and a small catalog: a CPU profile answers through the proxy, a hidden profile is refused
before Kubernetes, and a profile whose node pool does not exist (or whose pool's taint it does not tolerate)
fails with the scheduler's reason in the final message, the one a reloaded spawn page shows.

Runs on the emulated cluster, and on a real one (marker ``cluster``) when KUBECONFIG is set: see
docs/testing.md for the variables that real-cluster runs need (E2E_HUB_CONNECT_IP, E2E_IMAGE, ...).
"""

from __future__ import annotations

import html
import os

import pytest
import requests

from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.hub import SpawnFailed, start_kube_hub
from tests.harness.nodes import eks_pools

from .conftest import NAMESPACE, start_module_hub, stop_module_hub

pytestmark = pytest.mark.e2e

PROFILES = [
    {"display_name": "CPU", "slug": "cpu", "default": True, "kubespawner_override": {}},
    {"display_name": "Nowhere", "slug": "nowhere",
     "kubespawner_override": {"node_selector": {"karpenter.sh/nodepool": "no-such-pool"}, "start_timeout": 6}},
    {"display_name": "GPU without toleration", "slug": "gpu-untolerated",
     "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}, "start_timeout": 6}},
]
# one GPU node exists from the start, so the GPU profile meets its taint (Karpenter would not provision for a
# pod that does not tolerate the pool's taint either)
CLUSTER_OPTIONS = {"pools": eks_pools(delay=0.2, gpu={"initial": 1})}
HUB_CONFIG = f"c.KubeSpawner.profile_list = {PROFILES!r}"


@pytest.fixture(scope="module", params=["emulated", pytest.param("cluster", marks=pytest.mark.cluster)])
def kube(request):
    if request.param == "emulated":
        yield request.getfixturevalue("cluster")
        return
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG is not set: no real cluster to run against")
    if not os.environ.get("E2E_HUB_CONNECT_IP"):
        pytest.skip("E2E_HUB_CONNECT_IP is not set: pods need an address of this machine to reach the hub")
    from tests.harness.real_cluster import RealCluster
    real = RealCluster(namespace=NAMESPACE)
    real.ensure_namespace(NAMESPACE)
    yield real


def _real_cluster_options(kube) -> dict:
    if kube.emulated:
        return {}
    return dict(hub_connect_ip=os.environ["E2E_HUB_CONNECT_IP"],
                image=os.environ.get("E2E_IMAGE", "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"),
                start_timeout=int(os.environ.get("E2E_START_TIMEOUT", "300")))


@pytest.fixture(scope="module")
def kube_hub(request, kube):
    hub = start_module_hub(request, kube, NAMESPACE, **_real_cluster_options(kube))
    yield hub
    stop_module_hub(request, hub)
    if not kube.emulated and module_failed(request):
        with open(artifact_dir("test_spawn/real-cluster") / "events.txt", "w") as f:
            f.write("\n".join(kube.event_messages(NAMESPACE)))


def _timeout(kube) -> float:
    return 60 if kube.emulated else float(os.environ.get("E2E_START_TIMEOUT", "300")) + 30


def test_rest_spawn_answers_through_proxy_and_stop_removes_pod(kube, kube_hub, username):
    r = kube_hub.spawn(username, {"profile": "cpu"})
    assert r.status_code in (201, 202), r.text
    server = kube_hub.wait_ready(username, timeout=_timeout(kube))
    assert server["url"] == f"/user/{username}/"

    status = kube_hub.server_get(username, "api/status")
    assert status.status_code == 200, status.text
    assert "started" in status.json()

    pod = kube.get("pods", f"jupyter-{username}", NAMESPACE)
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["labels"]["component"] == "singleuser-server"
    assert pod["metadata"]["labels"]["hub.jupyter.org/username"] == username
    pvc = kube.get("persistentvolumeclaims", f"claim-{username}", NAMESPACE)
    assert pvc["status"]["phase"] == "Bound"
    reasons = [e["reason"] for e in kube.events(NAMESPACE, f"jupyter-{username}")]
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons), reasons  # Pulled: pulled or present
    pulled = kube.events(NAMESPACE, f"jupyter-{username}", "Pulled")
    assert any(f'"{pod["spec"]["containers"][0]["image"]}"' in e["message"] for e in pulled), pulled
    if kube.emulated:
        assert pod["status"]["podIP"].startswith("127.") and pod["status"]["podIP"] != "127.0.0.1"
        # the server runs as the pod's user, with the PVC as its home
        code, out = kube.exec(NAMESPACE, f"jupyter-{username}", ["sh", "-c", "id -u; id -G; echo $HOME; pwd"])
        assert code == 0, out
        uid, groups, home, cwd = out.split("\n")[:4]
        assert uid == "1000" and "100" in groups.split() and home == "/home/jovyan" == cwd

    kube_hub.stop_server(username)
    kube.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=_timeout(kube))
    assert kube.find("persistentvolumeclaims", f"claim-{username}", NAMESPACE) is not None, \
        "stopping a server must keep the user's storage"
    assert kube_hub.user(username)["servers"] == {}


def test_form_spawn_opens_jupyterlab_and_home_persists(kube, kube_hub, username):
    browser = kube_hub.login(username)
    page = browser.spawn_form({"profile": "cpu"})
    assert page.status_code == 200, page.text[:500]
    kube_hub.wait_ready(username, timeout=_timeout(kube))
    lab = browser.open_server("lab")  # OAuth with the hub, as a browser does
    assert lab.status_code == 200 and "JupyterLab" in lab.text, (lab.status_code, lab.url)

    # a file written through the Jupyter contents API survives a restart of the server (PVC home)
    body = {"type": "file", "format": "text", "content": "persisted"}
    headers = {"X-XSRFToken": browser.session.cookies.get("_xsrf", path=f"/user/{username}/") or ""}
    put = browser.session.put(browser.url(f"user/{username}/api/contents/keep.txt"), timeout=30, json=body,
                              headers=headers)
    if put.status_code == 403:  # no xsrf cookie for this path: write with the API token instead
        put = requests.put(f"{kube_hub.url}/user/{username}/api/contents/keep.txt", json=body, timeout=30,
                           headers={"Authorization": f"token {kube_hub.process.api_token}"})
    assert put.status_code in (200, 201), put.text
    kube_hub.stop_server(username)
    kube.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=_timeout(kube))
    kube_hub.start(username, {"profile": "cpu"}, timeout=_timeout(kube))
    got = kube_hub.server_get(username, "api/contents/keep.txt")
    assert got.status_code == 200 and got.json()["content"] == "persisted", got.text
    kube_hub.stop_server(username)


def test_delete_user_deletes_storage(kube, kube_hub, username):
    kube_hub.start(username, {"profile": "cpu"}, timeout=_timeout(kube))
    kube_hub.stop_server(username)
    kube_hub.delete_user(username)
    kube.wait_gone("persistentvolumeclaims", f"claim-{username}", NAMESPACE, timeout=_timeout(kube))
    assert kube_hub.user(username) is None


@pytest.mark.parametrize("profile, reason", [
    ("nowhere", "didn't match Pod's node affinity/selector"),
    ("gpu-untolerated", "1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint {nvidia.com/gpu: true}"),
])
def test_profile_no_pool_accepts_fails_with_scheduler_reason(kube, kube_hub, username, profile, reason):
    if not kube.emulated and profile == "gpu-untolerated":
        pytest.skip("depends on the emulated GPU pool's taint")
    with pytest.raises(SpawnFailed) as failed:
        kube_hub.start(username, {"profile": profile}, timeout=_timeout(kube))
    # what the spawn-pending page shows the user: the scheduler's own explanation, then the failure
    shown = "\n".join(failed.value.messages)
    assert reason in shown, shown
    assert "nodes are available" in shown
    assert "Spawn failed" in failed.value.message
    # the hub gave up and cleaned up: no pod left, and the hub is healthy
    kube.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=30)
    assert kube_hub.api("GET", "/").status_code == 200
    if kube.emulated:
        pending = kube.events(NAMESPACE, f"jupyter-{username}", "FailedScheduling")
        assert pending and all(e["type"] == "Warning" and e["source"]["component"] == "default-scheduler"
                               for e in pending)


# --- ProfilesKubeSpawner -------------------------------------------------------------------------------------------

# No image in the catalog: the hub's (E2E_IMAGE on a real cluster). A profile's own short start_timeout makes the
# unschedulable ones fail in seconds, on a real cluster too.
CATALOG = [
    {"slug": "cpu", "display_name": "CPU", "default": True, "hardware": {"kind": "cpu"}},
    {"slug": "gpu", "display_name": "GPU (gpu-users only)", "access": {"groups": ["gpu-users"]},
     "hardware": {"kind": "gpu", "gpus": 1, "node_pool": "gpu"}},
    {"slug": "nowhere", "display_name": "A node pool that does not exist",
     "hardware": {"kind": "cpu", "node_pool": "no-such-pool"}, "kubespawner_override": {"start_timeout": 8}},
    {"slug": "gpu-pool-untolerated", "display_name": "CPU profile on the (tainted) GPU pool",
     "hardware": {"kind": "cpu", "node_pool": "gpu"}, "kubespawner_override": {"start_timeout": 8}},
]


@pytest.fixture(scope="module")
def profiles_hub(request, kube):
    """A hub with ProfilesKubeSpawner and CATALOG, JupyterHub's own slow_spawn_timeout (as z2jh): a refused
    request is answered by the request itself."""
    config = "\n".join([f"c.ProfilesKubeSpawner.profiles = {CATALOG!r}", "c.ProfilesKubeSpawner.home_mode = 'none'"])
    hub = start_kube_hub(kube.kubeconfig, namespace=NAMESPACE, config=config, name="e2e-test_spawn-profiles",
                         spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner", storage="none",
                         slow_spawn_timeout=None, **_real_cluster_options(kube))
    yield hub
    if module_failed(request):
        save_file(hub.process.log_path, artifact_dir("test_spawn"), "profiles-hub.log")
    hub.process.stop()


def test_profiles_cpu_profile_answers_through_proxy(kube, profiles_hub, username):
    server = profiles_hub.start(username, {"profile": "cpu"}, timeout=_timeout(kube))
    assert server["url"] == f"/user/{username}/"
    status = profiles_hub.server_get(username, "api/status")
    assert status.status_code == 200 and "started" in status.json(), status.text
    pod = kube.get("pods", f"jupyter-{username}", NAMESPACE)
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["labels"]["jupyterhub-ext/profile"] == "cpu"
    assert pod["metadata"]["labels"]["hub.jupyter.org/username"] == username
    profiles_hub.stop_server(username)
    kube.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=_timeout(kube))
    assert profiles_hub.user(username)["servers"] == {}


def test_profiles_hidden_profile_is_refused_before_kubernetes(kube, profiles_hub, username):
    profiles_hub.ensure_user(username)
    before = kube.requests.count("create", "pods") if kube.emulated else None
    r = profiles_hub.spawn(username, {"profile": "gpu"})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["message"] == ("Unknown profile 'gpu', or not one you may start. Your profiles: cpu, nowhere, "
                                   "gpu-pool-untolerated.")
    assert kube.find("pods", f"jupyter-{username}", NAMESPACE) is None
    if kube.emulated:
        assert kube.requests.count("create", "pods") == before
    assert profiles_hub.server_model(username) is None


@pytest.mark.parametrize("profile, reason", [
    ("nowhere", "didn't match Pod's node affinity/selector"),
    ("gpu-pool-untolerated", "node(s) had untolerated taint {nvidia.com/gpu: true}"),
])
def test_profiles_no_pool_accepts_final_message_has_scheduler_reason(kube, profiles_hub, username, profile,
                                                                       reason):
    """JupyterHub alone ends such a start with an empty 'Spawn failed: ' (and KubeSpawner, with the profile's
    own start_timeout, with 'pod ... did not start in 8 seconds!'): the reason was only in the progress events,
    gone once the page is reloaded. ProfilesKubeSpawner's final message carries the scheduler's words."""
    if not kube.emulated and profile == "gpu-pool-untolerated":
        pytest.skip("depends on the emulated GPU pool's taint")
    browser = profiles_hub.login(username)
    expected = "your server did not start within 8 seconds: no node can run it yet (0/"
    r = profiles_hub.spawn(username, {"profile": profile})
    if r.status_code == 202:  # the start outlived JupyterHub's slow_spawn_timeout (10 s): a slow machine or API
        with pytest.raises(SpawnFailed):
            profiles_hub.wait_ready(username, timeout=_timeout(kube))
    else:  # within it, the request itself answers with the reason
        assert r.status_code == 500 and r.json()["message"].startswith(expected), (r.status_code, r.text)
    final = profiles_hub.last_spawn_error(username)
    assert final.startswith(f"Spawn failed: {expected}"), final
    assert "nodes are available: " in final and reason in final, final
    # what a reloaded spawn-pending page shows, and what the progress endpoint keeps
    page = browser.pending_page()
    assert "The latest attempt to start your server" in page.text
    shown = html.unescape(page.text)
    assert "your server did not start within 8 seconds: no node can run it yet" in shown and reason in shown, \
        page.text[-3000:]
    if kube.emulated:
        assert kube.events(NAMESPACE, f"jupyter-{username}", "FailedScheduling")
    kube.wait_gone("pods", f"jupyter-{username}", NAMESPACE, timeout=30)
    assert profiles_hub.api("GET", "/").status_code == 200
