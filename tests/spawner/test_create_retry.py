"""A pod create whose answer was lost is not turned into delete-and-create-again.

KubeSpawner retries a timed-out create; the API server usually made the pod, so the retry meets 409 and
KubeSpawner deletes that pod and starts over, which under a burst can use up the whole retry budget.
ProfilesKubeSpawner marks each start's pod and, before a retry, adopts a pod carrying its own mark.
The end-to-end version is tests/e2e/test_faults.py::test_pod_create_conflict_or_lost_response_recovers.
"""

import asyncio

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1Pod
from kubernetes_asyncio.client.rest import ApiException

from jupyterhub_ext.spawner import START_ANNOTATION

from .conftest import chart_config, make_spawner, pod_for


class FakeApi:
    """create_namespaced_pod / read_namespaced_pod over a dict; each call can be told to hang or fail."""

    def __init__(self):
        self.pods: dict[str, V1Pod] = {}
        self.calls: list[str] = []
        self.create_hangs_after_write = 0  # the next N creates write the pod, then never answer
        self.read_hangs = 0
        self.read_status: int | None = None

    async def create_namespaced_pod(self, namespace, pod):
        self.calls.append("create")
        name = pod.metadata.name
        if name in self.pods:
            raise ApiException(status=409, reason="Conflict")
        self.pods[name] = V1Pod(metadata=V1ObjectMeta(name=name, annotations=dict(pod.metadata.annotations or {})))
        if self.create_hangs_after_write:
            self.create_hangs_after_write -= 1
            await asyncio.sleep(3600)
        return self.pods[name]

    async def read_namespaced_pod(self, name, namespace):
        self.calls.append("read")
        if self.read_hangs:
            self.read_hangs -= 1
            await asyncio.sleep(3600)
        if self.read_status:
            raise ApiException(status=self.read_status, reason="error")
        if name not in self.pods:
            raise ApiException(status=404, reason="Not Found")
        return self.pods[name]


@pytest.fixture()
async def started():
    spawner = make_spawner(chart_config())
    spawner._start_token = "token-of-this-start"
    spawner._create_attempted = False
    api = FakeApi()
    spawner.api = api
    stops = []

    async def stop(now=False):  # KubeSpawner's answer to a 409: delete the pod that is in the way
        stops.append(now)
        api.pods.clear()

    spawner.stop = stop
    pod = await spawner.get_pod_manifest()
    return spawner, api, pod, stops


async def test_every_start_marks_its_pod():
    spawner = make_spawner(chart_config())
    spawner._start_token = "abc"
    manifest = await pod_for(spawner, {})
    assert manifest["metadata"]["annotations"][START_ANNOTATION] == "abc"


async def test_lost_answer_then_retry_adopts_the_pod(started):
    spawner, api, pod, stops = started
    api.create_hangs_after_write = 1
    assert await spawner._make_create_pod_request(pod, 0.05) is False  # timed out, as KubeSpawner sees it
    assert await spawner._make_create_pod_request(pod, 0.05) is True   # the retry finds its own pod
    assert api.calls == ["create", "read"] and stops == []


async def test_a_pod_from_elsewhere_still_gets_kubespawners_treatment(started):
    spawner, api, pod, stops = started
    api.pods[pod.metadata.name] = V1Pod(metadata=V1ObjectMeta(name=pod.metadata.name,
                                                              annotations={START_ANNOTATION: "an-older-start"}))
    assert await spawner._make_create_pod_request(pod, 0.05) is False  # 409: deleted, try again
    assert stops == [True]
    assert await spawner._make_create_pod_request(pod, 0.05) is True   # not ours, gone: created anew
    assert api.calls == ["create", "read", "create"]
    assert api.pods[pod.metadata.name].metadata.annotations[START_ANNOTATION] == "token-of-this-start"


async def test_first_attempt_never_reads(started):
    spawner, api, pod, stops = started
    assert await spawner._make_create_pod_request(pod, 0.05) is True
    assert api.calls == ["create"]


async def test_lost_create_that_never_arrived_is_made_again(started):
    spawner, api, pod, stops = started
    spawner._create_attempted = True  # an earlier attempt timed out before reaching the server
    assert await spawner._make_create_pod_request(pod, 0.05) is True
    assert api.calls == ["read", "create"]


@pytest.mark.parametrize("hang, status", [(1, None), (0, 503)])
async def test_cannot_tell_means_try_again_later(started, hang, status):
    spawner, api, pod, stops = started
    spawner._create_attempted = True
    api.read_hangs, api.read_status = hang, status
    assert await spawner._make_create_pod_request(pod, 0.05) is False
    assert "create" not in api.calls and stops == []


async def test_forbidden_read_is_an_error(started):
    spawner, api, pod, stops = started
    spawner._create_attempted = True
    api.read_status = 403
    with pytest.raises(ApiException):
        await spawner._make_create_pod_request(pod, 0.05)


async def test_a_pod_being_deleted_is_not_adopted(started):
    spawner, api, pod, stops = started
    spawner._create_attempted = True
    meta = V1ObjectMeta(name=pod.metadata.name, annotations={START_ANNOTATION: "token-of-this-start"},
                        deletion_timestamp="2026-11-22T09:00:00Z")
    api.pods[pod.metadata.name] = V1Pod(metadata=meta)
    assert await spawner._make_create_pod_request(pod, 0.05) is False  # 409 → KubeSpawner deletes, retries
    assert stops == [True]
