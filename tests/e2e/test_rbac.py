"""The hub needs no RBAC beyond the z2jh chart's own hub Role (docs/deploy-eks.md says so; this is the proof).

ProfilesKubeSpawner runs as the chart configures it (``chart_spawner_config``) for the EKS base (catalog, EFS
home) and the AKS classroom (a PVC per user), and does everything a hub does against the Kubernetes API: the
form, a start to ready, a refused start, stop, start again, a stop whose pod delete fails once (retried), a start
whose pod create answer is lost (the adoption GET), and deleting the user (the claim delete). Every request the
emulated API received from the hub must then be allowed by the chart's Role.

Only the hub talks HTTP to the emulated API: the harness' kubelet, scheduler, Karpenter and volume controller,
and this test's own ``cluster.*`` calls, work on the store directly and are not in ``cluster.requests``.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.harness.artifacts import artifact_dir, module_failed, save_file
from tests.harness.cluster import EmulatedCluster
from tests.harness.hub import start_kube_hub
from tests.harness.k8s_api import RequestRecord
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND
from tests.harness.nodes import eks_pools
from tests.harness.platform import efs_objects, pools_from_platform

from .conftest import NAMESPACE, chart_spawner_config

# The hub's Role in the z2jh 4.4.0 chart (jupyterhub/templates/hub/rbac.yaml), bound to the hub's service
# account in the release namespace: (apiGroups, resources, verbs) per rule. The chart makes no ClusterRole for
# the hub, so nothing cluster-scoped (nodes, persistentvolumes, storageclasses) and no other namespace.
Z2JH_HUB_ROLE_RULES: tuple[tuple[frozenset[str], frozenset[str], frozenset[str]], ...] = (
    (frozenset({""}), frozenset({"pods", "persistentvolumeclaims", "secrets", "services"}),
     frozenset({"get", "watch", "list", "create", "delete"})),
    (frozenset({""}), frozenset({"events"}), frozenset({"get", "watch", "list"})),
)


def rbac_attributes(rec: RequestRecord) -> tuple[str, str, str, str | None]:
    """(API group, verb, resource, namespace) of a logged request, as the apiserver's RBAC authorizer sees it.

    The emulator already logs the authorizer's verb (GET is get, list or watch - ``?watch=`` or the ``/watch/``
    prefix -, POST create, PUT update, PATCH patch, DELETE delete or, without a name, deletecollection). A
    subresource is its own RBAC resource (``pods/log``). A request outside the resource API (discovery,
    ``/version``) has no resource: the Role has no ``nonResourceURLs``, so it is reported by its path."""
    segs = [s for s in rec.path.strip("/").split("/") if s]
    if not rec.resource:
        return "", rec.method.lower(), rec.path, rec.namespace
    group = segs[1] if segs and segs[0] == "apis" and len(segs) > 1 else ""
    resource = f"{rec.resource}/{rec.subresource}" if rec.subresource else rec.resource
    return group, rec.verb, resource, rec.namespace


def uncovered(records, namespace: str, rules=Z2JH_HUB_ROLE_RULES) -> list[tuple[str, str, str | None]]:
    """(verb, resource, namespace) of every request that ``rules``, as a Role in ``namespace``, do not allow."""
    out = set()
    for rec in records:
        group, verb, resource, ns = rbac_attributes(rec)
        if ns == namespace and any(group in groups and resource in resources and verb in verbs
                                   for groups, resources, verbs in rules):
            continue
        out.add((verb, f"{resource}.{group}" if group else resource, ns))
    return sorted(out, key=lambda t: tuple(str(x) for x in t))


def assert_covered(records, namespace: str) -> None:
    missing = uncovered(records, namespace)
    assert not missing, ("requests the hub made that the z2jh 4.4.0 hub Role (jupyterhub/templates/hub/rbac.yaml, "
                         f"namespace {namespace!r}) does not allow, as (verb, resource, namespace):\n"
                         + "\n".join(f"  {t}" for t in missing))


# --- the checker can fail --------------------------------------------------------------------------------------

def _record(method: str, path: str, verb: str, resource: str, namespace: str | None, name: str | None = None,
            subresource: str | None = None, query: str = "") -> RequestRecord:
    return RequestRecord(0.0, method, path, query, verb, resource, namespace, name, subresource, 200)


def test_checker_refuses_what_the_role_does_not_grant():
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
    allowed = [_record("GET", pods, "list", "pods", NAMESPACE),
               _record("GET", pods, "watch", "pods", NAMESPACE, query="watch=true"),
               _record("GET", f"{pods}/jupyter-a", "get", "pods", NAMESPACE, "jupyter-a"),
               _record("POST", pods, "create", "pods", NAMESPACE),
               _record("DELETE", f"{pods}/jupyter-a", "delete", "pods", NAMESPACE, "jupyter-a"),
               _record("GET", f"/api/v1/namespaces/{NAMESPACE}/events", "watch", "events", NAMESPACE)]
    assert uncovered(allowed, NAMESPACE) == []
    assert_covered(allowed, NAMESPACE)

    patch = _record("PATCH", f"{pods}/jupyter-a", "patch", "pods", NAMESPACE, "jupyter-a")
    nodes = _record("GET", "/api/v1/nodes/ip-10-0-0-1", "get", "nodes", None, "ip-10-0-0-1")
    with pytest.raises(AssertionError) as refused:
        assert_covered(allowed + [patch, nodes], NAMESPACE)
    assert "('patch', 'pods', 'jhub-e2e')" in str(refused.value)
    assert "('get', 'nodes', None)" in str(refused.value)
    assert uncovered([patch, nodes], NAMESPACE) == [("get", "nodes", None), ("patch", "pods", NAMESPACE)]

    # and the rest of what a Role does not give: other verbs, subresources, groups, namespaces, event writes
    others = [_record("DELETE", pods, "deletecollection", "pods", NAMESPACE),
              _record("PUT", f"{pods}/jupyter-a", "update", "pods", NAMESPACE, "jupyter-a"),
              _record("GET", f"{pods}/jupyter-a/log", "get", "pods", NAMESPACE, "jupyter-a", "log"),
              _record("GET", "/api/v1/namespaces/other/pods", "list", "pods", "other"),
              _record("GET", "/api/v1/pods", "watch", "pods", None, query="watch=1"),
              _record("POST", f"/api/v1/namespaces/{NAMESPACE}/events", "create", "events", NAMESPACE),
              _record("GET", "/apis/storage.k8s.io/v1/storageclasses", "list", "storageclasses", None),
              _record("GET", "/version", "discovery", "", None)]
    assert uncovered(others, NAMESPACE) == sorted([
        ("deletecollection", "pods", NAMESPACE), ("update", "pods", NAMESPACE), ("get", "pods/log", NAMESPACE),
        ("list", "pods", "other"), ("watch", "pods", None), ("create", "events", NAMESPACE),
        ("list", "storageclasses.storage.k8s.io", None), ("get", "/version", None)],
        key=lambda t: tuple(str(x) for x in t))


# --- what the hub does ----------------------------------------------------------------------------------------

# the CPU profile each combination's catalog offers a user in no group
CPU_PROFILE = {"base": "data-engineering", "aks-classroom": "classroom"}


@pytest.fixture(scope="module", params=list(CPU_PROFILE))
def exercised(request):
    """(combination, the requests the hub made, what the scenario saw): one cluster and hub per combination."""
    combination = request.param
    pools = pools_from_platform(delay=0.2) if combination == "base" else eks_pools(delay=0.2)
    # the spawner's API calls are under test, not the notebook server: the stdlib stand-in starts at once
    cluster = EmulatedCluster(pools=pools, namespaces=(NAMESPACE,), backoff_max=2.0,
                              command_map={**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}).start()
    hub = None
    try:
        if combination == "base":  # what helm/platform makes: the EFS home and shared claims
            for plural, body in efs_objects(NAMESPACE):
                cluster.create(plural, body, body["metadata"].get("namespace"))
        config = chart_spawner_config(cluster.kubeconfig, combination)
        before_hub = len(cluster.requests)
        hub = start_kube_hub(cluster.kubeconfig, namespace=NAMESPACE, config=config, name=f"e2e-rbac-{combination}",
                             storage="none", slow_spawn_timeout=None,
                             spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner")
        seen = run_scenario(hub, cluster, CPU_PROFILE[combination], combination)
        yield combination, cluster.requests.records()[before_hub:], seen
    finally:
        failed = module_failed(request)
        if hub is not None:
            if failed:
                save_file(hub.process.log_path, artifact_dir(f"test_rbac/{combination}"), "hub.log")
            hub.process.stop()
        if failed:
            cluster.dump(str(artifact_dir(f"test_rbac/{combination}/cluster")))
        cluster.stop()


def run_scenario(hub, cluster, profile: str, combination: str) -> dict:
    """Everything the hub does against the API, for one user; what each step showed, for the tests to check."""
    user = f"rbac-{combination}"
    pod, claim = f"jupyter-{user}", f"claim-{user}"
    seen: dict = {}

    def stopped():
        cluster.wait_gone("pods", pod, NAMESPACE, timeout=60)

    # the form, and a start from it (the hub redirects to the pending page; a refusal would be the form again)
    browser = hub.login(user)
    seen["form"] = f'value="{profile}"' in browser.get(f"hub/spawn/{user}").text
    page = browser.spawn_form({"profile": profile})
    seen["form_accepted"] = any("/hub/spawn-pending/" in r.url for r in [*page.history, page])
    hub.wait_ready(user, timeout=90)
    hub.stop_server(user)
    stopped()

    # a start refused before Kubernetes (hidden in base, unknown in the classroom)
    seen["refused"] = hub.spawn(user, {"profile": "gpu"}).status_code

    # start again, and a stop whose pod delete is refused once (500, retried)
    hub.start(user, {"profile": profile}, timeout=90)
    refused_delete = cluster.faults.add("delete", "pods", times=1, status=500, name=pod, namespace=NAMESPACE)
    hub.stop_server(user)
    stopped()
    seen["delete_refused"] = refused_delete.hits

    # a start whose pod create answer is lost: the pod is made, the hub never hears. Before retrying, the spawner
    # asks its pod reflector, then the API (GET) - to reach that GET, the reflector must not have seen the pod:
    # its re-list is refused until the GET has been made (a few failures: it gives up only after ~50 s)
    blind = cluster.faults.add("list", "pods", times=None, status=500, namespace=NAMESPACE)
    try:
        cluster.drop_watches("pods")
        cluster.wait_for(lambda: blind.hits >= 1, timeout=30, what="the pod reflector's re-list refused")
        since = time.monotonic()
        lost = cluster.faults.timeout("create", "pods", times=1, hang=20, after=True, namespace=NAMESPACE)

        def lift_once_read():
            try:
                cluster.wait_for(lambda: cluster.requests.count("get", "pods", name=pod, since=since), timeout=30,
                                 what="the spawner's GET of its pod")
            except TimeoutError:
                pass  # reported below: adoption_gets == 0
            finally:
                cluster.faults.remove(blind)
        lifter = threading.Thread(target=lift_once_read, daemon=True)
        lifter.start()
        hub.start(user, {"profile": profile}, timeout=120)
        lifter.join(60)
    finally:
        cluster.faults.remove(blind)
    seen["create_lost"] = lost.hits
    seen["adoption_gets"] = cluster.requests.count("get", "pods", name=pod, since=since)
    seen["creates_after_loss"] = cluster.requests.count("create", "pods", since=since)
    seen["adopted"] = f"Pod {NAMESPACE}/{pod} from this start's earlier create exists" in hub.process.log_text()
    hub.stop_server(user)
    stopped()

    # deleting the user: KubeSpawner's delete_forever deletes the user's claim (none in base: homes are on EFS)
    seen["claim"] = cluster.find("persistentvolumeclaims", claim, NAMESPACE) is not None
    hub.delete_user(user)
    if seen["claim"]:
        cluster.wait_gone("persistentvolumeclaims", claim, NAMESPACE, timeout=30)
    return seen


@pytest.mark.e2e
def test_the_hub_took_every_path_under_test(exercised):
    """The scenario reached what it claims to, so the Role check below covers those API calls."""
    combination, records, seen = exercised
    assert seen["form"] and seen["form_accepted"], seen
    assert seen["refused"] == 400, seen
    assert seen["delete_refused"] == 1, seen
    assert seen["create_lost"] == 1 and seen["adoption_gets"] >= 1, seen
    assert seen["creates_after_loss"] == 1 and seen["adopted"], seen  # the lost create's pod, not a new one
    assert seen["claim"] is (combination == "aks-classroom"), seen
    made = {(r.verb, r.resource) for r in records}
    expected = {("list", "pods"), ("watch", "pods"), ("list", "events"), ("watch", "events"), ("create", "pods"),
                ("get", "pods"), ("delete", "pods"), ("delete", "persistentvolumeclaims")}
    if combination == "aks-classroom":
        expected |= {("get", "persistentvolumeclaims"), ("create", "persistentvolumeclaims")}
    assert expected <= made, sorted(expected - made)
    assert any(r.verb == "delete" and r.resource == "pods" and r.status == 500 for r in records)


@pytest.mark.e2e
def test_every_request_of_the_hub_is_allowed_by_the_chart_role(exercised):
    _, records, _ = exercised
    assert records, "the hub made no request at all"
    assert_covered(records, NAMESPACE)
