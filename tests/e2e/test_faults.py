"""Faults at each step of spawn and stop, with a real hub on the emulated API. The spawner is ours,
ProfilesKubeSpawner, configured exactly as the z2jh chart configures it for the AKS classroom
(helm/values.yaml + helm/values-aks-classroom.yaml): a per-user PVC created at the first start, so every step
(PVC create, pod create, watch, pod delete, PVC delete) is exercised.

For every fault: the hub stays up, the user is told something clear (the spawn fails with the API's own
message, or succeeds because the spawner retried), and no pod or PVC is left that should not be. A PVC
surviving a failed spawn is expected: it is the user's storage and outlives servers by design.

Faults are scoped to one user's objects (jupyter-<user>, claim-<user>) so the module's tests can share a hub.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.harness.hub import SpawnFailed
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND

from .conftest import NAMESPACE, start_module_hub, stop_module_hub, chart_spawner_config

pytestmark = pytest.mark.e2e

HUB_OPTIONS = {"request_retry_timeout": 10, "start_timeout": 30, "storage": "none"}
# What is under test is the spawner against API faults, not the notebook server: the stdlib stand-in starts in
# milliseconds (test_spawn.py and test_catalog.py run the real jupyterhub-singleuser).
CLUSTER_OPTIONS = {"command_map": {**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}}


@pytest.fixture(scope="module")
def hub(request, cluster):
    request.module.HUB_CONFIG = "\n".join([
        chart_spawner_config(cluster.kubeconfig, "aks-classroom"),
        "c.KubeSpawner.start_timeout = 15",
        "c.KubeSpawner.k8s_api_request_retry_timeout = 10",
    ])
    h = start_module_hub(request, cluster, NAMESPACE)
    yield h
    stop_module_hub(request, h)


def pod(u):
    return f"jupyter-{u}"


def claim(u):
    return f"claim-{u}"


def assert_hub_healthy(hub):
    assert hub.process.alive
    assert hub.api("GET", "/").status_code == 200


def assert_no_pod(cluster, user, timeout=20):
    cluster.wait_gone("pods", pod(user), NAMESPACE, timeout=timeout)


def assert_consistent(hub, cluster, user, timeout=5):
    """What the hub believes and what runs agree: a running server has a pod, a stopped one has none."""
    model = hub.server_model(user)
    running = bool(model and (model.get("ready") or model.get("pending")))
    if running:
        assert cluster.find("pods", pod(user), NAMESPACE) is not None, f"hub says {user} runs, but no pod"
    else:
        assert_no_pod(cluster, user, timeout)


def test_the_hub_runs_profiles_kube_spawner_with_per_user_claims(cluster, hub, username):
    assert "Using Spawner: jupyterhub_ext.spawner.ProfilesKubeSpawner" in hub.process.log_text()
    hub.start(username, timeout=60)
    pod_ = cluster.get("pods", pod(username), NAMESPACE)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod_["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [claim(username)]
    hub.stop_server(username)
    assert_no_pod(cluster, username)


def test_unschedulable_spawn_failure_names_the_reason(cluster, hub, username):
    nodes = [n["metadata"]["name"] for n in cluster.list("nodes")]
    cluster.set_provisioning(False)
    for n in nodes:
        cluster.patch("nodes", n, {"spec": {"unschedulable": True}})
    try:
        with pytest.raises(SpawnFailed) as failed:
            hub.start(username, timeout=60)
    finally:
        for n in nodes:
            cluster.patch("nodes", n, {"spec": {"unschedulable": None}})
        cluster.set_provisioning(True)
    reason = "node(s) were unschedulable"
    assert any(reason in m for m in failed.value.messages[:-1])  # shown while pending: holds today
    assert_no_pod(cluster, username)
    # and in the final message, which JupyterHub's own timeout leaves empty ('Spawn failed: '): ProfilesKubeSpawner
    # gives up just before it with what the pod waits for (jupyterhub_ext/pending.py)
    assert reason in failed.value.message, failed.value.message
    assert "did not start within" in failed.value.message


# --- spawn: PVC creation --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, shown", [(500, "Internal error occurred"), (403, "exceeded quota")])
def test_pvc_create_refused_fails_spawn_with_api_message(cluster, hub, username, status, shown):
    fault = cluster.faults.add("create", "persistentvolumeclaims", times=1, status=status,
                               namespace=NAMESPACE, name=None)
    fault.name = None  # the body names the claim: match any create in the namespace, once
    with pytest.raises(SpawnFailed) as failed:
        hub.start(username, timeout=60)
    assert fault.hits == 1
    assert shown in failed.value.message, failed.value.message
    assert_hub_healthy(hub)
    assert_no_pod(cluster, username)
    assert cluster.find("persistentvolumeclaims", claim(username), NAMESPACE) is None
    if status == 500:  # a transient error: the next try works
        hub.start(username, timeout=60)
        assert cluster.get("pods", pod(username), NAMESPACE)["status"]["phase"] == "Running"
        hub.stop_server(username)
        assert_no_pod(cluster, username)


@pytest.mark.parametrize("applied", [False, True], ids=["lost-request", "lost-response"])
def test_pvc_create_timeout_is_retried(cluster, hub, username, applied):
    """A hung create (KubeSpawner's 3 s request timeout fires) is retried; if the first one had in fact
    created the claim, the retry's 409 AlreadyExists counts as success."""
    since = time.monotonic()
    fault = cluster.faults.timeout("create", "persistentvolumeclaims", times=1, hang=20, after=applied,
                                   namespace=NAMESPACE)
    hub.start(username, timeout=60)
    assert fault.hits == 1
    creates = cluster.requests.records("create", "persistentvolumeclaims", since=since)
    assert len(creates) >= 2
    if applied:
        assert any(r.status == 409 for r in creates)
    assert len(cluster.list("persistentvolumeclaims", NAMESPACE, field_selector=f"metadata.name={claim(username)}")) == 1
    assert_hub_healthy(hub)
    hub.stop_server(username)
    assert_no_pod(cluster, username)


# --- spawn: pod creation --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, shown", [(500, "Internal error occurred"), (403, "exceeded quota")])
def test_pod_create_refused_fails_spawn_with_api_message(cluster, hub, username, status, shown):
    fault = cluster.faults.add("create", "pods", times=1, status=status, namespace=NAMESPACE)
    with pytest.raises(SpawnFailed) as failed:
        hub.start(username, timeout=60)
    assert fault.hits == 1
    assert shown in failed.value.message, failed.value.message
    assert_hub_healthy(hub)
    assert_no_pod(cluster, username)
    # the claim is the user's storage: kept (Pending: gp3 binds when a pod first uses it)
    assert cluster.get("persistentvolumeclaims", claim(username), NAMESPACE)["status"]["phase"] == "Pending"
    assert hub.server_model(username) is None


@pytest.mark.parametrize("fault_kind", ["conflict", "lost-response"])
def test_pod_create_conflict_or_lost_response_recovers(cluster, hub, username, fault_kind):
    """409 on create makes KubeSpawner delete the 'existing' pod and try again. A create whose response was
    lost leaves a real pod: vanilla KubeSpawner's retry meets it as 409, deletes it and creates it again;
    ProfilesKubeSpawner recognises its own start's pod (an annotation) and goes on with it, no delete.
    Either way: one running pod, the user's."""
    since = time.monotonic()
    if fault_kind == "conflict":
        fault = cluster.faults.add("create", "pods", times=1, status=409, namespace=NAMESPACE)
    else:
        fault = cluster.faults.timeout("create", "pods", times=1, hang=20, after=True, namespace=NAMESPACE)
    hub.start(username, timeout=90)
    assert fault.hits == 1
    pods = cluster.list("pods", NAMESPACE, label_selector=f"hub.jupyter.org/username={username}")
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"
    assert hub.server_get(username).status_code == 200
    deletes = cluster.requests.count("delete", "pods", name=pod(username), since=since)
    if fault_kind == "conflict":
        assert deletes >= 1
    else:
        assert deletes == 0
        assert cluster.requests.count("create", "pods", since=since) == 1  # the lost one, adopted
        assert pods[0]["metadata"]["annotations"]["jupyterhub-ext/start"]
    hub.stop_server(username)
    assert_no_pod(cluster, username)
    assert_hub_healthy(hub)


# --- spawn: watches -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault_kind", ["dropped", "500", "410-gone"])
def test_watch_faults_during_spawn_are_survived(cluster, hub, username, fault_kind):
    """The hub's pod and event reflectors lose their watches (and, for 500/410, fail to re-establish them a
    few times) just as a spawn begins: they relist, watch again, and the spawn completes."""
    if cluster.open_watches("pods") == 0:  # KubeSpawner starts its reflectors with the first spawn
        hub.start(f"{username}-warmup", timeout=60)
        hub.stop_server(f"{username}-warmup")
    since = time.monotonic()
    cluster.wait_for(lambda: cluster.open_watches("pods") >= 1, timeout=30, what="the hub's pod watch")
    faults = []
    if fault_kind == "500":
        faults = [cluster.faults.add("watch", "pods", times=2, status=500, namespace=NAMESPACE),
                  cluster.faults.add("watch", "events", times=2, status=500, namespace=NAMESPACE)]
    elif fault_kind == "410-gone":
        faults = [cluster.faults.add("watch", "pods", times=1, status=410, namespace=NAMESPACE)]
    assert cluster.drop_watches() >= 1  # the reflectors reconnect straight into the faults
    r = hub.spawn(username)
    assert r.status_code == 202, r.text
    hub.wait_ready(username, timeout=90)
    # the reflectors go on until their watches are back, through every injected failure
    cluster.wait_for(lambda: all(f.hits == f.times for f in faults), timeout=30, what="the faults consumed")
    cluster.wait_for(lambda: cluster.open_watches("pods") >= 1, timeout=30, what="the pod watch restored")
    assert cluster.requests.count("watch", "pods", since=since) >= 1 + sum(f.times for f in faults if f.resource == "pods")
    assert hub.server_get(username).status_code == 200
    hub.stop_server(username)
    assert_no_pod(cluster, username)
    assert_hub_healthy(hub)


# --- stop -----------------------------------------------------------------------------------------------------------

def test_pod_delete_timeout_on_stop_is_retried(cluster, hub, username):
    hub.start(username, timeout=60)
    fault = cluster.faults.timeout("delete", "pods", times=1, hang=20, name=pod(username), namespace=NAMESPACE)
    hub.stop_server(username, timeout=60)
    assert fault.hits == 1
    assert_no_pod(cluster, username)
    assert cluster.processes(NAMESPACE, pod(username)) == []
    assert_hub_healthy(hub)


def test_pod_delete_error_on_stop_leaves_no_orphan(cluster, hub, username):
    """One refused delete (500) while stopping: ProfilesKubeSpawner retries it (vanilla KubeSpawner 7 raises,
    JupyterHub records the server as stopped and the pod keeps running)."""
    hub.start(username, timeout=60)
    fault = cluster.faults.add("delete", "pods", times=1, status=500, name=pod(username), namespace=NAMESPACE)
    hub.api("DELETE", f"/users/{username}/server")
    cluster.wait_for(lambda: fault.hits == 1, timeout=30, what="the delete to be refused")
    cluster.wait_for(lambda: not (hub.server_model(username) or {}).get("pending"), timeout=30,
                     what="the stop to finish")
    assert_hub_healthy(hub)
    try:
        assert_no_pod(cluster, username)
        assert cluster.processes(NAMESPACE, pod(username)) == []
        assert_consistent(hub, cluster, username)
    finally:
        if cluster.find("pods", pod(username), NAMESPACE):
            cluster.delete("pods", pod(username), NAMESPACE, grace_period_seconds=0)


FORBIDDEN = 'pods "{pod}" is forbidden: User "system:serviceaccount:jhub:hub" cannot delete resource "pods" in ' \
            'API group "" in the namespace "{ns}"'


def stop_refused(hub, user, fault, timeout=60):
    """Ask for the stop and wait for it to end; the DELETE's answer."""
    r = hub.api("DELETE", f"/users/{user}/server")
    cluster_wait = time.monotonic() + timeout
    while (hub.server_model(user) or {}).get("pending") and time.monotonic() < cluster_wait:
        time.sleep(0.2)
    assert fault.hits >= 1
    return r


def test_pod_delete_forbidden_on_stop_is_not_retried_and_the_pod_goes_once_allowed(cluster, hub, username):
    """A refusal that waiting cannot fix (403) ends the stop at once, as in KubeSpawner (only 429/5xx are
    retried). JupyterHub 5 and 6 then record the server as stopped whatever the spawner says, and drop its error
    silently: the user is not stuck (they may start again), the operator reads the API's refusal in the hub's
    log, and the pod that kept running is deleted as soon as the API allows it, not left holding its node."""
    hub.start(username, timeout=60)
    uid = cluster.get("pods", pod(username), NAMESPACE)["metadata"]["uid"]
    fault = cluster.faults.add("delete", "pods", times=None, status=403, reason="Forbidden", name=pod(username),
                               namespace=NAMESPACE, message=FORBIDDEN.format(pod=pod(username), ns=NAMESPACE))
    try:
        r = stop_refused(hub, username, fault)
        assert r.status_code == 204, r.text  # the stop ended at once: one refused delete, no retry of a 403
        assert hub.server_model(username) is None  # what the user and the admin page see: stopped
        assert_hub_healthy(hub)
        logged = hub.process.wait_for_log(rf"Stopping {username}: the pod {NAMESPACE}/{pod(username)} could not "
                                          r"be deleted \(403 Forbidden: pods .* is forbidden: .*\); it is deleted as "
                                          r"soon as the Kubernetes API allows it")
        assert logged
        assert cluster.get("pods", pod(username), NAMESPACE)["metadata"]["uid"] == uid  # still there, refused
    finally:
        cluster.faults.remove(fault)
    # the refusal lifted: the leftover goes without anyone starting or stopping anything
    assert_no_pod(cluster, username, timeout=60)
    assert cluster.processes(NAMESPACE, pod(username)) == []
    hub.process.wait_for_log(rf"Deleted pod {NAMESPACE}/{pod(username)} that a failed delete had left")
    hub.start(username, timeout=60)
    hub.stop_server(username)
    assert_no_pod(cluster, username)


def test_next_start_while_the_leftover_cannot_be_deleted_says_why(cluster, hub, username):
    """The user starts again while the API still refuses to delete the pod a failed stop left: the start fails
    with that refusal in its message (not a stack trace), and works once the refusal is lifted."""
    hub.start(username, timeout=60)
    fault = cluster.faults.add("delete", "pods", times=None, status=403, reason="Forbidden", name=pod(username),
                               namespace=NAMESPACE, message=FORBIDDEN.format(pod=pod(username), ns=NAMESPACE))
    try:
        stop_refused(hub, username, fault)
        with pytest.raises(SpawnFailed) as failed:
            hub.start(username, timeout=60)
        assert f"the pod {NAMESPACE}/{pod(username)} could not be deleted (403 Forbidden: " in failed.value.message
        assert "is forbidden" in failed.value.message
        assert_hub_healthy(hub)
    finally:
        cluster.faults.remove(fault)
    assert_no_pod(cluster, username, timeout=60)
    hub.start(username, timeout=60)
    hub.stop_server(username)
    assert_no_pod(cluster, username)


def test_pod_delete_failing_past_the_retries_is_repaired_by_next_start(cluster, hub, username):
    """Deletes refused (503) for longer than k8s_api_request_retry_timeout: the stop gives up, JupyterHub
    records the server as stopped (as upstream) and the hub's log says which pod could not be deleted and why;
    once the API answers again, the next start replaces the leftover pod, so the user is never stuck and no
    second pod appears."""
    hub.start(username, timeout=60)
    first_uid = cluster.get("pods", pod(username), NAMESPACE)["metadata"]["uid"]
    fault = cluster.faults.add("delete", "pods", times=None, status=503, name=pod(username), namespace=NAMESPACE)
    try:
        r = stop_refused(hub, username, fault)
        assert r.status_code in (202, 204), r.text  # the retries may outlast JupyterHub's slow_stop_timeout
        cluster.wait_for(lambda: not (hub.server_model(username) or {}).get("pending"), timeout=60,
                         what="the stop to give up")
        assert fault.hits > 1  # retried
        assert hub.server_model(username) is None
        hub.process.wait_for_log(rf"Stopping {username}: the pod {NAMESPACE}/{pod(username)} could not be "
                                 r"deleted \(Could not delete pod .*\)")
        assert cluster.get("pods", pod(username), NAMESPACE)["metadata"]["uid"] == first_uid
    finally:
        cluster.faults.remove(fault)
    assert_hub_healthy(hub)
    hub.start(username, timeout=90)
    pods = cluster.list("pods", NAMESPACE, label_selector=f"hub.jupyter.org/username={username}")
    assert len(pods) == 1 and pods[0]["metadata"]["uid"] != first_uid
    hub.stop_server(username)
    assert_no_pod(cluster, username)


def test_pvc_delete_error_on_user_deletion_leaves_no_orphan(cluster, hub, username):
    """One refused claim delete (500) while the user is deleted: retried (vanilla KubeSpawner 7 gives up and
    JupyterHub deletes the user anyway, leaving the claim owned by nobody)."""
    hub.start(username, timeout=60)
    hub.stop_server(username)
    fault = cluster.faults.add("delete", "persistentvolumeclaims", times=1, status=500, name=claim(username),
                               namespace=NAMESPACE)
    r = hub.api("DELETE", f"/users/{username}")
    assert fault.hits >= 1
    assert_hub_healthy(hub)
    try:
        if r.status_code == 204:  # the hub forgot the user: its claim must be gone too
            cluster.wait_gone("persistentvolumeclaims", claim(username), NAMESPACE, timeout=5)
        else:  # or the failure is reported and the user kept, so deleting again can finish the job
            assert hub.user(username) is not None
    finally:
        if cluster.find("persistentvolumeclaims", claim(username), NAMESPACE):
            cluster.delete("persistentvolumeclaims", claim(username), NAMESPACE)


def test_concurrent_spawns_under_slow_api(cluster, hub, request):
    """Four users start together while every API call takes 200 ms more: all become ready, each with its
    own pod and address."""
    names = [f"slow-{request.node.nodeid.__hash__() % 1000}-{i}" for i in range(4)]
    fault = cluster.faults.slow(None, None, delay=0.2, namespace=NAMESPACE)
    errors = []

    def run(n):
        try:
            hub.start(n, timeout=120)
        except Exception as e:  # collected and reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
    finally:
        cluster.faults.remove(fault)
    assert not errors, errors
    pods = [cluster.get("pods", pod(n), NAMESPACE) for n in names]
    assert len({p["status"]["podIP"] for p in pods}) == 4
    for n in names:
        assert hub.server_get(n).status_code == 200
    for n in names:
        hub.stop_server(n)
    for n in names:
        assert_no_pod(cluster, n)
