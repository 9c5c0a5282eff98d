"""The storage plan and its merge into configured values, as pure functions (no spawner)."""

from __future__ import annotations

import pytest

from jupyterhub_ext.catalog.access import Who
from jupyterhub_ext.storage import (
    INIT_CONTAINER, OWNERSHIP_SCRIPT, merge_init_containers, merge_keyed, merge_security, merge_tolerations,
    plan_storage,
)
from jupyterhub_ext.traitvalues import name_of, restored

from .settings import settings

EFS = settings(shared_pvc="efs-persist-shared", shared_group_dirs=["math", "physics"])
STUDENT = Who("ann", frozenset({"students", "math"}))
INSTRUCTOR = Who("ivy", frozenset({"instructors"}))
ADMIN = Who("root-ish", frozenset(), admin=True)

USER_CONTEXT = {"runAsUser": 1000, "runAsGroup": 100, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                "privileged": False, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def test_student_efs_home_read_only_shared_and_own_group_dir():
    plan = plan_storage(STUDENT, "ann", EFS)
    assert plan.volumes == {
        "home": {"name": "home", "persistentVolumeClaim": {"claimName": "efs-persist"}},
        "shared": {"name": "shared", "persistentVolumeClaim": {"claimName": "efs-persist-shared"}},
    }
    assert plan.volume_mounts == {
        "/home/jovyan": {"name": "home", "mountPath": "/home/jovyan", "subPath": "ann"},
        "/home/shared": {"name": "shared", "mountPath": "/home/shared", "readOnly": True},
        # a member of 'math' writes there, over the read-only parent; 'physics' is not hers
        "/home/shared/math": {"name": "shared", "mountPath": "/home/shared/math", "subPath": "math"},
    }
    assert plan.shared_access == "read-only"
    assert plan.init_containers == {}  # access-point: nothing runs in the pod
    assert plan.container_security_context == USER_CONTEXT
    assert plan.pod_security_context == {"fsGroup": 100, "fsGroupChangePolicy": "OnRootMismatch"}
    assert plan.traits == {"uid": 1000, "gid": 100, "fs_gid": 100, "allow_privilege_escalation": False,
                           "privileged": False}


@pytest.mark.parametrize("who", [INSTRUCTOR, ADMIN], ids=["instructor", "admin"])
def test_instructors_and_admins_write_the_whole_shared_volume(who):
    plan = plan_storage(who, "x", EFS)
    assert plan.volume_mounts["/home/shared"] == {"name": "shared", "mountPath": "/home/shared", "readOnly": False}
    assert plan.shared_access == "read-write"
    assert not [p for p in plan.volume_mounts if p.startswith("/home/shared/")]  # the parent is writable


def test_write_groups_are_configurable():
    s = settings(shared_pvc="sh", shared_write_groups=["staff"])
    assert plan_storage(INSTRUCTOR, "x", s).shared_access == "read-only"
    assert plan_storage(Who("s", frozenset({"staff"})), "x", s).shared_access == "read-write"


def test_shared_subpath_is_used_for_the_mount_and_group_dirs():
    s = settings(shared_pvc="efs-persist", home_subpath_template="homes/{username}", shared_subpath="shared",
                        shared_group_dirs=["math"])
    plan = plan_storage(STUDENT, "homes/ann", s)
    assert plan.volume_mounts["/home/shared"]["subPath"] == "shared"
    assert plan.volume_mounts["/home/shared/math"]["subPath"] == "shared/math"
    assert plan.volume_mounts["/home/jovyan"]["subPath"] == "homes/ann"


def test_no_shared_volume_when_not_configured():
    plan = plan_storage(STUDENT, "ann", settings())
    assert set(plan.volumes) == {"home"} and set(plan.volume_mounts) == {"/home/jovyan"}
    assert plan.shared_access is None


def test_init_container_mode_fixes_only_the_users_own_directories():
    s = settings(shared_pvc="efs-persist-shared", shared_group_dirs=["math"], home_ownership="init-container")
    init = plan_storage(STUDENT, "ann", s).init_containers[INIT_CONTAINER]
    assert init["image"] == "quay.io/jupyterhub/k8s-network-tools:4.4.0"
    assert init["command"][:3] == ["sh", "-c", OWNERSHIP_SCRIPT]
    assert init["command"][3:] == [INIT_CONTAINER, "1000", "100", "/mnt/home", "/mnt/shared-math"]
    # her home and her group's directory: never the volume roots, never anyone else's directory
    assert init["volumeMounts"] == [
        {"name": "home", "mountPath": "/mnt/home", "subPath": "ann"},
        {"name": "shared", "mountPath": "/mnt/shared-math", "subPath": "math"},
    ]
    assert init["securityContext"] == {
        "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
        "privileged": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # the user container itself is as locked down as in access-point mode
    assert plan_storage(STUDENT, "ann", s).container_security_context == USER_CONTEXT


def test_init_container_for_a_writer_covers_the_shared_root_too():
    s = settings(shared_pvc="efs-persist-shared", home_ownership="init-container")
    init = plan_storage(INSTRUCTOR, "ivy", s).init_containers[INIT_CONTAINER]
    assert [m["mountPath"] for m in init["volumeMounts"]] == ["/mnt/home", "/mnt/shared"]
    assert init["volumeMounts"][1]["readOnly"] is False


def test_pvc_mode_uses_kubespawners_pvc_machinery():
    s = settings(home_mode="pvc", home_pvc_size="5Gi", home_storage_class="managed-csi")
    plan = plan_storage(STUDENT, None, s)
    # '{pvc_name}' is filled in by KubeSpawner (pvc_name_template, remembered names, legacy 6.x names)
    assert plan.volumes["home"] == {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    assert plan.volume_mounts["/home/jovyan"] == {"name": "home", "mountPath": "/home/jovyan"}
    assert plan.traits["storage_pvc_ensure"] is True
    assert (plan.traits["storage_capacity"], plan.traits["storage_class"]) == ("5Gi", "managed-csi")
    # the cluster's default StorageClass is None for KubeSpawner ('' would mean "no class at all")
    assert plan_storage(STUDENT, None, settings(home_mode="pvc")).traits["storage_class"] is None


def test_none_mode_has_no_home():
    plan = plan_storage(INSTRUCTOR, None, settings(home_mode="none", shared_pvc="sh"))
    assert set(plan.volumes) == {"shared"} and set(plan.volume_mounts) == {"/home/shared"}
    assert plan.init_containers == {} and "storage_pvc_ensure" not in plan.traits
    # without a home, the init container still fixes what this user writes on the shared volume
    s = settings(home_mode="none", shared_pvc="sh", home_ownership="init-container")
    init = plan_storage(INSTRUCTOR, None, s).init_containers[INIT_CONTAINER]
    assert [m["mountPath"] for m in init["volumeMounts"]] == ["/mnt/shared"]
    assert plan_storage(Who("x"), None, s).init_containers == {}  # a reader has nothing to fix


def test_efs_mode_refuses_an_unsafe_home_dir():
    for bad in (None, "", "..", "a/../b", "/abs", "a//b"):
        with pytest.raises(ValueError):
            plan_storage(STUDENT, bad, settings())


def test_custom_ids_flow_into_every_context():
    s = settings(uid=1001, gid=1001, fs_gid=1001, home_ownership="init-container")
    plan = plan_storage(STUDENT, "ann", s)
    assert plan.container_security_context["runAsUser"] == 1001
    assert plan.pod_security_context["fsGroup"] == 1001
    assert plan.init_containers[INIT_CONTAINER]["command"][4:6] == ["1001", "1001"]


# -- merging -------------------------------------------------------------------------------------------

HOME = {"name": "home", "persistentVolumeClaim": {"claimName": "efs-persist"}}
FILES = {"name": "files", "secret": {"secretName": "x"}}
SCRATCH = {"name": "scratch", "emptyDir": {}}


def test_restored_brings_back_what_a_list_override_replaced():
    def back(base, current):
        return restored(base, current, name_of, key=name_of)

    assert back([FILES], [SCRATCH]) == [FILES, SCRATCH]                  # list replaced list
    assert back({"f": FILES}, [SCRATCH]) == [FILES, SCRATCH]             # list replaced dict
    assert back([FILES], {"s": SCRATCH}) == {"s": SCRATCH, "files": FILES}  # dict replaced list: a dict still
    assert back([FILES], [FILES]) == [FILES]                             # no override
    # dict into dict was merged by KubeSpawner, a None removal included: trust it
    assert back({"f": FILES, "s": SCRATCH}, {"s": SCRATCH}) == {"s": SCRATCH}


def test_merge_keyed_plan_wins_and_keeps_everything_else_in_the_configured_shape():
    plan = {"home": HOME}
    merged, replaced = merge_keyed([FILES], [SCRATCH, {"name": "home", "emptyDir": {}}], name_of, plan)
    assert merged == [FILES, SCRATCH, HOME]  # a list stays a list: the configured entries, then the override's
    assert replaced == ["home"]
    # a dict stays a dict, the operator's keys kept; ours under their name
    merged, replaced = merge_keyed({"f": FILES}, {"f": FILES, "h": {"name": "home", "emptyDir": {}}}, name_of, plan)
    assert merged == {"f": FILES, "h": HOME} and replaced == ["home"]
    merged, _ = merge_keyed({"f": FILES}, {"f": FILES}, name_of, plan)
    assert merged == {"f": FILES, "home": HOME}


def test_merge_init_containers_ours_first_then_the_configured_order():
    ours = {"home-ownership": {"name": "home-ownership", "image": "i"}}
    a, b, c = ({"name": n, "image": "i"} for n in "abc")
    merged = merge_init_containers([b, a], [c], ours)
    assert [v["name"] for v in merged] == ["home-ownership", "b", "a", "c"]
    # a configured container with our name is replaced, not duplicated
    again = merge_init_containers([b, a], merged, ours)
    assert [v["name"] for v in again] == ["home-ownership", "b", "a", "c"]
    # in dict form ours sorts first too (KubeSpawner orders by key), the operator's keys kept
    as_dict = merge_init_containers({"000-b": b, "001-a": a}, {"000-b": b, "001-a": a}, ours)
    assert [as_dict[k]["name"] for k in sorted(as_dict)] == ["home-ownership", "b", "a"]
    assert {"000-b", "001-a"} <= set(as_dict)


def test_merge_tolerations_brings_back_the_chart_ones_under_a_list_override():
    chart = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert merge_tolerations(chart, chart) == chart
    assert merge_tolerations(chart, {"a": chart[0], "b": gpu}) == {"a": chart[0], "b": gpu}  # catalog merged
    assert merge_tolerations(chart, [gpu]) == [chart[0], gpu]


def test_merge_security_keeps_ours_and_configured_extras():
    ours = {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}
    merged = merge_security({"runAsUser": 1000, "readOnlyRootFilesystem": False,
                             "capabilities": {"drop": ["NET_RAW"]}}, ours)
    assert merged == {"runAsUser": 1000, "readOnlyRootFilesystem": False, "capabilities": {"drop": ["ALL", "NET_RAW"]}}
