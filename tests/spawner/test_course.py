"""The course seeder wired as the postStart hook, alongside the operator's own hook."""

import pytest

from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.spawner import ProfilesKubeSpawner

from .conftest import chart_config, make_spawner, pod_for


def post_start(pod):
    return pod["spec"]["containers"][0].get("lifecycle", {}).get("postStart", {}).get("exec", {}).get("command")


async def test_no_course_no_hook():
    pod = await pod_for(make_spawner(chart_config()), {"profile": "elyra"})
    assert post_start(pod) is None


async def test_seeder_is_the_post_start_hook():
    c = chart_config(course_source="/opt/course", course_on_deleted="restore", course_time_budget=30)
    command = post_start(await pod_for(make_spawner(c), {"profile": "elyra"}))
    assert command[:3] == ["/bin/sh", "-c", '"$@" || true']  # an image without python still starts
    seeder = command[4:]
    assert seeder[:3] == ["python3", "-m", "jupyterhub_ext.seeder"]
    args = dict(zip(seeder[3::2], seeder[4::2]))
    assert args["--source"] == "/opt/course" and args["--dest"] == "/home/jovyan"
    assert args["--on-deleted"] == "restore" and args["--time-budget"] == "30"


async def test_operator_hook_runs_first_and_is_kept_across_starts():
    c = chart_config(course_source="/opt/course")
    c.KubeSpawner.lifecycle_hooks = {"postStart": {"exec": {"command": ["sh", "-c", "echo hi > /tmp/x"]}}}
    spawner = make_spawner(c)
    for _ in range(2):  # the second start must not wrap the hook twice
        command = post_start(await pod_for(spawner, {"profile": "elyra"}))
        assert command[:2] == ["/bin/sh", "-c"]
        assert command[2].startswith("sh -c 'echo hi > /tmp/x' && /bin/sh -c")
        assert command[2].count("jupyterhub_ext.seeder") == 1


@pytest.mark.parametrize("settings,key", [
    ({"course_source": "relative/course"}, "course_source"),
    ({"course_source": "/home/jovyan", "course_dest": "/home/jovyan"}, "course_source"),
])
async def test_bad_course_settings_stop_the_hub(settings, key):
    with pytest.raises(ConfigError) as info:
        ProfilesKubeSpawner.check_config(chart_config(**settings))
    assert info.value.path == f"ProfilesKubeSpawner.{key}"


async def test_http_post_start_cannot_be_combined():
    c = chart_config(course_source="/opt/course")
    c.KubeSpawner.lifecycle_hooks = {"postStart": {"httpGet": {"path": "/", "port": 80}}}
    with pytest.raises(ConfigError, match="only an exec postStart hook"):
        ProfilesKubeSpawner.check_config(c)
