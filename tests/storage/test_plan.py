"""The storage plan and its merge into configured values, as pure functions (no spawner)."""

from __future__ import annotations

import pytest

from jupyterhub_ext.storage import (
    INIT_CONTAINER, OWNERSHIP_SCRIPT, StorageSettings, Who, merge_init_containers, merge_keyed, merge_security,
    merge_tolerations, mount_identity, plan_storage, volume_identity, with_base,
)

EFS = StorageSettings(shared_pvc="efs-persist-shared", shared_group_dirs=("math", "physics"))
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
    s = StorageSettings(shared_pvc="sh", shared_write_groups=frozenset({"staff"}))
    assert plan_storage(INSTRUCTOR, "x", s).shared_access == "read-only"
    assert plan_storage(Who("s", frozenset({"staff"})), "x", s).shared_access == "read-write"


def test_shared_subpath_is_used_for_the_mount_and_group_dirs():
    s = StorageSettings(shared_pvc="efs-persist", home_subpath_template="homes/{username}", shared_subpath="shared",
                        shared_group_dirs=("math",))
    plan = plan_storage(STUDENT, "homes/ann", s)
    assert plan.volume_mounts["/home/shared"]["subPath"] == "shared"
    assert plan.volume_mounts["/home/shared/math"]["subPath"] == "shared/math"
    assert plan.volume_mounts["/home/jovyan"]["subPath"] == "homes/ann"


def test_no_shared_volume_when_not_configured():
    plan = plan_storage(STUDENT, "ann", StorageSettings())
    assert set(plan.volumes) == {"home"} and set(plan.volume_mounts) == {"/home/jovyan"}
    assert plan.shared_access is None


def test_init_container_mode_fixes_only_the_users_own_directories():
    s = StorageSettings(shared_pvc="efs-persist-shared", shared_group_dirs=("math",), ownership="init-container")
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
    s = StorageSettings(shared_pvc="efs-persist-shared", ownership="init-container")
    init = plan_storage(INSTRUCTOR, "ivy", s).init_containers[INIT_CONTAINER]
    assert [m["mountPath"] for m in init["volumeMounts"]] == ["/mnt/home", "/mnt/shared"]
    assert init["volumeMounts"][1]["readOnly"] is False


def test_pvc_mode_uses_kubespawners_pvc_machinery():
    s = StorageSettings(home_mode="pvc", home_pvc_size="5Gi", home_storage_class="managed-csi")
    plan = plan_storage(STUDENT, None, s)
    # '{pvc_name}' is filled in by KubeSpawner (pvc_name_template, remembered names, legacy 6.x names)
    assert plan.volumes["home"] == {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    assert plan.volume_mounts["/home/jovyan"] == {"name": "home", "mountPath": "/home/jovyan"}
    assert plan.traits["storage_pvc_ensure"] is True
    assert (plan.traits["storage_capacity"], plan.traits["storage_class"]) == ("5Gi", "managed-csi")
    # the cluster's default StorageClass is None for KubeSpawner ('' would mean "no class at all")
    assert plan_storage(STUDENT, None, StorageSettings(home_mode="pvc")).traits["storage_class"] is None


def test_none_mode_has_no_home():
    plan = plan_storage(INSTRUCTOR, None, StorageSettings(home_mode="none", shared_pvc="sh"))
    assert set(plan.volumes) == {"shared"} and set(plan.volume_mounts) == {"/home/shared"}
    assert plan.init_containers == {} and "storage_pvc_ensure" not in plan.traits
    # without a home, the init container still fixes what this user writes on the shared volume
    s = StorageSettings(home_mode="none", shared_pvc="sh", ownership="init-container")
    init = plan_storage(INSTRUCTOR, None, s).init_containers[INIT_CONTAINER]
    assert [m["mountPath"] for m in init["volumeMounts"]] == ["/mnt/shared"]
    assert plan_storage(Who("x"), None, s).init_containers == {}  # a reader has nothing to fix


def test_efs_mode_refuses_an_unsafe_home_dir():
    for bad in (None, "", "..", "a/../b", "/abs", "a//b"):
        with pytest.raises(ValueError):
            plan_storage(STUDENT, bad, StorageSettings())


def test_custom_ids_flow_into_every_context():
    s = StorageSettings(uid=1001, gid=1001, fs_gid=1001, ownership="init-container")
    plan = plan_storage(STUDENT, "ann", s)
    assert plan.container_security_context["runAsUser"] == 1001
    assert plan.pod_security_context["fsGroup"] == 1001
    assert plan.init_containers[INIT_CONTAINER]["command"][4:6] == ["1001", "1001"]


# -- merging -------------------------------------------------------------------------------------------

HOME = {"name": "home", "persistentVolumeClaim": {"claimName": "efs-persist"}}
FILES = {"name": "files", "secret": {"secretName": "x"}}
SCRATCH = {"name": "scratch", "emptyDir": {}}


def test_with_base_brings_back_what_a_list_override_replaced():
    assert with_base([FILES], [SCRATCH]) == [FILES, SCRATCH]        # list replaced list
    assert with_base({"f": FILES}, [SCRATCH]) == [FILES, SCRATCH]   # list replaced dict
    assert with_base([FILES], {"s": SCRATCH}) == [FILES, SCRATCH]   # dict replaced list
    assert with_base([FILES], [FILES]) == [FILES]                   # no override
    # dict into dict was merged by KubeSpawner, a None removal included: trust it
    assert with_base({"f": FILES, "s": SCRATCH}, {"s": SCRATCH}) == [SCRATCH]


def test_merge_keyed_plan_wins_and_keeps_everything_else():
    plan = {"home": HOME}
    merged, replaced = merge_keyed([FILES], [SCRATCH, {"name": "home", "emptyDir": {}}], volume_identity, plan)
    assert merged == {"files": FILES, "scratch": SCRATCH, "home": HOME}
    assert replaced == ["home"]


def test_merge_init_containers_ours_first_then_the_configured_order():
    ours = {"home-ownership": {"name": "home-ownership", "image": "i"}}
    a, b, c = ({"name": n, "image": "i"} for n in "abc")
    merged = merge_init_containers([b, a], [c], ours)
    assert list(merged) == ["000-home-ownership", "001-b", "002-a", "003-c"]
    # a configured container with our name is replaced, not duplicated
    again = merge_init_containers([b, a], merged, ours)
    assert [v["name"] for v in again.values()] == ["home-ownership", "b", "a", "c"]


def test_merge_tolerations_only_when_an_override_dropped_the_chart_ones():
    chart = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert merge_tolerations(chart, chart) is None
    assert merge_tolerations(chart, {"a": chart[0], "b": gpu}) is None  # the catalog already merged
    merged = merge_tolerations(chart, [gpu])
    assert sorted(map(str, merged.values())) == sorted(map(str, [chart[0], gpu]))


def test_merge_security_keeps_ours_and_configured_extras():
    ours = {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}
    merged = merge_security({"runAsUser": 1000, "readOnlyRootFilesystem": False,
                             "capabilities": {"drop": ["NET_RAW"]}}, ours)
    assert merged == {"runAsUser": 1000, "readOnlyRootFilesystem": False, "capabilities": {"drop": ["ALL", "NET_RAW"]}}
