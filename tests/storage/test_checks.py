"""What the hub refuses at start-up (``ProfilesKubeSpawner.check_config``, called by ``z2jh.setup``), with the
exact key, and the chmod detector."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

import pytest
from traitlets.config import Config

from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.spawner import ProfilesKubeSpawner
from jupyterhub_ext.storage import world_writable_chmod

from .conftest import CATALOG, chart_config


def kube(**traits):
    def apply(c: Config) -> None:
        for k, v in traits.items():
            setattr(c.KubeSpawner, k, v)
    return apply


def ours(**traits):
    def apply(c: Config) -> None:
        for k, v in traits.items():
            setattr(c.ProfilesKubeSpawner, k, v)
    return apply


def profile(index: int, **fields):
    def apply(c: Config) -> None:
        profiles = copy.deepcopy(CATALOG)
        for k, v in fields.items():
            profiles[index][k] = v
        c.ProfilesKubeSpawner.profiles = profiles
    return apply


def choice_override(override):
    def apply(c: Config) -> None:
        profiles = copy.deepcopy(CATALOG)
        profiles[0]["options"] = [{"slug": "size", "display_name": "Size", "choices": [
            {"slug": "s", "display_name": "S", "default": True},
            {"slug": "l", "display_name": "L", "kubespawner_override": override}]}]
        c.ProfilesKubeSpawner.profiles = profiles
    return apply


def upstream_profiles(override):
    def apply(c: Config) -> None:
        c.ProfilesKubeSpawner.profiles = []
        c.KubeSpawner.profile_list = [{"display_name": "A", "slug": "a", "kubespawner_override": override}]
    return apply


Z2JH_STATIC_STORAGE = kube(
    volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "efs-persist"}}],
    volume_mounts=[{"name": "home", "mountPath": "/home/jovyan", "subPath": "{username}"}],
)

CASES = [
    # (id, change, exact path, message)
    ("uid-0", kube(uid=0), "KubeSpawner.uid (Helm: singleuser.uid)", "0 is root"),
    ("gid-0", kube(gid=0), "KubeSpawner.gid", "0 is root"),
    ("fs-gid-0", kube(fs_gid=0), "KubeSpawner.fs_gid (Helm: singleuser.fsGid)", "0 is root"),
    ("uid-0-ours", ours(uid=0), "ProfilesKubeSpawner.uid", "0 is root"),
    ("uid-callable", kube(uid=lambda s: 1000), "KubeSpawner.uid (Helm: singleuser.uid)", "fixed owner"),
    ("grant-sudo", kube(environment={"GRANT_SUDO": "yes"}),
     "KubeSpawner.environment (Helm: singleuser.extraEnv).GRANT_SUDO", "root start"),
    ("chown-home", kube(environment={"CHOWN_HOME": "1", "CHOWN_HOME_OPTS": "-R"}),
     "KubeSpawner.environment (Helm: singleuser.extraEnv).CHOWN_HOME", "root start"),
    ("nb-uid-0", kube(environment={"NB_UID": "0"}), "KubeSpawner.environment (Helm: singleuser.extraEnv).NB_UID",
     "root"),
    ("privileged", kube(privileged=True), "KubeSpawner.privileged", "never privileged"),
    ("escalation", kube(allow_privilege_escalation=True),
     "KubeSpawner.allow_privilege_escalation (Helm: singleuser.allowPrivilegeEscalation)", "must be false"),
    ("csc-root", kube(container_security_context={"runAsUser": 0}),
     "KubeSpawner.container_security_context.runAsUser", "root"),
    ("csc-caps", kube(container_security_context={"capabilities": {"add": ["SYS_ADMIN"]}}),
     "KubeSpawner.container_security_context.capabilities.add", "no capabilities"),
    ("csc-nonroot-false", kube(container_security_context={"runAsNonRoot": False}),
     "KubeSpawner.container_security_context.runAsNonRoot", "must not be false"),
    ("psc-unconfined", kube(pod_security_context={"seccompProfile": {"type": "Unconfined"}}),
     "KubeSpawner.pod_security_context.seccompProfile", "Unconfined"),
    ("psc-fsgroup-0", kube(pod_security_context={"fsGroup": 0}), "KubeSpawner.pod_security_context.fsGroup", "root"),
    ("chmod-777-poststart",
     kube(lifecycle_hooks={"postStart": {"exec": {"command": ["sh", "-c", "chmod -R 777 /home/jovyan"]}}}),
     "KubeSpawner.lifecycle_hooks (Helm: singleuser.lifecycleHooks).postStart.exec.command[2]", "writable by every"),
    ("chmod-a+w-cmd", kube(cmd=["sh", "-c", "chmod a+w /home/shared && exec start-singleuser.sh"]),
     "KubeSpawner.cmd (Helm: singleuser.cmd)[2]", "writable by every"),
    ("chmod-init", kube(init_containers=[{"name": "fix", "image": "busybox", "command": ["chmod", "0777", "/x"]}]),
     "KubeSpawner.init_containers (Helm: singleuser.initContainers)[0].command", "writable by every"),
    ("extra-pod-security", kube(extra_pod_config={"securityContext": {"runAsUser": 0}}),
     "KubeSpawner.extra_pod_config (Helm: singleuser.extraPodConfig).securityContext", "would replace"),
    ("host-pid", kube(extra_pod_config={"hostPID": True}),
     "KubeSpawner.extra_pod_config (Helm: singleuser.extraPodConfig).hostPID", "namespaces"),
    ("extra-container-mounts", kube(extra_container_config={"volumeMounts": []}),
     "KubeSpawner.extra_container_config.volumeMounts", "would replace"),
    # the catalog
    ("catalog-env-sudo", profile(0, env={"GRANT_SUDO": "yes"}), "ProfilesKubeSpawner.profiles[0].env.GRANT_SUDO",
     "root start"),
    ("catalog-override-uid", profile(1, kubespawner_override={"uid": 0}),
     "ProfilesKubeSpawner.profiles[1].kubespawner_override.uid", "0 is root"),
    ("catalog-override-other-uid", profile(1, kubespawner_override={"uid": 1001}),
     "ProfilesKubeSpawner.profiles[1].kubespawner_override.uid", "may not change uid"),
    ("catalog-override-chown", profile(0, kubespawner_override={"environment": {"CHOWN_HOME": "yes"}}),
     "ProfilesKubeSpawner.profiles[0].kubespawner_override.environment.CHOWN_HOME", "root start"),
    ("catalog-command-chmod", profile(0, command=["sh", "-c", "chmod o+w ~ ; start-singleuser.sh"]),
     "ProfilesKubeSpawner.profiles[0].command[2]", "writable by every"),
    ("choice-mount-over-home", choice_override({"volume_mounts": [{"name": "x", "mountPath": "/home/jovyan"}]}),
     "ProfilesKubeSpawner.profiles[0].options[0].choices[1].kubespawner_override.volume_mounts", "already mounted"),
    ("upstream-profile-uid", upstream_profiles({"uid": 0}),
     "KubeSpawner.profile_list[0].kubespawner_override.uid", "0 is root"),
    # storage settings
    ("static-storage-too", Z2JH_STATIC_STORAGE, "KubeSpawner.volume_mounts (Helm: singleuser.storage)",
     "singleuser.storage.type to none"),
    ("volume-name-taken", lambda c: (kube(volumes=[{"name": "shared", "emptyDir": {}}])(c),
                                     ours(shared_pvc="efs-persist-shared")(c)),
     "KubeSpawner.volumes (Helm: singleuser.storage)", "volume name 'shared'"),
    ("static-mount-too", kube(volume_mounts=[{"name": "data", "mountPath": "/home/jovyan"}]),
     "KubeSpawner.volume_mounts (Helm: singleuser.storage)", "singleuser.storage.type to none"),
    ("homes-pvc-elsewhere", kube(volumes=[{"name": "all", "persistentVolumeClaim": {"claimName": "efs-persist"}}]),
     "KubeSpawner.volumes (Helm: singleuser.storage)", "expose every user's home"),
    ("mount-over-shared-parent", kube(volume_mounts=[{"name": "data", "mountPath": "/home"}]),
     "KubeSpawner.volume_mounts (Helm: singleuser.storage)", "would contain"),
    ("shared-is-homes-root", ours(shared_pvc="efs-persist"), "ProfilesKubeSpawner.home_subpath_template",
     "own directory"),
    ("shared-is-homes-parent", ours(shared_pvc="efs-persist", home_subpath_template="homes/{username}",
                                    shared_subpath="homes"), "ProfilesKubeSpawner.shared_subpath", "expose"),
    ("shared-inside-homes", ours(shared_pvc="efs-persist", home_subpath_template="homes/{username}",
                                 shared_subpath="homes/shared"), "ProfilesKubeSpawner.shared_subpath", "expose"),
    ("shared-root-of-homes-volume", ours(shared_pvc="efs-persist", home_subpath_template="homes/{username}"),
     "ProfilesKubeSpawner.shared_subpath", "expose"),
    # pvc mode: a shared claim named like a user's own disk would show that user's home to everyone
    ("shared-is-a-users-claim", ours(home_mode="pvc", shared_pvc="claim-shared"), "ProfilesKubeSpawner.shared_pvc",
     "could be a user's own claim (pvc_name_template 'claim-{user_server}')"),
    ("shared-is-a-users-claim-z2jh3", lambda c: (ours(home_mode="pvc", shared_pvc="home-course")(c),
                                                 kube(pvc_name_template="home-{username}{servername}")(c)),
     "ProfilesKubeSpawner.shared_pvc", "could be a user's own claim"),
    ("shared-contains-home", ours(shared_pvc="sh", shared_mount_path="/home"),
     "ProfilesKubeSpawner.shared_mount_path", "contains the home mount"),
    ("shared-subpath-dotdot", ours(shared_pvc="sh", shared_subpath="../homes"), "ProfilesKubeSpawner.shared_subpath",
     "'..'"),
    ("template-no-user", ours(home_subpath_template="homes"), "ProfilesKubeSpawner.home_subpath_template",
     "every user"),
    ("template-unescaped", ours(home_subpath_template="{unescaped_username}"),
     "ProfilesKubeSpawner.home_subpath_template", "not allowed"),
    ("template-servername", ours(home_subpath_template="{username}/{servername}"),
     "ProfilesKubeSpawner.home_subpath_template", "not allowed"),
    ("template-conversion", ours(home_subpath_template="{username!r}"), "ProfilesKubeSpawner.home_subpath_template",
     "not allowed"),
    ("template-dotdot", ours(home_subpath_template="../{username}"), "ProfilesKubeSpawner.home_subpath_template",
     "'..'"),
    ("template-absolute", ours(home_subpath_template="/{username}"), "ProfilesKubeSpawner.home_subpath_template",
     "relative"),
    ("template-fields-run-together", ours(home_subpath_template="{username}{userid}"),
     "ProfilesKubeSpawner.home_subpath_template", "separate fields"),
    ("template-fields-dash", ours(home_subpath_template="{userid}-{username}"),
     "ProfilesKubeSpawner.home_subpath_template", "separate fields"),
    ("bad-home-pvc", ours(home_pvc="EFS_persist"), "ProfilesKubeSpawner.home_pvc", "not a valid"),
    ("bad-size", ours(home_mode="pvc", home_pvc_size="lots"), "ProfilesKubeSpawner.home_pvc_size", "storage size"),
    ("bad-class", ours(home_mode="pvc", home_storage_class="Fast SSD"), "ProfilesKubeSpawner.home_storage_class",
     "not a valid"),
    ("relative-mount", ours(home_mount_path="home/jovyan"), "ProfilesKubeSpawner.home_mount_path", "absolute"),
    ("group-dir-dotdot", ours(shared_pvc="sh", shared_group_dirs=[".."]), "ProfilesKubeSpawner.shared_group_dirs[0]",
     "directory name"),
    ("group-dir-slash", ours(shared_pvc="sh", shared_group_dirs=["a", "b/c"]),
     "ProfilesKubeSpawner.shared_group_dirs[1]", "directory name"),
    ("group-dirs-without-shared", ours(shared_group_dirs=["math"]), "ProfilesKubeSpawner.shared_group_dirs",
     "shared_pvc"),
    ("init-image", ours(home_ownership="init-container", home_init_image="busybox latest"),
     "ProfilesKubeSpawner.home_init_image", "not an image"),
]


@pytest.mark.parametrize("change, path, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_config_is_refused_naming_the_key(change, path, message):
    c = chart_config()
    change(c)
    with pytest.raises(ConfigError) as info:
        ProfilesKubeSpawner.check_config(c)
    assert info.value.path == path
    assert message in info.value.message


GOOD = [
    ("defaults", lambda c: None),
    ("efs-shared-groups", ours(shared_pvc="efs-persist-shared", shared_group_dirs=["math", "cs-101"],
                               home_ownership="init-container")),
    ("one-volume-sibling-dirs", ours(shared_pvc="efs-persist", home_subpath_template="homes/{username}",
                                     shared_subpath="shared")),
    ("pvc", ours(home_mode="pvc", home_pvc_size="1Gi", home_storage_class="managed-csi")),
    ("pvc-shared-not-a-claim-name", ours(home_mode="pvc", shared_pvc="course-shared")),
    ("pvc-template-suffix", lambda c: (ours(home_mode="pvc", shared_pvc="claim-shared")(c),
                                       kube(pvc_name_template="{username}-disk")(c))),
    ("template-with-separated-fields", ours(home_subpath_template="homes/{userid}_{username}/work")),
    ("none", ours(home_mode="none", shared_pvc="sh")),
    ("harmless-env", kube(environment={"GRANT_SUDO": "no", "NB_UMASK": "022"})),
    ("chmod-not-world", kube(cmd=["sh", "-c", "chmod 755 ~/bin && chmod u+w,g+w x && exec start-singleuser.sh"])),
    ("z2jh-static-disabled-ours-none", lambda c: (Z2JH_STATIC_STORAGE(c), ours(home_mode="none")(c))),
    ("extra-mount-inside-home", kube(volumes=[{"name": "ssh", "secret": {"secretName": "s"}}],
                                     volume_mounts=[{"name": "ssh", "mountPath": "/home/jovyan/.ssh"}])),
]


@pytest.mark.parametrize("change", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
async def test_good_config_is_accepted(change):
    c = chart_config()
    change(c)
    ProfilesKubeSpawner.check_config(c)


@pytest.mark.parametrize("text", [
    "chmod 777 /home/jovyan", "chmod -R 0777 .", "sudo chmod -R a+rwX /home", "chmod o+w f", "chmod ugo+rwx f",
    "chmod a=rwx f", "chmod 666 f", "chmod 1777 /tmp/x", "cd / && /bin/chmod go+w x", "chmod u+x,o+w f",
    "chmod --recursive 777 d",
])
def test_world_writable_chmod_is_detected(text):
    assert world_writable_chmod(text)


@pytest.mark.parametrize("text", [
    "chmod 755 f", "chmod 0750 f", "chmod u+rwx f", "chmod g+w f", "chmod +x f", "chmod 644 f; echo 777",
    "echo chmod", "chmod -R g+rwX,o-w d", "chmod o-w f", "chmod 2775 d",
])
def test_harmless_chmod_is_not(text):
    assert not world_writable_chmod(text)


def test_a_real_hub_refuses_to_start_with_uid_0(tmp_path, dummy_kubeconfig):
    """The same call the chart's hub.extraConfig makes, in a real `jupyterhub` process."""
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(textwrap.dedent(f"""
        c.JupyterHub.db_url = "sqlite:///{tmp_path}/hub.sqlite"
        c.KubeSpawner.uid = 0
        import jupyterhub_ext.z2jh
        jupyterhub_ext.z2jh.setup(c)
    """))
    jupyterhub = os.path.join(os.path.dirname(sys.executable), "jupyterhub")
    proc = subprocess.run([jupyterhub, "-f", str(config)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KUBECONFIG": dummy_kubeconfig})
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if "configuration error" in ln]
    assert lines and "KubeSpawner.uid (Helm: singleuser.uid): must be a positive integer" in lines[0], proc.stderr


async def test_the_safe_scheme_is_accepted_with_a_warning(caplog):
    c = chart_config(home_dir_scheme="safe")
    with caplog.at_level("WARNING"):
        ProfilesKubeSpawner.check_config(c)
    assert "32-bit hash" in caplog.text
