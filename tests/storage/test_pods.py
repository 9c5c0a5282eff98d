"""The pods ProfilesKubeSpawner builds with each storage mode, each valid for ``kubernetes-validate --strict``."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from traitlets.config import Config

from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.spawner import ProfilesKubeSpawner
from jupyterhub_ext.storage import OWNERSHIP_SCRIPT

from .conftest import (
    CATALOG, CHART_IPTABLES, CHART_TOLERATIONS, K8S_VERSION, chart_config, container, make_spawner, mounts, pod_for,
    set_user, volumes,
)

SHARED = dict(shared_pvc="efs-persist-shared", shared_group_dirs=["math"])
USER_CONTEXT = {"runAsUser": 1000, "runAsGroup": 100, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                "privileged": False, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
ROLES = {"student": ("ann", ["students", "math"], False), "instructor": ("ivy", ["instructors"], False),
         "admin": ("ada", [], True)}


async def test_efs_student_pod_exactly():
    pod = await pod_for(make_spawner(chart_config(**SHARED), "Ann.Lee", ["students", "math"]))
    assert volumes(pod) == {
        "home": {"name": "home", "persistentVolumeClaim": {"claimName": "efs-persist"}},
        "shared": {"name": "shared", "persistentVolumeClaim": {"claimName": "efs-persist-shared"}},
    }
    assert mounts(pod) == {
        # the KubeSpawner 6 name: her z2jh 3 home is still hers
        "/home/jovyan": {"name": "home", "mountPath": "/home/jovyan", "subPath": "-41nn-2e-4cee"},
        "/home/shared": {"name": "shared", "mountPath": "/home/shared", "readOnly": True},
        "/home/shared/math": {"name": "shared", "mountPath": "/home/shared/math", "subPath": "math"},
    }
    assert container(pod)["securityContext"] == USER_CONTEXT
    assert pod["spec"]["securityContext"] == {"fsGroup": 100, "fsGroupChangePolicy": "OnRootMismatch"}
    # access-point mode adds nothing to the pod; the chart's own init container is kept as it was
    assert pod["spec"]["initContainers"] == [CHART_IPTABLES]
    env = {e["name"] for e in container(pod).get("env", [])}
    assert not env & {"GRANT_SUDO", "CHOWN_HOME", "NB_UID"}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("mode, ownership", [("efs", "access-point"), ("efs", "init-container"),
                                             ("pvc", "access-point"), ("pvc", "init-container"),
                                             ("none", "access-point")])
async def test_every_mode_and_role_gives_a_valid_pod(mode, ownership, role):
    name, groups, admin = ROLES[role]
    spawner = make_spawner(chart_config(home_mode=mode, home_ownership=ownership, **SHARED), name, groups, admin)
    pod = await pod_for(spawner)  # validated --strict inside
    m, v = mounts(pod), volumes(pod)
    assert ("/home/jovyan" in m) == (mode != "none")
    if mode == "efs":
        assert m["/home/jovyan"]["subPath"] == name and v["home"]["persistentVolumeClaim"]["claimName"] == "efs-persist"
    if mode == "pvc":
        assert "subPath" not in m["/home/jovyan"]
        assert v["home"]["persistentVolumeClaim"]["claimName"] == spawner.pvc_name == f"claim-{name}"
    assert m["/home/shared"]["readOnly"] is (role == "student")
    assert ("/home/shared/math" in m) is (role == "student")
    inits = [c["name"] for c in pod["spec"]["initContainers"]]
    if ownership == "init-container" and mode != "none":
        assert inits == ["home-ownership", "block-cloud-metadata"]
    else:
        assert inits == ["block-cloud-metadata"]
    assert container(pod)["securityContext"] == USER_CONTEXT


async def test_init_container_sees_only_the_users_own_directories():
    spawner = make_spawner(chart_config(home_ownership="init-container", **SHARED), "ann", ["math"])
    pod = await pod_for(spawner)
    init = pod["spec"]["initContainers"][0]
    assert init["name"] == "home-ownership"
    assert init["image"] == "quay.io/jupyterhub/k8s-network-tools:4.4.0"
    assert mounts(pod, "home-ownership") == {
        "/mnt/home": {"name": "home", "mountPath": "/mnt/home", "subPath": "ann"},
        "/mnt/shared-math": {"name": "shared", "mountPath": "/mnt/shared-math", "subPath": "math"},
    }
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]}
    # the script reached the pod unchanged (KubeSpawner formats init containers: it holds no braces)
    assert init["command"][2] == OWNERSHIP_SCRIPT
    assert init["command"][3:] == ["home-ownership", "1000", "100", "/mnt/home", "/mnt/shared-math"]


async def test_pvc_mode_creates_the_claim_with_kubespawner():
    spawner = make_spawner(chart_config(home_mode="pvc", home_pvc_size="2Gi", home_storage_class="managed-csi"),
                           "Bob")
    pod = await pod_for(spawner)
    assert spawner.storage_pvc_ensure is True
    pvc = spawner.api.api_client.sanitize_for_serialization(spawner.get_pvc_manifest())
    kubernetes_validate.validate(pvc, K8S_VERSION, strict=True)
    assert pvc["metadata"]["name"] == spawner.pvc_name == volumes(pod)["home"]["persistentVolumeClaim"]["claimName"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["spec"]["storageClassName"] == "managed-csi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


async def test_pvc_mode_makes_a_fresh_disks_root_the_users_by_default():
    # a fresh disk's root is root:root and fsGroup only makes it root:100: the ownership init container fixes
    # the root once (tests/storage/test_e2e_storage.py runs it); efs mode stays without it (access points)
    pvc = make_spawner(chart_config(home_mode="pvc"), "bob")
    assert pvc.home_ownership == "init-container"
    pod = await pod_for(pvc)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["home-ownership", "block-cloud-metadata"]
    assert mounts(pod, "home-ownership") == {"/mnt/home": {"name": "home", "mountPath": "/mnt/home"}}
    assert make_spawner(chart_config(home_mode="efs"), "bob").home_ownership == "access-point"
    # set explicitly, access-point keeps the pod free of root (Pod Security restricted) at the price of a
    # root:100 home root
    plain = make_spawner(chart_config(home_mode="pvc", home_ownership="access-point"), "bob")
    assert [c["name"] for c in (await pod_for(plain))["spec"]["initContainers"]] == ["block-cloud-metadata"]


async def test_pvc_mode_keeps_a_remembered_claim():
    # KubeSpawner remembers the claim across restarts (and finds 6.x names): the pod mounts that claim
    spawner = make_spawner(chart_config(home_mode="pvc"), "bob")
    spawner.load_state({"pvc_name": "claim-bob-legacy", "kubespawner_version": "7.0.0"})
    pod = await pod_for(spawner)
    assert volumes(pod)["home"]["persistentVolumeClaim"]["claimName"] == "claim-bob-legacy"


async def test_pvc_mode_default_storage_class_is_the_clusters():
    spawner = make_spawner(chart_config(home_mode="pvc"), "bob")
    await pod_for(spawner)
    pvc = spawner.api.api_client.sanitize_for_serialization(spawner.get_pvc_manifest())
    assert "storageClassName" not in pvc["spec"] and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"


# -- merging with profiles and the chart ------------------------------------------------------------------

def with_chart_files(c: Config) -> Config:
    # what z2jh's singleuser.extraFiles / storage.extraVolumes add: a list
    c.KubeSpawner.volumes = [{"name": "files", "secret": {"secretName": "singleuser"}}]
    c.KubeSpawner.volume_mounts = [{"name": "files", "mountPath": "/etc/jupyter/files", "readOnly": True}]
    return c


async def test_profile_with_its_own_volume_lists_still_gets_home_shared_and_the_charts():
    spawner = make_spawner(with_chart_files(chart_config(**SHARED)), "ann", ["math"])
    pod = await pod_for(spawner, {"profile": "scratch"})
    assert set(volumes(pod)) == {"home", "shared", "files", "scratch"}
    assert set(mounts(pod)) == {"/home/jovyan", "/home/shared", "/home/shared/math", "/etc/jupyter/files",
                                "/scratch"}
    # the profile's init container list did not drop the chart's metadata blocker
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["block-cloud-metadata", "warm-cache"]
    # the traits keep the shape the operator gave them (lists here), with the storage entries in them
    assert isinstance(spawner.volumes, list) and isinstance(spawner.volume_mounts, list)
    assert isinstance(spawner.init_containers, list)
    assert {v["name"] for v in spawner.volumes} == {"home", "shared", "files", "scratch"}
    assert "/home/jovyan" in {m["mountPath"] for m in spawner.volume_mounts}


async def test_gpu_profile_dict_volumes_and_tolerations_are_merged():
    spawner = make_spawner(with_chart_files(chart_config(**SHARED)), "ivy", ["instructors"], admin=True)
    pod = await pod_for(spawner, {"profile": "gpu"})
    assert set(volumes(pod)) == {"home", "shared", "files", "dshm"}
    assert mounts(pod)["/dev/shm"]["name"] == "dshm" and mounts(pod)["/home/shared"]["readOnly"] is False
    keys = {t["key"] for t in pod["spec"]["tolerations"]}
    assert keys == {t["key"] for t in CHART_TOLERATIONS} | {"nvidia.com/gpu"}


async def test_nothing_leaks_from_one_start_into_the_next():
    c = with_chart_files(chart_config(**SHARED))
    spawner = make_spawner(c, "ann", ["math"])
    await pod_for(spawner, {"profile": "scratch"})
    # she leaves the math group and starts the plain profile
    set_user(spawner, "ann", ["students"])
    pod = await pod_for(spawner, {"profile": "cpu"})
    assert set(volumes(pod)) == {"home", "shared", "files"}
    assert set(mounts(pod)) == {"/home/jovyan", "/home/shared", "/etc/jupyter/files"}
    assert pod["spec"]["initContainers"] == [CHART_IPTABLES]
    # the configured values are what the next start begins from
    assert spawner.configured("volumes") == c.KubeSpawner.volumes
    assert spawner.configured("init_containers") == [CHART_IPTABLES]


async def test_without_a_catalog_kubespawner_profiles_cannot_drop_home_or_chart_settings():
    c = with_chart_files(chart_config(catalog=False, **SHARED))
    c.KubeSpawner.profile_list = [{
        "display_name": "Upstream", "slug": "up", "default": True,
        "kubespawner_override": {
            "image": "x/y:1",
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "volume_mounts": [{"name": "scratch", "mountPath": "/scratch"}],
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }]
    spawner = make_spawner(c, "ann", ["math"])
    assert spawner.catalog is None
    pod = await pod_for(spawner, {"profile": "up"})
    assert container(pod)["image"] == "x/y:1"
    assert set(volumes(pod)) == {"home", "shared", "files", "scratch"}
    assert {t["key"] for t in pod["spec"]["tolerations"]} == {t["key"] for t in CHART_TOLERATIONS} | {"gpu"}
    # upstream KubeSpawner keeps overrides between starts; the storage plan still follows the user
    set_user(spawner, "ann", ["students"])
    pod = await pod_for(spawner, {"profile": "up"})
    assert "/home/shared/math" not in mounts(pod) and "/home/jovyan" in mounts(pod)


async def test_a_profile_that_sets_uid_0_never_reaches_kubernetes():
    c = chart_config(catalog=False)
    c.KubeSpawner.profile_list = [{"display_name": "Root", "slug": "root", "default": True,
                                   "kubespawner_override": {"uid": 0}}]
    spawner = make_spawner(c)
    spawner.user_options = {"profile": "root"}
    with pytest.raises(ConfigError, match="uid"):
        await spawner.load_user_options()


async def test_braces_in_a_group_directory_cannot_break_kubespawners_formatting():
    # group names are checked at start-up; what reaches the pod is exactly the configured directory
    spawner = make_spawner(chart_config(shared_pvc="sh", shared_group_dirs=["c.s-101_x"]), "ann", ["c.s-101_x"])
    pod = await pod_for(spawner)
    assert mounts(pod)["/home/shared/c.s-101_x"]["subPath"] == "c.s-101_x"


async def test_custom_home_template_and_safe_scheme():
    spawner = make_spawner(chart_config(home_subpath_template="homes/{username}", home_dir_scheme="safe"), "Ann")
    pod = await pod_for(spawner)
    assert mounts(pod)["/home/jovyan"]["subPath"] == "homes/" + spawner._expand_user_properties(
        "{username}", "safe")


# "Zoë" as JupyterHub passes it (NFC, U+00EB; nothing in between normalises it), in each scheme. 'escape' is
# KubeSpawner 6's name for every KubeSpawner release (6.x: escapism.escape(name, [a-z0-9], '-').lower(); 7.0 and
# 7.1: slugs.escape_slug, the same call); 'safe' is KubeSpawner 7's (7.0 and 7.1 agree): the name is not a valid
# DNS label, so '<stripped name>---<first 8 hex of sha256("Zoë")>'.
ZOE = "Zo\u00eb"
ZOE_HOMES = {"escape": "-5ao-c3-ab", "safe": "zo---c6a12698"}


@pytest.mark.parametrize("scheme", list(ZOE_HOMES))
async def test_the_users_home_directory_is_stable_across_starts(scheme):
    config = chart_config(home_dir_scheme=scheme)
    spawner = make_spawner(config, ZOE)
    first = mounts(await pod_for(spawner, {"profile": "cpu"}))["/home/jovyan"]["subPath"]
    second = mounts(await pod_for(spawner, {"profile": "scratch"}))["/home/jovyan"]["subPath"]
    assert first == second == ZOE_HOMES[scheme]
    again = make_spawner(chart_config(home_dir_scheme=scheme), ZOE)
    assert mounts(await pod_for(again))["/home/jovyan"]["subPath"] == ZOE_HOMES[scheme]


async def test_the_charts_own_init_container_object_survives_every_merge():
    # the real chart appends a kubernetes client V1Container (not a dict) for singleuser.cloudMetadata
    from kubernetes_asyncio import client

    c = chart_config(home_ownership="init-container", **SHARED)
    c.KubeSpawner.init_containers = [client.V1Container(
        name="block-cloud-metadata", image="quay.io/jupyterhub/k8s-network-tools:4.4.0",
        command=["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", "169.254.169.254",
                 "--destination-port", "80", "--jump", "DROP"],
        security_context=client.V1SecurityContext(privileged=True, run_as_user=0,
                                                  capabilities=client.V1Capabilities(add=["NET_ADMIN"])))]
    c.KubeSpawner.volumes = [client.V1Volume(name="files", secret=client.V1SecretVolumeSource(secret_name="s"))]
    c.KubeSpawner.volume_mounts = [client.V1VolumeMount(name="files", mount_path="/etc/files")]
    ProfilesKubeSpawner.check_config(c)
    spawner = make_spawner(c, "ann", ["math"])
    for profile in ("scratch", "cpu"):
        pod = await pod_for(spawner, {"profile": profile})
        inits = [i["name"] for i in pod["spec"]["initContainers"]]
        assert inits[:2] == ["home-ownership", "block-cloud-metadata"]
        assert {"home", "shared", "files"} <= set(volumes(pod)) and "/etc/files" in mounts(pod)


# -- a ProfilesKubeSpawner is a KubeSpawner: list-shaped traits stay lists ---------------------------------

LIST_TRAITS = ("volumes", "volume_mounts", "init_containers", "tolerations")
CATALOG_BY_SLUG = {p["slug"]: p for p in CATALOG}


@pytest.mark.parametrize("mode, ownership", [("efs", "access-point"), ("efs", "init-container"),
                                             ("pvc", "init-container"), ("none", "access-point")])
@pytest.mark.parametrize("profile", [None, "scratch", "gpu"])
async def test_list_shaped_traits_stay_lists_and_take_appends(mode, ownership, profile):
    spawner = make_spawner(with_chart_files(chart_config(home_mode=mode, home_ownership=ownership, **SHARED)),
                           "ann", ["math"], admin=True)
    spawner.user_options = {"profile": profile} if profile else {}
    await spawner.load_user_options()
    # the shape vanilla KubeSpawner leaves: the configured lists, or a profile's own dict override (gpu's
    # volumes and volume_mounts), which KubeSpawner puts in place of a list
    dict_override = set(CATALOG_BY_SLUG[profile].get("kubespawner_override", {})) if profile == "gpu" else set()
    for name in LIST_TRAITS:
        expected = dict if name in dict_override else list
        assert isinstance(getattr(spawner, name), expected), (name, getattr(spawner, name))
    # what an operator's modify_pod_hook or code written for KubeSpawner does
    spawner.init_containers.append({"name": "appended", "image": "busybox", "command": ["true"]})
    for name, entry in (("volumes", {"name": "appended", "emptyDir": {}}),
                        ("volume_mounts", {"name": "appended", "mountPath": "/appended"})):
        value = getattr(spawner, name)
        if isinstance(value, list):
            value.append(entry)
        else:
            value["appended"] = entry
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert [c["name"] for c in pod["spec"]["initContainers"]][-1] == "appended"
    assert "appended" in volumes(pod) and "/appended" in mounts(pod)
    if ownership == "init-container":  # ours still runs first
        assert pod["spec"]["initContainers"][0]["name"] == "home-ownership"


async def test_dict_shaped_traits_stay_dicts_with_the_operators_keys():
    c = chart_config(**SHARED)
    c.KubeSpawner.volumes = {"10-files": {"name": "files", "secret": {"secretName": "singleuser"}}}
    c.KubeSpawner.volume_mounts = {"10-files": {"name": "files", "mountPath": "/etc/jupyter/files"}}
    c.KubeSpawner.init_containers = {"10-iptables": copy.deepcopy(CHART_IPTABLES)}
    spawner = make_spawner(c, "ann", ["math"])
    pod = await pod_for(spawner)
    assert isinstance(spawner.volumes, dict) and spawner.volumes["10-files"]["name"] == "files"
    assert spawner.volume_mounts["10-files"]["mountPath"] == "/etc/jupyter/files"
    assert spawner.init_containers["10-iptables"] == CHART_IPTABLES
    assert set(volumes(pod)) == {"home", "shared", "files"}
