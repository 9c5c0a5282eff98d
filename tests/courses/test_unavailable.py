"""Which course images cannot be pulled, read from the pod and its events as the kubelet reports them; and the
``required`` key of a course."""

from __future__ import annotations

import pytest

from jupyterhub_ext.courses.model import parse_course
from jupyterhub_ext.courses.plan import Pulled
from jupyterhub_ext.courses.unavailable import PULL_FAILURES, left_out_notice, refusal, unpullable
from jupyterhub_ext.errors import ConfigError

PULLED = {"cs101": Pulled("ghcr.io/uni/cs101:1", container="course-cs101"),
          "stats": Pulled("ghcr.io/uni/stats:1", volume="course-stats", required=True)}


def pod(init=(), main=()) -> dict:
    def statuses(items):
        return [{"name": name, "state": {"waiting": {"reason": reason, "message": message}}}
                for name, reason, message in items]
    return {"status": {"initContainerStatuses": statuses(init), "containerStatuses": statuses(main)}}


@pytest.mark.parametrize("reason", sorted(PULL_FAILURES))
def test_an_init_container_that_cannot_pull(reason):
    got = unpullable(pod(init=[("course-cs101", reason, 'Back-off pulling image "ghcr.io/uni/cs101:1"')]), [],
                     PULLED)
    assert got == {"cs101": f'{reason}: Back-off pulling image "ghcr.io/uni/cs101:1"'}


def test_waiting_for_other_reasons_is_not_a_pull_failure():
    assert unpullable(pod(init=[("course-cs101", "PodInitializing", "")]), [], PULLED) == {}
    assert unpullable(pod(init=[("block-cloud-metadata", "ErrImagePull", "x")]), [], PULLED) == {}
    assert unpullable(None, [], PULLED) == {}
    assert unpullable(pod(init=[("course-cs101", "ErrImagePull", "")]), [], {}) == {}


def test_an_image_volume_that_cannot_pull_by_event_or_by_container_status():
    event = {"type": "Warning", "reason": "FailedMount",
             "message": 'MountVolume.SetUp failed for volume "course-stats" : failed to pull image "ghcr.io/uni/stats:1"'}
    assert unpullable(pod(), [event], PULLED) == {"stats": event["message"]}
    normal = {**event, "type": "Normal"}
    assert unpullable(pod(), [normal], PULLED) == {}
    other = {**event, "message": 'MountVolume.SetUp failed for volume "course-stats" : configmap missing'}
    assert unpullable(pod(), [other], PULLED) == {}
    via_container = pod(main=[("notebook", "ImagePullBackOff", 'Back-off pulling image "ghcr.io/uni/stats:1"')])
    assert unpullable(via_container, [], PULLED) == {"stats": 'ImagePullBackOff: Back-off pulling image '
                                                               '"ghcr.io/uni/stats:1"'}
    # the notebook's own image failing is not the course's
    own = pod(main=[("notebook", "ErrImagePull", 'failed to pull image "quay.io/jupyter/base:1"')])
    assert unpullable(own, [], PULLED) == {}


def test_messages_name_the_course_the_image_and_why():
    why = {"cs101": "ErrImagePull: not found", "stats": "ImagePullBackOff"}
    note = left_out_notice(["cs101"], why, PULLED)
    assert "cs101 (image ghcr.io/uni/cs101:1: ErrImagePull: not found)" in note and "starting without it" in note
    assert "still there" in note  # nothing of theirs is gone
    text = refusal(["stats"], why, PULLED)
    assert text.startswith("your server cannot start without the material of course stats")
    assert "ghcr.io/uni/stats:1" in text and "tell your instructor" in text


def test_required_is_a_boolean_for_courses_from_an_image():
    key = "ProfilesKubeSpawner.courses[0]"
    assert parse_course({"name": "exam", "image": "x:1", "required": True}, key).required is True
    assert parse_course({"name": "exam", "image": "x:1"}, key).required is False
    with pytest.raises(ConfigError) as e:
        parse_course({"name": "exam", "image": "x:1", "required": "yes"}, key)
    assert e.value.path == f"{key}.required"
    with pytest.raises(ConfigError) as e:
        parse_course({"name": "exam", "path": "/opt/course", "required": True}, key)
    assert e.value.path == f"{key}.required" and "'path' course" in e.value.message
