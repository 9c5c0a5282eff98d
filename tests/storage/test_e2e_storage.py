"""Storage end to end: a real hub with ProfilesKubeSpawner on the emulated cluster, whose kubelet runs each pod
as local processes with its volumes as directories (tests/harness, docs/testing.md).

- EFS (the platform's claims, on access points owned 1000:100): a file written in the home survives a restart;
  a student cannot write the shared folder, an instructor and an admin can, a group member writes their
  group's directory; a user cannot reach another user's home through anything mounted in their pod.
- A plain NFS claim whose directories the kubelet creates as root: the ``init-container`` ownership mode
  makes the home the user's, and a restart finds it right and changes nothing.
- A per-user disk (``pvc`` mode, the AKS classroom): created by KubeSpawner, writable through fsGroup,
  kept across a restart.

The emulated container's root is an overlay of this machine's root, so "cannot reach" is checked under the
paths the pod mounts (``/home``), not across the whole file system.
"""

from __future__ import annotations

import os

import pytest
from kubespawner.slugs import escape_slug

from tests.e2e.conftest import NAMESPACE, cluster, stop_module_hub, username  # noqa: F401 (fixtures)
from tests.harness.hub import start_kube_hub
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND
from tests.harness.platform import efs_objects

pytestmark = pytest.mark.e2e

IMAGE = "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
CATALOG = [{"slug": "cpu", "display_name": "CPU", "default": True, "image": IMAGE,
            "hardware": {"kind": "cpu", "cpu": {"limit": 1}, "memory": {"limit": "1G"}}}]
# the notebook server is not what is tested here: the stdlib stand-in starts in ~50 ms
CLUSTER_OPTIONS = {"command_map": {**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}}


def hub_config(**storage) -> str:
    lines = [f"c.ProfilesKubeSpawner.profiles = {CATALOG!r}"]
    lines += [f"c.ProfilesKubeSpawner.{k} = {v!r}" for k, v in storage.items()]
    # what the chart's hub.extraConfig runs: wires the spawner and checks the configuration
    lines += ["import jupyterhub_ext.z2jh", "jupyterhub_ext.z2jh.setup(c)"]
    return "\n".join(lines)


def start(request, cluster, name: str, **storage):  # noqa: F811
    hub = start_kube_hub(cluster.kubeconfig, namespace=NAMESPACE, config=hub_config(**storage),
                         name=f"e2e-storage-{name}", storage="none",
                         spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner", start_timeout=60)
    for group in ("instructors", "math"):
        hub.api("POST", f"/groups/{group}")
    return hub


@pytest.fixture(scope="module")
def efs_hub(request, cluster):  # noqa: F811
    for plural, body in efs_objects(NAMESPACE):  # helm/platform's efs-home and efs-shared, on access points
        cluster.create(plural, body, body["metadata"].get("namespace"))
    hub = start(request, cluster, "efs", home_mode="efs", home_pvc="efs-home", shared_pvc="efs-shared",
                shared_write_groups=["instructors"], shared_group_dirs=["math"])
    yield hub
    stop_module_hub(request, hub)


@pytest.fixture(scope="module")
def nfs_hub(request, cluster):  # noqa: F811
    # an NFS export whose root is root:root 0755, like a fresh file system without access points
    pv = {"metadata": {"name": f"{NAMESPACE}-nfs-homes", "annotations": {"harness.local/root-uid": "0",
                                                                         "harness.local/root-gid": "0",
                                                                         "harness.local/root-mode": "755"}},
          "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                   "nfs": {"server": "nfs.example.internal", "path": "/exports/homes"},
                   "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": NAMESPACE,
                                "name": "nfs-homes"}}}
    pvc = {"metadata": {"name": "nfs-homes", "namespace": NAMESPACE},
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv["metadata"]["name"],
                    "resources": {"requests": {"storage": "1Ti"}}}}
    cluster.create("persistentvolumes", pv)
    cluster.create("persistentvolumeclaims", pvc, NAMESPACE)
    hub = start(request, cluster, "nfs", home_mode="efs", home_pvc="nfs-homes", home_ownership="init-container",
                home_subpath_template="homes/{username}")
    yield hub
    stop_module_hub(request, hub)


@pytest.fixture(scope="module")
def pvc_hub(request, cluster):  # noqa: F811
    hub = start(request, cluster, "pvc", home_mode="pvc", home_pvc_size="1Gi")
    yield hub
    stop_module_hub(request, hub)


def member(hub, name: str, groups=(), admin: bool = False) -> str:
    hub.ensure_user(name, admin=admin)
    for g in groups:
        r = hub.api("POST", f"/groups/{g}/users", json={"users": [name]})
        assert r.status_code == 200, r.text
    return name


def home_of(user: str) -> str:
    """The user's directory (home_dir_scheme 'escape': KubeSpawner 6's name; 'a-b' is 'a-2db')."""
    return escape_slug(user)


def sh(cluster, user: str, script: str) -> tuple[int, str]:  # noqa: F811
    return cluster.exec(NAMESPACE, f"jupyter-{user}", ["sh", "-c", script])


def restart(hub, cluster, user: str) -> None:  # noqa: F811
    hub.stop_server(user)
    cluster.wait_gone("pods", f"jupyter-{user}", NAMESPACE, timeout=60)
    hub.start(user, {"profile": "cpu"}, timeout=60)


# -- EFS -----------------------------------------------------------------------------------------------------

def test_a_file_in_the_home_survives_a_restart(efs_hub, cluster, username):  # noqa: F811
    member(efs_hub, username)
    efs_hub.start(username, {"profile": "cpu"}, timeout=60)
    code, out = sh(cluster, username, "id -u; echo kept > ~/notes.txt && stat -c %u:%g ~/notes.txt")
    assert code == 0 and out.split() == ["1000", "1000:100"], out
    restart(efs_hub, cluster, username)
    code, out = sh(cluster, username, "cat ~/notes.txt")
    assert (code, out.strip()) == (0, "kept"), out
    # on the volume: the user's own directory under the access point's root, owned by its POSIX user
    home = os.path.join(cluster.claim_dir(NAMESPACE, "efs-home"), home_of(username))
    st = os.stat(home)
    assert (st.st_uid, st.st_gid) == (1000, 100) and os.path.isfile(os.path.join(home, "notes.txt"))
    efs_hub.stop_server(username)


def test_students_read_the_shared_folder_instructors_and_admins_write_it(efs_hub, cluster, username):  # noqa: F811
    student, instructor, admin = (member(efs_hub, f"{username}-s"), member(efs_hub, f"{username}-i", ["instructors"]),
                                  member(efs_hub, f"{username}-a", admin=True))
    for user in (student, instructor, admin):
        efs_hub.start(user, {"profile": "cpu"}, timeout=60)
    try:
        code, out = sh(cluster, instructor, f"echo 'week 1' > /home/shared/{username}.txt")
        assert code == 0, out
        code, out = sh(cluster, admin, f"echo 'from admin' >> /home/shared/{username}.txt")
        assert code == 0, out
        code, out = sh(cluster, student, f"cat /home/shared/{username}.txt")
        assert code == 0 and out.split("\n")[:2] == ["week 1", "from admin"], out
        code, out = sh(cluster, student, f"echo no > /home/shared/{username}-student.txt")
        assert code != 0 and "Read-only file system" in out, out
        code, out = sh(cluster, student, f"rm /home/shared/{username}.txt")
        assert code != 0, out
    finally:
        for user in (student, instructor, admin):
            efs_hub.stop_server(user)


def test_a_group_member_writes_the_groups_directory_only(efs_hub, cluster, username):  # noqa: F811
    mathematician, other = member(efs_hub, f"{username}-m", ["math"]), member(efs_hub, f"{username}-o")
    for user in (mathematician, other):
        efs_hub.start(user, {"profile": "cpu"}, timeout=60)
    try:
        code, out = sh(cluster, mathematician, f"echo proof > /home/shared/math/{username}.txt")
        assert code == 0, out
        code, out = sh(cluster, mathematician, f"echo x > /home/shared/{username}-top.txt")
        assert code != 0 and "Read-only file system" in out, out
        code, out = sh(cluster, other, f"cat /home/shared/math/{username}.txt")
        assert (code, out.strip()) == (0, "proof"), out
        code, out = sh(cluster, other, f"echo x >> /home/shared/math/{username}.txt")
        assert code != 0 and "Read-only file system" in out, out
    finally:
        for user in (mathematician, other):
            efs_hub.stop_server(user)


def test_a_user_cannot_reach_another_users_home(efs_hub, cluster, username):  # noqa: F811
    alice, bob = member(efs_hub, f"{username}-alice"), member(efs_hub, f"{username}-bob", ["instructors"])
    for user in (alice, bob):
        efs_hub.start(user, {"profile": "cpu"}, timeout=60)
    try:
        code, out = sh(cluster, alice, "echo s3cret > ~/secret.txt && ls ~")
        assert code == 0 and "secret.txt" in out, out
        # bob (who may write the shared folder) searches everything mounted under /home for alice's file
        code, out = sh(cluster, bob, "grep -rl s3cret /home 2>/dev/null; ls -a /home /home/jovyan /home/shared; "
                                     f"cat /home/jovyan/../{home_of(alice)}/secret.txt "
                                     f"/home/shared/../{home_of(alice)}/secret.txt")
        assert code != 0 and "s3cret" not in out, out
        assert "secret.txt" not in out.split("cat:")[0] and home_of(alice) not in out.split("cat:")[0], out
        # and the pod asks for nothing but his own directory of the homes' volume
        pod = cluster.get("pods", f"jupyter-{bob}", NAMESPACE)
        home_mounts = [m for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
                       for m in c.get("volumeMounts", []) if m["name"] == "home"]
        assert [m.get("subPath") for m in home_mounts] == [home_of(bob)]
        # the shared folder is its own access point: no home is under it on the volume either
        shared = cluster.claim_dir(NAMESPACE, "efs-shared")
        assert not os.path.exists(os.path.join(shared, home_of(alice)))
        assert os.path.exists(os.path.join(cluster.claim_dir(NAMESPACE, "efs-home"), home_of(alice), "secret.txt"))
    finally:
        for user in (alice, bob):
            efs_hub.stop_server(user)


# -- init-container ownership on storage without access points ---------------------------------------------

def test_init_container_makes_a_root_created_home_the_users(nfs_hub, cluster, username):  # noqa: F811
    member(nfs_hub, username)
    nfs_hub.start(username, {"profile": "cpu"}, timeout=60)
    home = os.path.join(cluster.claim_dir(NAMESPACE, "nfs-homes"), "homes", home_of(username))
    st = os.stat(home)
    assert (st.st_uid, st.st_gid) == (1000, 100)  # the kubelet made it root:root; the init container fixed it
    assert os.stat(os.path.dirname(home)).st_uid == 0  # only the user's own directory, not its parent
    code, out = sh(cluster, username, "echo mine > ~/a.txt && cat ~/a.txt")
    assert (code, out.strip()) == (0, "mine"), out
    logs = cluster.logs(NAMESPACE, f"jupyter-{username}", "home-ownership")
    assert "now owned by 1000:100" in logs, logs
    # a restart finds the ownership right: the init container changes nothing
    before = os.stat(home).st_ctime_ns
    restart(nfs_hub, cluster, username)
    assert os.stat(home).st_ctime_ns == before
    assert cluster.logs(NAMESPACE, f"jupyter-{username}", "home-ownership").strip() == ""
    code, out = sh(cluster, username, "cat ~/a.txt")
    assert (code, out.strip()) == (0, "mine"), out
    nfs_hub.stop_server(username)


# -- a disk per user (pvc mode) -------------------------------------------------------------------------------

def test_per_user_disk_is_created_writable_and_kept(pvc_hub, cluster, username):  # noqa: F811
    member(pvc_hub, username)
    pvc_hub.start(username, {"profile": "cpu"}, timeout=60)
    claim = cluster.get("persistentvolumeclaims", f"claim-{username}", NAMESPACE)
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi" and claim["status"]["phase"] == "Bound"
    code, out = sh(cluster, username, "echo on-disk > ~/d.txt && id -G")
    assert code == 0 and "100" in out.split(), out
    restart(pvc_hub, cluster, username)
    code, out = sh(cluster, username, "cat ~/d.txt")
    assert (code, out.strip()) == (0, "on-disk"), out
    pvc_hub.stop_server(username)
