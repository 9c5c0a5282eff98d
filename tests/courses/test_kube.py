"""Courses in the pods ProfilesKubeSpawner makes: every delivery, several courses by group, the start-up checks.

Pods are built by the spawner's own code path (load_user_options + KubeSpawner's get_pod_manifest) from the
chart's user-pod settings, and validated with kubernetes-validate --strict.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from jupyterhub_ext.courses.model import IMAGE_COURSE_DIR, IMAGE_SEEDER_DIR
from jupyterhub_ext.courses.plan import IMAGE_VOLUME_ROOT, INIT_SOURCE
from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.spawner import ProfilesKubeSpawner
from tests.storage.conftest import chart_config, container, make_spawner

K8S_VERSION = "1.33.0"  # image volumes are in the schema from 1.31 on (beta from 1.33)
CS101 = {"name": "cs101", "image": "ghcr.io/uni/cs101-course:2026-12-01", "groups": ["cs101"]}
STATS = {"name": "stats200", "image": "ghcr.io/uni/stats200-course:2026-11-20", "groups": ["stats200"],
         "on_deleted": "respect", "time_budget": 40}


async def pod(spawner, profile: str = "cpu") -> dict:
    spawner.user_options = {"profile": profile}
    await spawner.load_user_options()
    manifest = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def inits(manifest: dict) -> list[dict]:
    return manifest["spec"].get("initContainers") or []


def course_inits(manifest: dict) -> dict[str, dict]:
    return {c["name"]: c for c in inits(manifest) if c["name"].startswith("course-")}


def post_start(manifest: dict):
    return (container(manifest).get("lifecycle") or {}).get("postStart", {}).get("exec", {}).get("command")


def seeder_args(argv: list[str]) -> dict[str, str]:
    i = argv.index("--source")
    return dict(zip(argv[i::2], argv[i + 1::2]))


async def test_an_image_course_is_an_init_container_run_last_as_the_user_on_the_home():
    c = chart_config(courses=[CS101])
    manifest = await pod(make_spawner(c, "ann", groups=["cs101"]))
    names = [i["name"] for i in inits(manifest)]
    # after the chart's own and the ownership fix (when there is one): the home is the user's before the seeder
    assert names[-1] == "course-cs101" and names.index("block-cloud-metadata") < names.index("course-cs101")
    init = course_inits(manifest)["course-cs101"]
    assert init["image"] == CS101["image"] and init["imagePullPolicy"] == "IfNotPresent"
    home = next(m for m in container(manifest)["volumeMounts"] if m["mountPath"] == "/home/jovyan")
    assert init["volumeMounts"] == [{"name": home["name"], "mountPath": "/home/jovyan", "subPath": home["subPath"]}]
    sc = init["securityContext"]
    assert sc["runAsUser"] == 1000 and sc["runAsGroup"] == 100 and sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert init["resources"]["limits"] == {"cpu": "1", "memory": "256Mi"}
    argv = init["command"]
    assert argv[:2] == ["/bin/sh", "-c"] and "{" not in argv[2]  # KubeSpawner formats init containers
    assert any(IMAGE_SEEDER_DIR in a for a in argv)  # the course image's own seeder, not the user image's
    args = seeder_args(argv)
    assert args["--source"] == IMAGE_COURSE_DIR and args["--dest"] == "/home/jovyan/cs101"
    assert post_start(manifest) is None  # nothing asked of the user image


async def test_a_third_party_image_gets_the_course_too():
    # every profile of the catalog, whatever its image: the course does not depend on it
    c = chart_config(courses=[{"name": "cs101", "image": CS101["image"]}])  # for everyone
    for profile in ("cpu", "gpu"):
        manifest = await pod(make_spawner(c, "bob"), profile)
        assert "course-cs101" in course_inits(manifest)


async def test_several_courses_by_group_each_in_its_own_folder():
    c = chart_config(courses=[CS101, STATS])
    both = await pod(make_spawner(c, "cat", groups=["cs101", "stats200"]))
    assert list(course_inits(both)) == ["course-cs101", "course-stats200"]
    stats = seeder_args(course_inits(both)["course-stats200"]["command"])
    assert stats["--dest"] == "/home/jovyan/stats200" and stats["--on-deleted"] == "respect"
    assert stats["--time-budget"] == "40"
    one = await pod(make_spawner(c, "dan", groups=["stats200"]))
    assert list(course_inits(one)) == ["course-stats200"]
    none = await pod(make_spawner(c, "eve", groups=["other"]))
    assert course_inits(none) == {}
    admin = await pod(make_spawner(c, "root-ish", admin=True))  # an admin is not a student of every class
    assert course_inits(admin) == {}


async def test_leaving_a_group_stops_the_course_on_the_next_start_only():
    c = chart_config(courses=[CS101, STATS])
    spawner = make_spawner(c, "fay", groups=["cs101", "stats200"])
    assert len(course_inits(await pod(spawner))) == 2
    spawner.user.groups = spawner.user.groups[1:]
    assert list(course_inits(await pod(spawner))) == ["course-stats200"]  # nothing of cs101's is removed


async def test_list_shaped_init_containers_stay_a_list_with_the_course_last():
    c = chart_config(courses=[CS101])
    spawner = make_spawner(c, "gus", groups=["cs101"])
    await pod(spawner)
    assert isinstance(spawner.init_containers, list)
    assert spawner.init_containers[-1]["name"] == "course-cs101"


async def test_dict_shaped_init_containers_sort_the_course_last():
    c = chart_config(courses=[CS101])
    c.KubeSpawner.init_containers = {"zz-late": {"name": "zz-late", "image": "busybox:1.37.0", "command": ["true"]}}
    names = [i["name"] for i in inits(await pod(make_spawner(c, "hal", groups=["cs101"])))]
    assert names[-2:] == ["zz-late", "course-cs101"]


async def test_image_volume_delivery_mounts_the_course_image_and_seeds_from_post_start():
    c = chart_config(courses=[CS101], course_delivery="image-volume", course_python="/opt/conda/bin/python3")
    manifest = await pod(make_spawner(c, "ivy", groups=["cs101"]))
    assert course_inits(manifest) == {}
    volume = next(v for v in manifest["spec"]["volumes"] if v["name"] == "course-cs101")
    assert volume["image"] == {"reference": CS101["image"], "pullPolicy": "IfNotPresent"}
    at = f"{IMAGE_VOLUME_ROOT}/cs101"
    mount = next(m for m in container(manifest)["volumeMounts"] if m["name"] == "course-cs101")
    assert mount == {"name": "course-cs101", "mountPath": at, "readOnly": True}
    command = post_start(manifest)
    assert command[:2] == ["/bin/sh", "-c"] and "/opt/conda/bin/python3" in command
    assert command[command.index("--source") + 1] == at + IMAGE_COURSE_DIR
    assert any(at + IMAGE_SEEDER_DIR in a for a in command)


async def test_a_shared_course_is_seeded_from_the_shared_volume_read_only():
    c = chart_config(courses=[{"name": "week-notes", "shared": "courses/notes", "folder": "notes"}],
                     shared_pvc="efs-shared", shared_subpath="shared", course_seeder_image="ghcr.io/uni/course:1")
    manifest = await pod(make_spawner(c, "jan"))
    init = course_inits(manifest)["course-week-notes"]
    assert init["image"] == "ghcr.io/uni/course:1"
    source = next(m for m in init["volumeMounts"] if m["mountPath"] == INIT_SOURCE)
    assert source == {"name": "shared", "mountPath": INIT_SOURCE, "subPath": "shared/courses/notes",
                      "readOnly": True}
    assert seeder_args(init["command"])["--dest"] == "/home/jovyan/notes"


async def test_a_course_inside_the_user_image_uses_post_start_and_logs_when_it_cannot_run():
    c = chart_config(courses=[{"name": "intro", "path": "/opt/course", "folder": "."}])
    command = post_start(await pod(make_spawner(c, "kim")))
    assert command[:2] == ["/bin/sh", "-c"] and "|| true" not in command[2]
    assert "/home/jovyan/.course-seeder/seeder.log" in command[2]  # a failure the user can read


async def test_course_source_shorthand_is_one_path_course():
    c = chart_config(course_source="/opt/course", course_dest="/home/jovyan/material", course_on_deleted="restore")
    command = post_start(await pod(make_spawner(c, "lee")))
    args = seeder_args(command)
    assert args["--source"] == "/opt/course" and args["--dest"] == "/home/jovyan/material"
    assert args["--on-deleted"] == "restore"


async def test_the_operator_post_start_hook_runs_first_and_is_not_wrapped_twice():
    c = chart_config(courses=[{"name": "intro", "path": "/opt/course"}])
    c.KubeSpawner.lifecycle_hooks = {"postStart": {"exec": {"command": ["sh", "-c", "echo hi > /tmp/x"]}}}
    spawner = make_spawner(c, "max")
    for _ in range(2):
        command = post_start(await pod(spawner))
        assert command[2].startswith("sh -c 'echo hi > /tmp/x' && /bin/sh -c")
        assert command[2].count("--source") == 1


async def test_nothing_of_a_course_leaks_into_the_next_users_start():
    c = chart_config(courses=[CS101])
    spawner = make_spawner(c, "ned", groups=["cs101"])
    assert course_inits(await pod(spawner))
    spawner.user.groups = []
    manifest = await pod(spawner)
    assert course_inits(manifest) == {} and post_start(manifest) is None


@pytest.mark.parametrize("settings,key,message", [
    ({"courses": [{"name": "cs101", "imgae": "x:1"}]}, "ProfilesKubeSpawner.courses[0].imgae", "did you mean 'image'"),
    ({"courses": [{"name": "cs101"}]}, "ProfilesKubeSpawner.courses[0]", "exactly one source"),
    ({"courses": [{"name": "cs101", "image": "x:1", "path": "/opt/c"}]}, "ProfilesKubeSpawner.courses[0]",
     "exactly one source"),
    ({"courses": [CS101, {**STATS, "name": "cs101"}]}, "ProfilesKubeSpawner.courses[1].name", "also"),
    ({"courses": [CS101, {**STATS, "folder": "cs101/extra"}]}, "ProfilesKubeSpawner.courses[1].folder",
     "share a folder"),
    ({"courses": [{**CS101, "folder": "../escape"}]}, "ProfilesKubeSpawner.courses[0].folder", "plain name"),
    ({"courses": [{"name": "CS 101", "image": "x:1"}]}, "ProfilesKubeSpawner.courses[0].name", "lower-case"),
    ({"courses": [{"name": "c", "directory": "/srv/c"}]}, "ProfilesKubeSpawner.courses[0].directory",
     "cannot deliver"),
    ({"courses": [{"name": "c", "shared": "c"}]}, "ProfilesKubeSpawner.courses[0].shared", "set shared_pvc"),
    ({"courses": [{"name": "c", "shared": "c"}], "shared_pvc": "efs-shared"},
     "ProfilesKubeSpawner.course_seeder_image", "course image"),
    ({"courses": [CS101], "home_mode": "none"}, "ProfilesKubeSpawner.courses[0].image", "home on a volume"),
    ({"courses": [{**CS101, "exclude": ["*.{tmp}"]}]}, "ProfilesKubeSpawner.courses[0].exclude", "braces"),
    ({"courses": [CS101], "course_source": "/opt/course"}, "ProfilesKubeSpawner.course_source", "not both"),
    ({"course_source": "relative/course"}, "ProfilesKubeSpawner.course_source", "absolute"),
    ({"course_source": "/opt/course", "course_dest": "/srv"}, "ProfilesKubeSpawner.course_dest", "in it"),
    ({"courses": [CS101], "course_init_resources": {"limits": {"memory": "lots"}}},
     "ProfilesKubeSpawner.course_init_resources.limits.memory", ""),
])
async def test_a_bad_course_list_stops_the_hub_naming_the_key(settings, key, message):
    with pytest.raises(ConfigError) as info:
        ProfilesKubeSpawner.check_config(chart_config(**settings))
    assert info.value.path == key and message in info.value.message


async def test_an_http_post_start_hook_cannot_share_post_start_with_the_seeder():
    c = chart_config(courses=[{"name": "intro", "path": "/opt/course"}])
    c.KubeSpawner.lifecycle_hooks = {"postStart": {"httpGet": {"path": "/", "port": 80}}}
    with pytest.raises(ConfigError, match="only an exec postStart hook"):
        ProfilesKubeSpawner.check_config(c)
    # an init-container course does not touch postStart: the same hook is fine
    c.ProfilesKubeSpawner.courses = [CS101]
    ProfilesKubeSpawner.check_config(c)
