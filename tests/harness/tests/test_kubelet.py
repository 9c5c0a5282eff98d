"""The local kubelet, scheduler, Karpenter and volume controller together: pods become real processes."""

from __future__ import annotations

import os
import socket
import time
import urllib.request

import pytest

from tests.harness.cluster import EmulatedCluster
from tests.harness.nodes import GPU_TAINT, Accelerators, NodePool

pytestmark = pytest.mark.e2e
NS = "work"


@pytest.fixture(scope="module")
def cluster():
    pools = [NodePool("default", "m6i.xlarge", initial=1, delay=0.1),
             NodePool("gpu", "g5.xlarge", taints=[GPU_TAINT], delay=0.3, limit=2),
             NodePool("mig", "p4d.24xlarge", taints=[GPU_TAINT], delay=0.1,
                      accelerators=Accelerators(mig_profile="1g.5gb"))]
    with EmulatedCluster(pools=pools, namespaces=(NS,), backoff_base=0.2, backoff_max=1.0,
                         missing_images=["registry.example/missing:*"], scheduler_retry=0.3) as c:
        yield c


_n = iter(range(10**6))


def make_pod(cluster, command, name=None, **spec):
    name = name or f"p{next(_n)}"
    containers = spec.pop("containers", None) or [{"name": "main", "image": "busybox:1.36", "command": command,
                                                   **spec.pop("container", {})}]
    cluster.create("pods", {"metadata": {"name": name, "labels": spec.pop("labels", {})},
                            "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, **spec}}, NS)
    return name


def running(p):
    return p["status"].get("phase") == "Running" and all(
        c.get("ready") for c in p["status"].get("containerStatuses") or [{}])


def terminated(container="main"):
    def check(p):
        for cs in p["status"].get("containerStatuses") or []:
            if cs["name"] == container and ("terminated" in cs["state"] or "terminated" in cs.get("lastState", {})):
                return True
        return False
    return check


def test_env_identity_and_address(cluster):
    cluster.create("secrets", {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}, NS)
    name = make_pod(cluster, ["sh", "-c", "env; id -u; id -G; hostname; pwd; sleep 60"], container={
        "workingDir": "/tmp",
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "BASE", "value": "x"}, {"name": "DERIVED", "value": "$(BASE)-y-$$(BASE)"},
                {"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:8888/user/a/"}]},
        securityContext={"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100, "supplementalGroups": [4242]})
    pod = cluster.wait_for_pod(NS, name)
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    log = cluster.wait_for(lambda: (lambda t: t if "\n/tmp" in t else None)(cluster.logs(NS, name)), 10)
    lines = log.splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert env["TOKEN"] == "s3cret" and env["MY_IP"] == ip and env["DERIVED"] == "x-y-$(BASE)"
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://{ip}:8888/user/a/"  # the pod's own 0.0.0.0
    assert env["HOSTNAME"] == name and env["HOME"] == "/home/jovyan"
    assert lines[-4] == "1000" and set(lines[-3].split()) == {"100", "4242"}
    assert lines[-2] == name and lines[-1] == "/tmp"
    code, out = cluster.exec(NS, name, ["hostname"])  # kubectl exec runs in the pod's namespaces, UTS included
    assert code == 0 and out.strip() == name
    cluster.delete("pods", name, NS)
    cluster.wait_gone("pods", name, NS, timeout=10)


def test_every_pod_has_its_own_address_for_the_same_port(cluster):
    serve = ["python3", "-c", "import http.server, os; http.server.HTTPServer((os.environ['IP'], 8888), "
                              "http.server.SimpleHTTPRequestHandler).serve_forever()"]
    env = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    names = [make_pod(cluster, serve, container={"env": env, "ports": [{"containerPort": 8888}],
                                                 "readinessProbe": {"tcpSocket": {"port": 8888}, "periodSeconds": 1}})
             for _ in range(2)]
    pods = [cluster.wait_for_pod(NS, n, timeout=20) for n in names]
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 2
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8888/", timeout=5) as r:
            assert r.status == 200
    for n in names:
        cluster.delete("pods", n, NS)


def test_volumes_subpath_and_read_only(cluster):
    cluster.create("persistentvolumeclaims", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, NS)
    script = ("set -x; echo mine > /home/jovyan/file && echo HOME-OK; "
              "touch /srv/ro/x || echo RO-DENIED; cat /srv/ro/seed; "
              "echo layer > /usr/local/written-by-a-pod && echo LAYER-OK; "
              "echo scratch > /cache/s && echo EMPTYDIR-OK; sleep 60")
    name = make_pod(cluster, ["sh", "-c", script], container={"volumeMounts": [
        {"name": "data", "mountPath": "/home/jovyan", "subPath": "users/alice"},
        {"name": "data", "mountPath": "/srv/ro", "subPath": "shared", "readOnly": True},
        {"name": "cache", "mountPath": "/cache"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "cache", "emptyDir": {}}],
        securityContext={"runAsUser": 0})  # even root cannot write to a read-only mount
    # seed the shared dir as an admin would, once the claim is bound (gp3 binds for the first consumer)
    root = cluster.wait_for(lambda: cluster.claim_dir(NS, "data"), 10)
    pod = cluster.wait_for_pod(NS, name, timeout=15)
    assert pod["status"]["phase"] == "Running"
    log = cluster.wait_for(lambda: (lambda t: t if "EMPTYDIR-OK" in t else None)(cluster.logs(NS, name)), 10)
    assert "HOME-OK" in log and "RO-DENIED" in log and "Read-only file system" in log
    # writes outside volumes land in the container's own layer, never on the host
    assert "LAYER-OK" in log and not os.path.exists("/usr/local/written-by-a-pod")
    with open(os.path.join(root, "users", "alice", "file")) as f:
        assert f.read() == "mine\n"
    assert os.path.isdir(os.path.join(root, "shared"))
    assert cluster.get("persistentvolumeclaims", "data", NS)["status"]["phase"] == "Bound"
    # the claim is protected while used: deleting it waits for the pod
    cluster.delete("persistentvolumeclaims", "data", NS)
    assert cluster.get("persistentvolumeclaims", "data", NS)["metadata"]["deletionTimestamp"]
    cluster.delete("pods", name, NS, grace_period_seconds=0)
    cluster.wait_gone("persistentvolumeclaims", "data", NS, timeout=10)
    cluster.wait_for(lambda: not os.path.exists(root), 10, what="the volume's data deleted (reclaim Delete)")


def test_image_pull_events_follow_the_pull_policy(cluster):
    """Pulling/Pulled as a kubelet reports them: the first pod of an image on a node pulls it ("Successfully
    pulled"), the next with IfNotPresent finds it "already present on machine", Always pulls again."""
    image = f"busybox:pull-{next(_n)}"
    first = make_pod(cluster, ["sh", "-c", "sleep 60"], containers=[
        {"name": "main", "image": image, "command": ["sh", "-c", "sleep 60"]}])
    node = cluster.wait_for_pod(NS, first, timeout=10)["spec"]["nodeName"]
    pulled = cluster.events(NS, first, "Pulled")
    assert len(pulled) == 1 and pulled[0]["type"] == "Normal"
    assert pulled[0]["message"].startswith(f'Successfully pulled image "{image}" in ')
    assert pulled[0]["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert [e["message"] for e in cluster.events(NS, first, "Pulling")] == [f'Pulling image "{image}"']
    again = {}
    for policy in ("IfNotPresent", "Always"):
        again[policy] = make_pod(cluster, None, nodeName=node, containers=[
            {"name": "main", "image": image, "imagePullPolicy": policy, "command": ["sh", "-c", "sleep 60"]}])
        cluster.wait_for_pod(NS, again[policy], timeout=10)
    present = cluster.events(NS, again["IfNotPresent"], "Pulled")
    assert [e["message"] for e in present] == [f'Container image "{image}" already present on machine']
    assert cluster.events(NS, again["IfNotPresent"], "Pulling") == []
    assert cluster.events(NS, again["Always"], "Pulling")
    assert cluster.events(NS, again["Always"], "Pulled")[0]["message"].startswith("Successfully pulled image")
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= {e["reason"] for e in cluster.events(NS, first)}
    for name in (first, *again.values()):
        cluster.delete("pods", name, NS, grace_period_seconds=0)


def test_post_start_hook_runs_before_running(cluster):
    name = make_pod(cluster, ["sh", "-c", "sleep 60"], container={"lifecycle": {"postStart": {"exec": {
        "command": ["sh", "-c", "sleep 1; echo seeded > /tmp/marker-$(hostname)"]}}}})
    seen_waiting = cluster.wait_for(lambda: (lambda p: p and p["status"].get("containerStatuses") and
                                             p["status"]["containerStatuses"][0]["state"].get("waiting"))(
        cluster.find("pods", name, NS)), 10)
    assert seen_waiting["reason"] == "ContainerCreating"
    cluster.wait_for_pod(NS, name, timeout=10)
    code, out = cluster.exec(NS, name, ["sh", "-c", f"cat /tmp/marker-{name}"])
    assert (code, out) == (0, "seeded\n")
    cluster.delete("pods", name, NS, grace_period_seconds=0)


def test_failing_post_start_hook_kills_the_container(cluster):
    name = make_pod(cluster, ["sh", "-c", "sleep 60"], container={"lifecycle": {"postStart": {"exec": {
        "command": ["sh", "-c", "echo broken; exit 7"]}}}})
    pod = cluster.wait_for_pod(NS, name, lambda p: (p["status"].get("containerStatuses") or [{}])[0].get(
        "restartCount", 0) >= 1, timeout=15)
    assert pod["status"]["phase"] == "Pending"  # never Running
    reasons = [e["reason"] for e in cluster.events(NS, name)]
    assert "FailedPostStartHook" in reasons and "Killing" in reasons and "BackOff" in reasons
    hook = cluster.events(NS, name, "FailedPostStartHook")[0]
    assert hook["type"] == "Warning" and hook["involvedObject"]["fieldPath"] == "spec.containers{main}"
    cluster.delete("pods", name, NS, grace_period_seconds=0)


@pytest.mark.parametrize("policy, code, phase", [("Never", 3, "Failed"), ("OnFailure", 0, "Succeeded"),
                                                 ("Never", 0, "Succeeded")])
def test_exit_codes_and_restart_policy(cluster, policy, code, phase):
    name = make_pod(cluster, ["sh", "-c", f"exit {code}"], restartPolicy=policy)
    pod = cluster.wait_for_pod(NS, name, lambda p: p["status"]["phase"] == phase, timeout=10)
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == code and state["reason"] == ("Completed" if code == 0 else "Error")
    cluster.delete("pods", name, NS)


def test_crash_loop_counts_restarts(cluster):
    name = make_pod(cluster, ["sh", "-c", "exit 1"])
    pod = cluster.wait_for_pod(NS, name, lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 2, 15)
    cs = pod["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always keeps the pod Running, as a real kubelet
    cluster.delete("pods", name, NS, grace_period_seconds=0)


def test_start_errors_are_reported(cluster):
    name = make_pod(cluster, ["no-such-binary"], restartPolicy="Never")
    pod = cluster.wait_for_pod(NS, name, lambda p: p["status"]["phase"] == "Failed", timeout=10)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 128 and term["reason"] == "StartError"
    assert 'exec: "no-such-binary": executable file not found in $PATH' in term["message"]
    missing = make_pod(cluster, ["true"], containers=[{"name": "main", "image": "registry.example/missing:1"}])
    cluster.wait_for_pod(NS, missing, lambda p: p["status"]["containerStatuses"][0]["state"].get("waiting", {}).get(
        "reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=10)
    assert any("Failed to pull image" in m for m in cluster.event_messages(NS, missing))
    for n in (name, missing):
        cluster.delete("pods", n, NS, grace_period_seconds=0)


def test_deletion_sends_sigterm_then_sigkill(cluster):
    polite = make_pod(cluster, ["sh", "-c", "trap 'echo TERM; exit 0' TERM; while true; do sleep 0.1; done"])
    stubborn = make_pod(cluster, ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    for n in (polite, stubborn):
        cluster.wait_for_pod(NS, n)
    before = set(cluster.processes())
    t0 = time.monotonic()
    cluster.delete("pods", polite, NS, grace_period_seconds=2)
    cluster.wait_gone("pods", polite, NS, timeout=5)
    assert time.monotonic() - t0 < 1.9 and "TERM" in cluster.logs(NS, polite)  # did not wait for SIGKILL
    t0 = time.monotonic()
    cluster.delete("pods", stubborn, NS, grace_period_seconds=2)
    assert cluster.get("pods", stubborn, NS)["metadata"]["deletionTimestamp"]  # terminating, still listed
    cluster.wait_gone("pods", stubborn, NS, timeout=8)
    assert time.monotonic() - t0 >= 1.8  # killed after the grace period
    assert not (before & set(cluster.processes()))
    assert "Killing" in [e["reason"] for e in cluster.events(NS, stubborn)]


def test_init_containers_run_first_and_share_volumes(cluster):
    name = make_pod(cluster, None, containers=[{"name": "main", "image": "busybox:1", "command": [
        "sh", "-c", "cat /work/ready; sleep 60"], "volumeMounts": [{"name": "w", "mountPath": "/work"}]}],
        initContainers=[{"name": "prepare", "image": "busybox:1", "command": ["sh", "-c", "echo prepared > /work/ready"],
                         "volumeMounts": [{"name": "w", "mountPath": "/work"}]}],
        volumes=[{"name": "w", "emptyDir": {}}])
    pod = cluster.wait_for_pod(NS, name, timeout=15)
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert cluster.wait_for(lambda: "prepared" in cluster.logs(NS, name, "main"), 5)
    cluster.delete("pods", name, NS, grace_period_seconds=0)


def test_karpenter_provisions_the_pool_that_fits(cluster):
    gpu = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    name = make_pod(cluster, ["sleep", "60"], container={"resources": {"limits": {"nvidia.com/gpu": "1"}}}, **gpu)
    pod = cluster.wait_for_pod(NS, name, timeout=15)
    node = cluster.get("nodes", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["karpenter.sh/nodepool"] == "gpu"
    first_seen = [e["reason"] for e in sorted(cluster.events(NS, name), key=lambda e: e["metadata"]["name"])]
    assert first_seen.index("FailedScheduling") < first_seen.index("Nominated") < first_seen.index("Scheduled")
    # MIG slices are unknown to Karpenter: the existing MIG nodes only (none here) -> stays Pending
    mig = make_pod(cluster, ["sleep", "60"], container={"resources": {"limits": {"nvidia.com/mig-1g.5gb": "1"}}},
                   **gpu)
    time.sleep(1.5)
    assert cluster.get("pods", mig, NS)["status"]["phase"] == "Pending"
    assert cluster.nodes("mig") == []
    msg = cluster.events(NS, mig, "FailedScheduling")[-1]["message"]
    assert "Insufficient nvidia.com/mig-1g.5gb" in msg
    for n in (name, mig):
        cluster.delete("pods", n, NS, grace_period_seconds=0)


def test_pod_log_endpoint(cluster):
    name = make_pod(cluster, ["sh", "-c", "echo hello from the pod; sleep 60"])
    cluster.wait_for_pod(NS, name)
    cluster.wait_for(lambda: "hello" in cluster.logs(NS, name), 5)
    with urllib.request.urlopen(f"{cluster.url}/api/v1/namespaces/{NS}/pods/{name}/log", timeout=5) as r:
        assert b"hello from the pod" in r.read()
    cluster.delete("pods", name, NS, grace_period_seconds=0)


def test_without_mount_namespaces_paths_are_relocated(tmp_path):
    """isolation="none" (non-root laptops): mount paths become symlinks under the pod's directory, the working
    directory and $HOME follow, the process runs as the current user; read-only is not enforced."""
    with EmulatedCluster(pools=[NodePool("default", "m6i.xlarge", initial=1)], namespaces=(NS,),
                         isolation="none") as c:
        c.create("persistentvolumeclaims", {"metadata": {"name": "home"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, NS)
        name = make_pod(c, ["sh", "-c", 'echo hi > "$HOME/note" && pwd && sleep 30'], container={
            "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]},
            volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}])
        c.wait_for_pod(NS, name, timeout=15)
        log = c.wait_for(lambda: (lambda t: t if t.strip() else None)(c.logs(NS, name)), 10)
        assert log.strip() == os.path.realpath(c.claim_dir(NS, "home"))  # the working dir is the volume
        with open(os.path.join(c.claim_dir(NS, "home"), "note")) as f:
            assert f.read() == "hi\n"


def test_karpenter_removes_nodes_left_empty():
    pool = NodePool("burst", "m6i.large", delay=0.1, consolidate_after=0.5)
    with EmulatedCluster(pools=[pool], namespaces=(NS,), scheduler_retry=0.3) as c:
        name = make_pod(c, ["sleep", "60"])
        pod = c.wait_for_pod(NS, name, timeout=15)
        assert c.nodes("burst")[0]["metadata"]["name"] == pod["spec"]["nodeName"]
        c.delete("pods", name, NS, grace_period_seconds=0)
        c.wait_for(lambda: c.nodes("burst") == [], timeout=10, what="the empty node consolidated")
