"""Storage end to end: a real hub with ProfilesKubeSpawner on the emulated cluster, whose kubelet runs each pod
as local processes with its volumes as directories (tests/harness, docs/testing.md).

- EFS (the platform's claims, on access points owned 1000:100): a file written in the home survives a restart;
  a student cannot write the shared folder, an instructor and an admin can, a group member writes their
  group's directory; a user cannot reach another user's home through anything mounted in their pod.
- A plain NFS claim whose directories the kubelet creates as root: the ``init-container`` ownership mode
  makes the home the user's, and a restart finds it right and changes nothing.
- A profile whose override brings its own volumes and mounts (lists, which KubeSpawner would use in place of
  the configured ones) and tolerations: its mount, the home and the shared folder all work in the pod, and the
  chart's tolerations stay on it.
- A per-user disk (``pvc`` mode, the AKS classroom): created by KubeSpawner, its root made the user's
  (1000:100) by the init container once, kept across a restart; a claim KubeSpawner 6 made for the user is
  mounted instead of a new one, whether the hub has 6.x state for them or none at all.

The emulated container's root is an overlay of this machine's root, so "cannot reach" is checked under the
paths the pod mounts (``/home``), not across the whole file system.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from kubespawner.slugs import escape_slug, safe_slug

from tests.e2e.conftest import NAMESPACE, cluster, stop_module_hub, username  # noqa: F401 (fixtures)
from tests.harness.hub import KubeHub, kube_hub_config, start_kube_hub
from tests.support.hub_process import start_hub
from tests.harness.kubelet import DEFAULT_COMMAND_MAP, STANDIN_COMMAND
from tests.harness.platform import efs_objects

pytestmark = pytest.mark.e2e

IMAGE = "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
SCRATCH_TOLERATION = {"key": "example.com/scratch", "operator": "Exists", "effect": "NoSchedule"}
CATALOG = [{"slug": "cpu", "display_name": "CPU", "default": True, "image": IMAGE,
            "hardware": {"kind": "cpu", "cpu": {"limit": 1}, "memory": {"limit": "1G"}}},
           # its own volumes and mounts as lists (KubeSpawner replaces a list on override) and a toleration
           # (a catalog adds those to the chart's through hardware.tolerations)
           {"slug": "scratch", "display_name": "CPU with scratch space", "image": IMAGE,
            "hardware": {"kind": "cpu", "cpu": {"limit": 1}, "memory": {"limit": "1G"},
                         "tolerations": [SCRATCH_TOLERATION]},
            "kubespawner_override": {"volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
                                     "volume_mounts": [{"name": "scratch", "mountPath": "/scratch"}]}}]
# what z2jh 4.4.0 puts on every user pod (scheduling.userPods.tolerations)
CHART_TOLERATIONS = [
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
]
# the notebook server is not what is tested here: the stdlib stand-in starts in ~50 ms
CLUSTER_OPTIONS = {"command_map": {**DEFAULT_COMMAND_MAP, "jupyterhub-singleuser": STANDIN_COMMAND}}


def hub_config(**storage) -> str:
    lines = [f"c.ProfilesKubeSpawner.profiles = {CATALOG!r}", f"c.KubeSpawner.tolerations = {CHART_TOLERATIONS!r}"]
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


def test_a_profile_with_its_own_volumes_and_tolerations_keeps_home_shared_and_the_charts(efs_hub, cluster,
                                                                                         username):  # noqa: F811
    student = member(efs_hub, username)
    efs_hub.start(student, {"profile": "scratch"}, timeout=60)
    try:
        pod = cluster.get("pods", f"jupyter-{student}", NAMESPACE)
        assert pod["metadata"]["labels"]["jupyterhub-ext/profile"] == "scratch"
        mounted = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        assert {"/scratch": "scratch", "/home/jovyan": "home", "/home/shared": "shared"}.items() <= mounted.items()
        # the chart's tolerations and the profile's, on the pod the scheduler placed
        tolerations = pod["spec"]["tolerations"]
        assert all(t in tolerations for t in CHART_TOLERATIONS + [SCRATCH_TOLERATION]), tolerations
        assert pod["spec"].get("nodeName")
        # the profile's own volume works
        code, out = sh(cluster, student, "echo tmp > /scratch/t.txt && cat /scratch/t.txt")
        assert (code, out.strip()) == (0, "tmp"), out
        # the home is hers and writable, and lands in her directory of the homes' volume
        code, out = sh(cluster, student, "echo mine > ~/p.txt && stat -c %u:%g ~/p.txt")
        assert (code, out.strip()) == (0, "1000:100"), out
        home = os.path.join(cluster.claim_dir(NAMESPACE, "efs-home"), home_of(student))
        assert open(os.path.join(home, "p.txt")).read() == "mine\n"
        # the shared folder is there, read-only for a student
        code, out = sh(cluster, student, "ls /home/shared >/dev/null && echo listed")
        assert (code, out.strip()) == (0, "listed"), out
        code, out = sh(cluster, student, f"echo no > /home/shared/{username}.txt")
        assert code != 0 and "Read-only file system" in out, out
    finally:
        efs_hub.stop_server(student)


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

def test_per_user_disk_is_created_owned_by_the_user_and_kept(pvc_hub, cluster, username):  # noqa: F811
    member(pvc_hub, username)
    pvc_hub.start(username, {"profile": "cpu"}, timeout=60)
    claim = cluster.get("persistentvolumeclaims", f"claim-{username}", NAMESPACE)
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi" and claim["status"]["phase"] == "Bound"
    # a fresh disk's root is root's, and fsGroup makes it only root:100; the init container made it the user's
    code, out = sh(cluster, username, "id -u; id -g; stat -c '%u:%g %A' ~; echo on-disk > ~/d.txt && mkdir ~/sub "
                                      "&& stat -c %u:%g ~/d.txt ~/sub")
    assert code == 0 and out.split() == ["1000", "100", "1000:100", "drwxrwsr-x", "1000:100", "1000:100"], out
    # what a root-owned home breaks: git refuses a repository whose top directory another user owns
    code, out = sh(cluster, username, "cd ~ && git init -q && git status --porcelain && echo git-ok")
    assert code == 0 and out.split()[-1] == "git-ok" and "dubious ownership" not in out, out
    disk = cluster.claim_dir(NAMESPACE, f"claim-{username}")
    assert (os.stat(disk).st_uid, os.stat(disk).st_gid) == (1000, 100)
    logs = cluster.logs(NAMESPACE, f"jupyter-{username}", "home-ownership")
    assert "/mnt/home now owned by 1000:100" in logs, logs
    # a restart finds the disk right: nothing is changed, nothing walked
    before = os.stat(disk).st_ctime_ns
    restart(pvc_hub, cluster, username)
    assert os.stat(disk).st_ctime_ns == before
    assert cluster.logs(NAMESPACE, f"jupyter-{username}", "home-ownership").strip() == ""
    code, out = sh(cluster, username, "cat ~/d.txt")
    assert (code, out.strip()) == (0, "on-disk"), out
    pvc_hub.stop_server(username)


# -- KubeSpawner 6 claims kept across the upgrade to 7 (KubeSpawner's handle_legacy_names) ------------------

def six_claim(cluster, user: str) -> str:  # noqa: F811
    """The claim a KubeSpawner 6 hub made for ``user`` (``claim-<escaped name>``), holding a file of theirs.

    Bound to a prepared PV so that it holds the file before the first start; its root is root:100, what the
    kubelet's fsGroup left on a 6.x disk.
    """
    name = f"claim-{escape_slug(user)}"
    pv = {"metadata": {"name": f"pv-{name}"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                   "csi": {"driver": "disk.csi.azure.com", "volumeHandle": name},
                   "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": NAMESPACE,
                                "name": name}}}
    pvc = {"metadata": {"name": name, "namespace": NAMESPACE},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv["metadata"]["name"],
                    "resources": {"requests": {"storage": "1Gi"}}}}
    cluster.create("persistentvolumes", pv)
    cluster.create("persistentvolumeclaims", pvc, NAMESPACE)
    disk = cluster.claim_dir(NAMESPACE, name)
    os.makedirs(disk, exist_ok=True)  # the harness may have made it when the PV bound
    os.chown(disk, 0, 100)
    os.chmod(disk, 0o2775)
    with open(os.path.join(disk, "from-6x.txt"), "w") as f:
        f.write("kept\n")
    os.chown(os.path.join(disk, "from-6x.txt"), 1000, 100)
    return name


def assert_mounts_the_six_claim(cluster, user: str, pod_name: str, legacy: str) -> None:  # noqa: F811
    pod = cluster.get("pods", pod_name, NAMESPACE)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if v["name"] == "home"]
    assert claims == [legacy], claims
    code, out = cluster.exec(NAMESPACE, pod_name, ["sh", "-c", "cat ~/from-6x.txt && stat -c %u:%g ~"])
    assert (code, out.split()) == (0, ["kept", "1000:100"]), out
    # no new, empty disk under KubeSpawner 7's name
    new = f"claim-{safe_slug(user, max_length=48)}"
    assert new != legacy and cluster.find("persistentvolumeclaims", new, NAMESPACE) is None


def test_a_kubespawner_6_claim_is_kept_for_a_user_the_hub_has_no_state_for(pvc_hub, cluster, username):  # noqa: F811
    # a hub database made anew (or the user added again): KubeSpawner alone would make claim-<safe name>
    user = member(pvc_hub, username)
    legacy = six_claim(cluster, user)
    pvc_hub.start(user, {"profile": "cpu"}, timeout=60)
    assert_mounts_the_six_claim(cluster, user, f"jupyter-{user}", legacy)
    assert f"Using legacy pvc {legacy} for {user}" in pvc_hub.process.log_text()
    # the claim in use is remembered: the next start mounts it again
    restart(pvc_hub, cluster, user)
    assert_mounts_the_six_claim(cluster, user, f"jupyter-{user}", legacy)
    pvc_hub.stop_server(user)


def test_a_kubespawner_6_claim_is_kept_for_a_user_with_6x_state(request, cluster, username, tmp_path):  # noqa: F811
    legacy = six_claim(cluster, username)
    config = [kube_hub_config(namespace=NAMESPACE, spawner_class="jupyterhub_ext.spawner.ProfilesKubeSpawner",
                              storage="none", start_timeout=60), hub_config(home_mode="pvc")]

    def launch() -> KubeHub:  # the same database each time: the hub is upgraded, not replaced
        process = start_hub(config, name="e2e-storage-upgrade", env={"KUBECONFIG": cluster.kubeconfig},
                            workdir=tmp_path)
        return KubeHub(process, NAMESPACE, kubeconfig=cluster.kubeconfig)

    hub = launch()
    hub.ensure_user(username)
    hub.process.stop()
    # what a KubeSpawner 6 hub saved for a user whose server had run: names in the 'escape' scheme, no
    # kubespawner_version and no pvc_name (6.x saved neither)
    pod6 = f"jupyter-{escape_slug(username)}"
    state = {"pod_name": pod6, "namespace": NAMESPACE, "dns_name": f"{pod6}.{NAMESPACE}.svc.cluster.local"}
    db = sqlite3.connect(tmp_path / "jupyterhub.sqlite")
    try:
        with db:
            updated = db.execute("UPDATE spawners SET state = ? WHERE name = '' AND user_id = "
                                 "(SELECT id FROM users WHERE name = ?)", (json.dumps(state), username)).rowcount
    finally:
        db.close()
    assert updated == 1
    hub = launch()
    try:
        hub.start(username, {"profile": "cpu"}, timeout=60)
        # a new server's pod is named afresh (JupyterHub clears the state's pod name at each spawn); the claim
        # is what lasts
        assert_mounts_the_six_claim(cluster, username, f"jupyter-{username}", legacy)
        log = hub.process.log_text()
        assert "unknown prior version of kubespawner" in log and f"Using legacy pvc {legacy}" in log, log
        hub.stop_server(username)
    finally:
        stop_module_hub(request, hub)
