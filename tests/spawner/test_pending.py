"""A start that outlives start_timeout fails with the reason the pod is waiting, not an empty timeout.

The end-to-end version (a real hub, the emulated scheduler) is tests/e2e/test_faults.py::
test_unschedulable_spawn_failure_names_the_reason; here the wording for each kind of wait, and the deadline.
"""

import asyncio

import pytest

from jupyterhub_ext.pending import explain_pending, timeout_message

from .conftest import chart_config, make_spawner

UNSCHEDULABLE = ("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                 "2 node(s) had untolerated taint {nvidia.com/gpu: true}. preemption: 0/3 nodes are available: "
                 "3 Preemption is not helpful for scheduling.")


def pod(**status):
    return {"metadata": {"name": "jupyter-alice"}, "spec": {}, "status": {"phase": "Pending", **status}}


def event(type_, reason, message):
    return {"type": type_, "reason": reason, "message": message, "involvedObject": {"name": "jupyter-alice"}}


def test_never_created():
    assert explain_pending(None) == "its pod never appeared in Kubernetes"


def test_unschedulable_uses_the_condition_message():
    p = pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": UNSCHEDULABLE}])
    assert explain_pending(p, [event("Normal", "Nominated", "x")]) == f"no node can run it yet ({UNSCHEDULABLE})"


def test_unschedulable_without_message_falls_back_to_the_last_warning():
    p = pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])
    events = [event("Warning", "FailedScheduling", "old"), event("Normal", "TriggeredScaleUp", "pool gpu"),
              event("Warning", "FailedScheduling", UNSCHEDULABLE)]
    assert explain_pending(p, events) == f"no node can run it yet (FailedScheduling: {UNSCHEDULABLE})"


@pytest.mark.parametrize("reason, words", [
    ("ImagePullBackOff", "the image could not be pulled"),
    ("ErrImagePull", "the image could not be pulled"),
    ("CrashLoopBackOff", "the server keeps exiting"),
    ("CreateContainerConfigError", "configuration is invalid"),
])
def test_container_waiting_reasons(reason, words):
    p = pod(conditions=[{"type": "PodScheduled", "status": "True"}], containerStatuses=[
        {"name": "notebook", "state": {"waiting": {"reason": reason, "message": "detail here"}}}])
    text = explain_pending(p)
    assert words in text and reason in text and "'notebook'" in text and "detail here" in text


def test_container_creating_is_not_a_problem():
    p = pod(conditions=[{"type": "PodScheduled", "status": "True"}], containerStatuses=[
        {"name": "notebook", "state": {"waiting": {"reason": "ContainerCreating"}}}])
    p["spec"]["nodeName"] = "cpu-1"
    assert explain_pending(p) == "its pod is still Pending on node cpu-1"


def test_failed_init_container():
    p = pod(initContainerStatuses=[{"name": "home-owner", "state": {"terminated": {"exitCode": 2,
                                                                                    "reason": "Error"}}}])
    assert explain_pending(p) == "init container 'home-owner' failed with exit code 2: Error"


def test_scheduled_with_a_warning_event():
    p = pod(conditions=[{"type": "PodScheduled", "status": "True"}])
    text = explain_pending(p, [event("Warning", "FailedMount", "MountVolume.SetUp failed for volume \"home\"")])
    assert text == 'the last warning was FailedMount: MountVolume.SetUp failed for volume "home"'


def test_timeout_message():
    assert timeout_message(30, None) == "your server did not start within 30 seconds: its pod never appeared in " \
                                        "Kubernetes"


@pytest.mark.parametrize("timeout, deadline", [(300, 295), (30, 27), (6, 5.4), (2, 1.5), (1, 0.5)])
async def test_deadline_ends_before_jupyterhubs(timeout, deadline):
    spawner = make_spawner(chart_config(start_timeout=timeout))
    assert spawner._start_deadline() == pytest.approx(deadline)
    assert spawner._start_deadline() < timeout


async def test_start_past_its_deadline_fails_with_the_reason():
    spawner = make_spawner(chart_config(start_timeout=1))
    cancelled = asyncio.Event()

    async def slow_start():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    spawner._start = slow_start
    with pytest.raises(TimeoutError) as failed:
        await asyncio.wait_for(spawner.start(), timeout=5)
    assert str(failed.value).startswith("your server did not start within 1 seconds: ")
    assert cancelled.is_set()  # KubeSpawner's wait is not left running


async def test_start_in_time_returns_kubespawners_result():
    spawner = make_spawner(chart_config(start_timeout=5))

    async def quick_start():
        return "http://10.0.0.7:8888"

    spawner._start = quick_start
    assert await spawner.start() == "http://10.0.0.7:8888"


async def test_start_error_is_kept():
    spawner = make_spawner(chart_config(start_timeout=5))

    async def failing_start():
        raise RuntimeError("quota exceeded")

    spawner._start = failing_start
    with pytest.raises(RuntimeError, match="quota exceeded"):
        await spawner.start()
