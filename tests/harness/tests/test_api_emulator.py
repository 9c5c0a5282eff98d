"""The emulated API server: metadata, resourceVersions, selectors, watches, patches, errors, GC and faults,
through real HTTP with kubernetes_asyncio (what KubeSpawner uses) and aiohttp."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch

from tests.harness.k8s_api import KubeAPIServer
from tests.harness.selectors import (SelectorError, parse_field_selector, parse_label_selector,
                                     selector_from_object)
from tests.harness.store import Store

NS = "default"


@pytest.fixture
async def api(tmp_path):
    store = Store(history_limit=50)
    server = KubeAPIServer(store)
    await server.start()
    cfg = client.Configuration()
    await config.load_kube_config(config_file=server.write_kubeconfig(str(tmp_path / "kubeconfig")),
                                  client_configuration=cfg)
    api_client = client.ApiClient(cfg)
    core = client.CoreV1Api(api_client)
    core.server, core.store, core.cfg = server, store, cfg
    yield core
    await api_client.close()
    await server.stop()


def pod_body(name=None, labels=None, **kw):
    meta = {"labels": labels or {}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "p-"
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "img:1"}], **kw}}


async def raw(api, method, path, **kw):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, api.server.url + path, **kw) as r:
            return r.status, await r.json(content_type=None)


# --- metadata and resourceVersion -----------------------------------------------------------------------------

async def test_create_sets_server_metadata_and_defaults(api):
    p = await api.create_namespaced_pod(NS, pod_body())
    assert p.metadata.name.startswith("p-") and len(p.metadata.name) == 7
    assert p.metadata.uid and p.metadata.namespace == NS and p.metadata.creation_timestamp
    assert p.status.phase == "Pending" and p.spec.restart_policy == "Always"
    assert p.spec.scheduler_name == "default-scheduler"
    pvc = await api.create_namespaced_persistent_volume_claim(NS, {
        "metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                            "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc.status.phase == "Pending" and pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]


async def test_resource_version_increases_on_every_write_and_list_reports_it(api):
    p = await api.create_namespaced_pod(NS, pod_body("a"))
    rv1 = int(p.metadata.resource_version)
    p2 = await api.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"x": "1"}}})
    rv2 = int(p2.metadata.resource_version)
    lst = await api.list_namespaced_pod(NS)
    assert rv1 < rv2 <= int(lst.metadata.resource_version)
    same = await api.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"x": "1"}}})
    assert same.metadata.resource_version == p2.metadata.resource_version  # no-op: no new version
    other = await api.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert int(other.metadata.resource_version) > rv2  # one counter across kinds, as etcd's
    assert other.data == {"k": "dg=="} and other.type == "Opaque"


async def test_update_with_stale_resource_version_conflicts(api):
    p = await api.create_namespaced_pod(NS, pod_body("a"))
    await api.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"v": "2"}}})
    body = api.api_client.sanitize_for_serialization(p)
    body["metadata"]["labels"] = {"v": "3"}
    with pytest.raises(client.ApiException) as e:
        await api.replace_namespaced_pod("a", NS, body)
    status = json.loads(e.value.body)
    assert e.value.status == 409 and status["reason"] == "Conflict" and status["kind"] == "Status"
    assert "the object has been modified" in status["message"]


async def test_replace_with_the_current_resource_version_succeeds(api):
    """PUT (replace) with the object as last read: the new content is stored, server-set metadata is kept,
    and the resourceVersion moves on (the generation too, for a spec change)."""
    created = await api.create_namespaced_pod(NS, pod_body("r", {"v": "1"}))
    current = await api.read_namespaced_pod("r", NS)
    body = api.api_client.sanitize_for_serialization(current)
    body["metadata"]["labels"] = {"v": "2"}
    body["metadata"]["annotations"] = {"note": "replaced"}
    replaced = await api.replace_namespaced_pod("r", NS, body)
    assert replaced.metadata.labels == {"v": "2"} and replaced.metadata.annotations == {"note": "replaced"}
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)
    again = await api.read_namespaced_pod("r", NS)
    assert again.metadata.labels == {"v": "2"} and again.metadata.resource_version == replaced.metadata.resource_version
    # a kind whose content may change: a secret's data replaced whole
    secret = await api.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"a": "1", "b": "2"}})
    body = api.api_client.sanitize_for_serialization(secret)
    body["data"] = {"c": "Mw=="}
    out = await api.replace_namespaced_secret("s", NS, body)
    assert out.data == {"c": "Mw=="} and int(out.metadata.resource_version) > int(secret.metadata.resource_version)
    assert (await api.read_namespaced_secret("s", NS)).data == {"c": "Mw=="}


@pytest.mark.parametrize("call, code, reason, text", [
    (lambda api: api.read_namespaced_pod("nope", NS), 404, "NotFound", 'pods "nope" not found'),
    (lambda api: api.create_namespaced_pod("missing-ns", pod_body("a")), 404, "NotFound",
     'namespaces "missing-ns" not found'),
    (lambda api: api.create_namespaced_pod(NS, {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [
        {"name": "c", "image": "i"}]}}), 422, "Invalid", 'Pod "Bad_Name" is invalid: metadata.name'),
    (lambda api: api.create_namespaced_pod(NS, pod_body("g", containers=[{"name": "c", "image": "i", "resources": {
        "limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "2"}}}])), 422, "Invalid",
     "spec.containers[0].resources.requests[nvidia.com/gpu]: Invalid value: \"2\": must be equal to nvidia.com/gpu "
     "limit of 1"),
    (lambda api: api.create_namespaced_pod(NS, pod_body("g", containers=[{"name": "c", "image": "i", "resources": {
        "requests": {"aws.amazon.com/neuron": "1"}}}])), 422, "Invalid",
     "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"),
    (lambda api: api.create_namespaced_pod(NS, pod_body("m", containers=[{"name": "c", "image": "i", "volumeMounts": [
        {"name": "home", "mountPath": "/home/jovyan"}]}])), 422, "Invalid",
     'spec.containers[0].volumeMounts[0].name: Not found: "home"'),
    (lambda api: api.list_namespaced_pod(NS, field_selector="spec.unknown=x"), 400, "BadRequest",
     "field label not supported: spec.unknown"),
    (lambda api: api.list_namespaced_pod(NS, label_selector="a in ("), 400, "BadRequest", "unable to parse"),
])
async def test_errors_are_status_objects(api, call, code, reason, text):
    with pytest.raises(client.ApiException) as e:
        await call(api)
    status = json.loads(e.value.body)
    assert (e.value.status, status["code"], status["reason"], status["status"]) == (code, code, reason, "Failure")
    assert text in status["message"], status["message"]


async def test_already_exists(api):
    await api.create_namespaced_pod(NS, pod_body("a"))
    with pytest.raises(client.ApiException) as e:
        await api.create_namespaced_pod(NS, pod_body("a"))
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"


# --- selectors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("selector, names", [
    ("app=hub", {"a", "b"}), ("app==hub", {"a", "b"}), ("app!=hub", {"c", "d"}), ("tier in (x, y)", {"a", "c"}),
    ("tier notin (x)", {"b", "c", "d"}), ("tier", {"a", "b", "c"}), ("!tier", {"d"}),
    ("app=hub,tier=x", {"a"}), ("gen>5", {"b"}), ("gen<6", {"a"}), ("", {"a", "b", "c", "d"}),
])
async def test_label_selectors(api, selector, names):
    labels = {"a": {"app": "hub", "tier": "x", "gen": "5"}, "b": {"app": "hub", "tier": "z", "gen": "6"},
              "c": {"app": "user", "tier": "y"}, "d": {}}
    for name, lab in labels.items():
        await api.create_namespaced_pod(NS, pod_body(name, lab))
    got = await api.list_namespaced_pod(NS, label_selector=selector)
    assert {p.metadata.name for p in got.items} == names


def test_selector_parsing_edge_cases():
    assert parse_label_selector("a in (x,y),!b, c").matches({"a": "y", "c": "1"})
    assert not parse_label_selector("a notin (x)").matches({"a": "x"})
    for bad in ("a=b=c", "in (x)", "a in x", "a,", "=x", "a>x", "bad key=1"):
        with pytest.raises(SelectorError):
            parse_label_selector(bad)
    fs = parse_field_selector(r"metadata.name=a\,b,status.phase!=Running", ["metadata.name", "status.phase"])
    assert [(r.field, r.op, r.value) for r in fs.requirements] == [("metadata.name", "=", "a,b"),
                                                                    ("status.phase", "!=", "Running")]
    obj = selector_from_object({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "NotIn", "values": ["2"]}]})
    assert obj.matches({"a": "1"}) and not obj.matches({"a": "1", "b": "2"})


async def test_field_selectors(api):
    await api.create_namespaced_pod(NS, pod_body("a"))
    await api.create_namespaced_pod(NS, pod_body("b", nodeName="n1"))
    assert [p.metadata.name for p in (await api.list_namespaced_pod(NS, field_selector="spec.nodeName=n1")).items] == ["b"]
    assert [p.metadata.name for p in (await api.list_namespaced_pod(NS, field_selector="metadata.name=a")).items] == ["a"]
    assert [p.metadata.name for p in (await api.list_pod_for_all_namespaces(
        field_selector="status.phase=Pending,metadata.namespace=default")).items] == ["a", "b"]
    assert (await api.list_namespaced_pod(NS, field_selector="spec.nodeName!=n1")).items[0].metadata.name == "a"
    api.store.create("events", NS, {"metadata": {"name": "e1"}, "reason": "Scheduled", "message": "m",
                                    "involvedObject": {"kind": "Pod", "name": "a", "namespace": NS}})
    api.store.create("events", NS, {"metadata": {"name": "e2"}, "reason": "Started", "message": "m",
                                    "involvedObject": {"kind": "Node", "name": "a"}})
    evs = await api.list_namespaced_event(NS, field_selector="involvedObject.kind=Pod,involvedObject.name=a")
    assert [e.metadata.name for e in evs.items] == ["e1"]


# --- watch ----------------------------------------------------------------------------------------------------

async def _collect(api, n, **kw):
    out = []
    w = watch.Watch()
    async with w.stream(api.list_namespaced_pod, NS, _preload_content=False, **kw) as stream:
        async for ev in stream:
            out.append((ev["type"], ev["raw_object"]["metadata"]["name"]))
            if len(out) >= n:
                break
    return out


async def test_watch_replays_from_resource_version_then_streams(api):
    await api.create_namespaced_pod(NS, pod_body("before"))
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    await api.create_namespaced_pod(NS, pod_body("after-list"))
    task = asyncio.create_task(_collect(api, 3, resource_version=rv, timeout_seconds=5))
    await asyncio.sleep(0.2)
    await api.delete_namespaced_pod("after-list", NS)
    await api.create_namespaced_pod(NS, pod_body("later"))
    assert await task == [("ADDED", "after-list"), ("DELETED", "after-list"), ("ADDED", "later")]


async def test_watch_without_version_starts_with_current_state(api):
    await api.create_namespaced_pod(NS, pod_body("x", {"c": "1"}))
    await api.create_namespaced_pod(NS, pod_body("y", {"c": "2"}))
    assert await _collect(api, 1, label_selector="c=2", timeout_seconds=5) == [("ADDED", "y")]


@pytest.mark.parametrize("flag", ["true", "True", "1"])
async def test_watch_flag_spellings_and_timeout(api, flag):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api.server.url}/api/v1/namespaces/{NS}/pods",
                         params={"watch": flag, "timeoutSeconds": "1"}) as r:
            assert r.status == 200
            assert await r.read() == b""  # nothing happened; the stream ends after timeoutSeconds
    assert 0.9 < loop.time() - t0 < 3
    async with aiohttp.ClientSession() as s:  # the legacy /watch/ prefix
        async with s.get(f"{api.server.url}/api/v1/watch/namespaces/{NS}/pods", params={"timeoutSeconds": "1"}) as r:
            assert r.status == 200


async def test_selection_changes_are_added_and_deleted(api):
    await api.create_namespaced_pod(NS, pod_body("a", {"team": "x"}))
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    task = asyncio.create_task(_collect(api, 2, label_selector="team=y", resource_version=rv, timeout_seconds=5))
    await asyncio.sleep(0.2)
    await api.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"team": "y"}}})
    await api.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"team": "z"}}})
    assert await task == [("ADDED", "a"), ("DELETED", "a")]


async def test_watch_with_field_selector_sees_only_its_objects(api):
    """A watch with fieldSelector (KubeSpawner watches its namespace's events this way, kubelets their node's
    pods): only matching objects' events arrive, including an object entering and leaving the selection."""
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    by_name = asyncio.create_task(_collect(api, 3, field_selector="metadata.name=b", resource_version=rv,
                                           timeout_seconds=5))
    running = asyncio.create_task(_collect(api, 2, field_selector="status.phase=Running", resource_version=rv,
                                           timeout_seconds=5))
    await asyncio.sleep(0.2)
    await api.create_namespaced_pod(NS, pod_body("a"))
    b = await api.create_namespaced_pod(NS, pod_body("b"))
    body = api.api_client.sanitize_for_serialization(b)
    body["metadata"]["labels"] = {"changed": "yes"}
    await api.replace_namespaced_pod("b", NS, body)
    await api.patch_namespaced_pod_status("a", NS, {"status": {"phase": "Running"}})  # a enters status.phase=Running
    await api.patch_namespaced_pod_status("a", NS, {"status": {"phase": "Failed"}})  # and leaves it
    await api.delete_namespaced_pod("b", NS)
    assert await by_name == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "b")]
    assert await running == [("ADDED", "a"), ("DELETED", "a")]


async def test_too_old_resource_version_is_410_gone(api):
    first = await api.create_namespaced_pod(NS, pod_body("p0"))
    for i in range(1, 120):  # history_limit=50 in this fixture: the start falls out of the window
        await api.patch_namespaced_pod("p0", NS, {"metadata": {"labels": {"i": str(i)}}})
    with pytest.raises(client.ApiException) as e:
        await _collect(api, 1, resource_version=first.metadata.resource_version, timeout_seconds=2)
    assert e.value.status == 410


async def test_watch_loses_nothing_under_concurrent_writes(api):
    """List, then watch from the list's resourceVersion while 4 writers hammer the store: every write is seen
    once, in resourceVersion order."""
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    expected = 4 * 25
    seen: list[tuple[str, int]] = []

    async def watcher():
        w = watch.Watch()
        async with w.stream(api.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=20,
                            _preload_content=False) as stream:
            async for ev in stream:
                seen.append((ev["type"], int(ev["raw_object"]["metadata"]["resourceVersion"])))
                if len(seen) >= expected:
                    break

    async def writer(k):
        for i in range(25):
            await api.create_namespaced_pod(NS, pod_body(f"w{k}-{i}"))
    task = asyncio.create_task(watcher())
    await asyncio.gather(*(writer(k) for k in range(4)))
    await asyncio.wait_for(task, 20)
    versions = [v for _, v in seen]
    assert len(seen) == expected and versions == sorted(set(versions))
    assert {t for t, _ in seen} == {"ADDED"}


async def test_watch_registered_before_replay_sees_writes_racing_the_subscription(api):
    """Writes landing between the list and the watch request are replayed; writes after the watch opens are
    streamed; none twice."""
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    await api.create_namespaced_pod(NS, pod_body("gap"))
    w = api.store.watch("pods", NS, resource_version=rv)
    api.store.create("pods", NS, pod_body("racing"))
    got = [w.queue.get_nowait()[1]["metadata"]["name"] for _ in range(w.queue.qsize())]
    api.store.unwatch(w)
    assert got == ["gap", "racing"]


async def test_drop_watches_ends_streams(api):
    task = asyncio.create_task(_collect(api, 1, timeout_seconds=30))
    await asyncio.sleep(0.3)
    assert api.server.open_watches("pods") == 1
    assert api.server.drop_watches() == 1
    with pytest.raises(Exception):
        await asyncio.wait_for(task, 5)  # the connection breaks under the client, as with a restart


# --- patch types --------------------------------------------------------------------------------------------------

async def test_merge_json_and_strategic_patches(api):
    await api.create_namespaced_pod(NS, pod_body("p", {"a": "1", "b": "2"}, tolerations=[
        {"key": "t1", "operator": "Exists"}]))
    merged = await raw(api, "PATCH", f"/api/v1/namespaces/{NS}/pods/p", data=json.dumps(
        {"metadata": {"labels": {"a": None, "c": "3"}}}), headers={"Content-Type": "application/merge-patch+json"})
    assert merged[1]["metadata"]["labels"] == {"b": "2", "c": "3"}
    jp = await api.patch_namespaced_pod("p", NS, [{"op": "add", "path": "/metadata/labels/d", "value": "4"},
                                                  {"op": "remove", "path": "/metadata/labels/b"}])
    assert jp.metadata.labels == {"c": "3", "d": "4"}
    status, body = await raw(api, "PATCH", f"/api/v1/namespaces/{NS}/pods/p", data=json.dumps(
        [{"op": "test", "path": "/metadata/labels/c", "value": "nope"}]),
        headers={"Content-Type": "application/json-patch+json"})
    assert status == 422 and body["kind"] == "Status"
    # strategic merge (kubernetes_asyncio's default for dicts): containers merge by name
    smp = await api.patch_namespaced_pod("p", NS, {"spec": {"containers": [{"name": "c", "image": "img:2"}]}})
    assert [(c.name, c.image) for c in smp.spec.containers] == [("c", "img:2")]
    assert smp.spec.containers[0].termination_message_path == "/dev/termination-log"  # kept, not replaced
    status, body = await raw(api, "PATCH", f"/api/v1/namespaces/{NS}/pods/p", data="{}",
                             headers={"Content-Type": "application/apply-patch+yaml"})
    assert status == 415


def test_strategic_merge_lists():
    from tests.harness.patch import strategic_merge_patch
    pod = {"spec": {"containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
                                   {"name": "b", "image": "1"}],
                    "tolerations": [{"key": "t1"}], "volumes": [{"name": "v1"}, {"name": "v2"}]}}
    out = strategic_merge_patch(pod, {"spec": {
        "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "b", "$patch": "delete"}],
        "tolerations": [{"key": "t2"}], "volumes": [{"name": "v3"}]}})
    assert out["spec"]["containers"] == [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"},
                                                                             {"name": "Y", "value": "2"}]}]
    assert out["spec"]["tolerations"] == [{"key": "t2"}]  # no merge key: replaced
    assert [v["name"] for v in out["spec"]["volumes"]] == ["v1", "v2", "v3"]
    assert strategic_merge_patch({"a": {"b": 1}}, {"a": {"$patch": "replace", "c": 2}}) == {"a": {"c": 2}}


async def test_pod_spec_is_immutable_but_status_subresource_is_writable(api):
    await api.create_namespaced_pod(NS, pod_body("p"))
    with pytest.raises(client.ApiException) as e:
        await api.patch_namespaced_pod("p", NS, {"spec": {"restartPolicy": "Never"}})
    assert e.value.status == 422 and "pod updates may not change fields" in json.loads(e.value.body)["message"]
    p = await api.patch_namespaced_pod_status("p", NS, {"status": {"phase": "Running"}})
    assert p.status.phase == "Running"
    p = await api.patch_namespaced_pod("p", NS, {"status": {"phase": "Failed"}})  # ignored on the main resource
    assert p.status.phase == "Running"


# --- deletion, GC, namespaces ---------------------------------------------------------------------------------------

async def test_pod_deletion_is_graceful_once_scheduled(api):
    await api.create_namespaced_pod(NS, pod_body("unscheduled"))
    await api.delete_namespaced_pod("unscheduled", NS)
    assert api.store.find("pods", NS, "unscheduled") is None
    await api.create_namespaced_pod(NS, pod_body("scheduled", nodeName="n1"))
    p = await api.delete_namespaced_pod("scheduled", NS, grace_period_seconds=5)
    assert p.metadata.deletion_timestamp and p.metadata.deletion_grace_period_seconds == 5
    assert api.store.find("pods", NS, "scheduled") is not None  # until the kubelet confirms
    await api.delete_namespaced_pod("scheduled", NS, grace_period_seconds=0)  # force
    assert api.store.find("pods", NS, "scheduled") is None


async def test_owner_deletion_collects_dependents(api):
    owner = await api.create_namespaced_pod(NS, pod_body("owner"))
    ref = [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner.metadata.uid}]
    await api.create_namespaced_secret(NS, {"metadata": {"name": "dep", "ownerReferences": ref}})
    await api.create_namespaced_service(NS, {"metadata": {"name": "svc", "ownerReferences": ref},
                                             "spec": {"ports": [{"port": 80}]}})
    await api.create_namespaced_secret(NS, {"metadata": {"name": "unrelated"}})
    await api.delete_namespaced_pod("owner", NS)
    await asyncio.sleep(0.3)
    assert api.store.find("secrets", NS, "dep") is None and api.store.find("services", NS, "svc") is None
    assert api.store.find("secrets", NS, "unrelated") is not None


async def test_orphan_propagation_and_dangling_owner(api):
    owner = await api.create_namespaced_pod(NS, pod_body("owner"))
    ref = [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner.metadata.uid}]
    await api.create_namespaced_secret(NS, {"metadata": {"name": "kept", "ownerReferences": ref}})
    await api.delete_namespaced_pod("owner", NS, propagation_policy="Orphan")
    await asyncio.sleep(0.3)
    kept = api.store.get("secrets", NS, "kept")
    assert "ownerReferences" not in kept["metadata"]
    gone = [{"apiVersion": "v1", "kind": "Pod", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}]
    await api.create_namespaced_secret(NS, {"metadata": {"name": "dangling", "ownerReferences": gone}})
    await asyncio.sleep(0.3)
    assert api.store.find("secrets", NS, "dangling") is None


async def test_namespace_lifecycle(api):
    await api.create_namespace({"metadata": {"name": "tmp"}})
    await api.create_namespaced_secret("tmp", {"metadata": {"name": "s"}})
    await api.delete_namespace("tmp")
    assert api.store.get("namespaces", None, "tmp")["status"]["phase"] == "Terminating"
    with pytest.raises(client.ApiException) as e:
        await api.create_namespaced_secret("tmp", {"metadata": {"name": "t"}})
    assert e.value.status == 403 and "being terminated" in json.loads(e.value.body)["message"]
    await asyncio.sleep(0.6)
    assert api.store.find("namespaces", None, "tmp") is None and api.store.find("secrets", "tmp", "s") is None


# --- faults and the request log -------------------------------------------------------------------------------------

async def test_faults_fail_the_next_n_matching_requests(api):
    fault = api.server.faults.add("create", "pods", times=2, status=500)
    quota = api.server.faults.quota("create", "persistentvolumeclaims")
    for _ in range(2):
        with pytest.raises(client.ApiException) as e:
            await api.create_namespaced_pod(NS, pod_body("f"))
        assert e.value.status == 500
    await api.create_namespaced_pod(NS, pod_body("f"))
    assert fault.hits == 2 and fault.exhausted
    with pytest.raises(client.ApiException) as e:
        await api.create_namespaced_persistent_volume_claim(NS, {"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"].startswith('persistentvolumeclaims "c" is forbidden: exceeded quota')
    assert quota.hits == 1
    log = api.server.log
    assert log.count("create", "pods") == 3 and log.count("create", "pods", status=500) == 2
    assert log.count("create", "pods", status=201) == 1


async def test_timeout_fault_hangs_past_the_client_timeout(api):
    api.server.faults.timeout("get", "pods", times=1, hang=5)
    await api.create_namespaced_pod(NS, pod_body("t"))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(api.read_namespaced_pod("t", NS), 0.5)
    assert (await api.read_namespaced_pod("t", NS)).metadata.name == "t"  # the next one is served
    lost = api.server.faults.timeout("create", "secrets", times=1, hang=5, after=True)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(api.create_namespaced_secret(NS, {"metadata": {"name": "s"}}), 0.5)
    assert lost.hits == 1 and api.store.find("secrets", NS, "s") is not None  # applied; only the answer was lost
