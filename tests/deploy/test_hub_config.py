"""The hub as each values combination configures it: the chart's config, then our one extraConfig entry,
executed as the chart executes it; then the authenticator's own start-up check and a pod for every profile."""

from __future__ import annotations

import kubernetes_validate
import yaml
import pytest

from jupyterhub_ext.cli.chart import MissingSecret
from jupyterhub_ext.spawner import ProfilesKubeSpawner

from . import z2jh_chart
from .conftest import K8S_VERSION
from .hub import SECRETS, configure, container

COMBINATIONS = list(z2jh_chart.COMBINATIONS)
# z2jh 4.4.0's init container for singleuser.cloudMetadata.blockWithIptables (its jupyterhub_config.py; the
# values.yaml comment calls it "a privileged initContainer"): TCP to the metadata address's port 80 dropped.
CHART_BLOCK = {
    "name": "block-cloud-metadata",
    "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
    "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", "169.254.169.254",
                "--destination-port", "80", "--jump", "DROP"],
    "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
    "resources": {},
}
EKS = [c for c in COMBINATIONS if c != "aks-classroom"]


@pytest.mark.parametrize("name", COMBINATIONS)
def test_extra_config_wires_our_spawner(hubs, name):
    hub = hubs[name]
    assert hub.config.JupyterHub.spawner_class is ProfilesKubeSpawner
    # the chart's derived settings survived (setup() only adds to them)
    assert hub.config.KubeSpawner.scheduler_name == "jupyterhub-user-scheduler"  # the chart's, for the release
    assert hub.config.KubeSpawner.uid == 1000 and hub.config.KubeSpawner.fs_gid == 100


@pytest.mark.parametrize("name", COMBINATIONS)
def test_the_hub_pages_carry_the_fair_use_notices(hubs, name):
    """setup() puts the budget notices into JupyterHub's ``announcement`` (fairuse/notices.py)."""
    from types import SimpleNamespace

    from jupyterhub_ext.fairuse.notices import NOTICES

    render = hubs[name].config.JupyterHub.template_vars["announcement"]
    NOTICES.tell("deploy-test-user", "", "Your server will be stopped at 14:20 UTC")
    try:
        assert render(SimpleNamespace(name="deploy-test-user")) == "Your server will be stopped at 14:20 UTC"
    finally:
        NOTICES.clear("deploy-test-user", "")


@pytest.mark.parametrize("name", COMBINATIONS)
def test_the_authenticator_accepts_its_configuration(hubs, name):
    """The check the authenticator runs when the hub starts (check_allow_config) passes with these values."""
    hub = hubs[name]
    cls = hub.authenticator()
    expected = {"base": "ClassroomSharedPasswordAuthenticator", "aks-classroom": "ClassroomSharedPasswordAuthenticator",
                "eks-cognito": "CognitoAuthenticator", "eks-keycloak": "KeycloakAuthenticator"}[name]
    assert cls.__name__ == expected and cls.__module__.startswith("jupyterhub_ext.auth")
    with z2jh_chart.environ(hub.env):
        authenticator = cls(config=hub.config)
        authenticator.validate_config()
        if expected == "ClassroomSharedPasswordAuthenticator":
            assert authenticator.user_password == SECRETS["jupyterhub-ext-login"]["user-password"]
            assert authenticator.admin_password == SECRETS["jupyterhub-ext-login"]["admin-password"]
        else:
            assert authenticator.client_secret == SECRETS["jupyterhub-ext-oauth"]["client-secret"]
            assert authenticator.enable_auth_state is True


def test_classroom_without_its_secret_does_not_start():
    """The AKS overlay requires the Secret: the kubelet refuses to start the hub container without it."""
    with pytest.raises(MissingSecret, match="jupyterhub-ext-login"):
        configure("aks-classroom", secrets={})


def test_base_without_the_password_secret_stops_at_start_up():
    """The base's reference is optional (OAuth overlays need no password), so the pod starts; then our
    extraConfig's setup(c) stops the hub, with the authenticator's own check, naming the key."""
    with pytest.raises(SystemExit) as stopped:
        configure("base", secrets={})
    assert str(stopped.value) == (
        "jupyterhub_ext: configuration error: ClassroomSharedPasswordAuthenticator.user_password: no shared "
        "password is set: set user_password_file (a mounted secret) or the JUPYTERHUB_SHARED_PASSWORD environment "
        "variable")


@pytest.mark.parametrize("name", ["eks-cognito", "eks-keycloak"])
def test_oauth_overlays_need_their_client_secret(name):
    with pytest.raises(MissingSecret, match="jupyterhub-ext-oauth"):
        configure(name, secrets={"jupyterhub-ext-login": SECRETS["jupyterhub-ext-login"]})


def test_a_bad_setting_in_values_stops_the_hub_naming_the_key():
    """setup(c) validates the final config: a typo in a catalog setting exits instead of starting."""
    values = z2jh_chart.user_values(z2jh_chart.COMBINATIONS["base"])
    values["hub"]["config"]["ProfilesKubeSpawner"]["node_pool_label"] = ""
    values["hub"]["config"]["ProfilesKubeSpawner"]["catalog_file"] = "builtin:no-such-catalog"
    with pytest.raises(SystemExit, match=r"ProfilesKubeSpawner\.catalog_file"):
        configure("base", values=values)


def test_the_extra_config_runs_in_the_charts_scope():
    """The real chart exec()s extraConfig in its own module's globals: c, get_config, get_secret_value, os and
    sys among them (our entry needs only c), and the values as get_config reads them."""
    values = z2jh_chart.user_values(z2jh_chart.COMBINATIONS["base"])
    values["hub"]["extraConfig"]["00-probe"] = (
        "assert {'c', 'get_config', 'get_secret_value', 'os', 'sys'} <= set(globals()), sorted(globals())\n"
        "assert get_config('hub.config.ProfilesKubeSpawner.catalog_file') == 'builtin:eks'\n"
        "c.JupyterHub.probe_ran = True\n"
    )
    hub = configure("base", values=values)
    assert hub.config.JupyterHub.probe_ran is True
    assert hub.config.JupyterHub.spawner_class is ProfilesKubeSpawner  # zz- ran after 00-


def test_every_combination_offers_profiles(pods):
    assert set(pods["aks-classroom"]) == {"classroom"}
    for name in EKS:
        assert {"data-engineering", "elyra", "trainium", "inferentia", "gpu-timeslice", "gpu-mig", "gpu"} <= \
            set(pods[name])


def _each_pod(pods):
    for name, by_profile in pods.items():
        for label, pod in by_profile.items():
            yield name, label, pod


def test_every_pod_is_valid_kubernetes(pods):
    for name, label, pod in _each_pod(pods):
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{name}/{label}: {e}") from None


def test_every_pod_is_secure(pods):
    """No root, no escalation, no capabilities in the notebook container; the metadata block is kept."""
    for name, label, pod in _each_pod(pods):
        where = f"{name}/{label}"
        notebook = container(pod)
        sc = notebook["securityContext"]
        assert sc["runAsUser"] == 1000 and sc["runAsGroup"] == 100 and sc["runAsNonRoot"] is True, where
        assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged"), where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        env = {e["name"]: e.get("value") for e in notebook.get("env", [])}
        assert "GRANT_SUDO" not in env and "CHOWN_HOME" not in env, where
        assert pod["spec"]["securityContext"]["fsGroup"] == 100, where
        assert "runAsUser" not in pod["spec"]["securityContext"], where  # the chart's iptables container needs root
        assert pod["spec"]["automountServiceAccountToken"] is False, where
        # singleuser.cloudMetadata.blockWithIptables: the chart's init container must reach the pod
        init = [c["name"] for c in pod["spec"].get("initContainers", [])]
        assert "block-cloud-metadata" in init, f"{where}: the cloud-metadata block was dropped (init: {init})"
        block = next(c for c in pod["spec"]["initContainers"] if c["name"] == "block-cloud-metadata")
        assert block == CHART_BLOCK, where  # exactly what the chart made, untouched by our spawner


def test_every_pod_has_its_home_and_the_right_shared_mount(pods):
    for name, label, pod in _each_pod(pods):
        where = f"{name}/{label}"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        mounts = {m["mountPath"]: m for m in container(pod)["volumeMounts"]}
        home = mounts["/home/jovyan"]
        if name == "aks-classroom":
            claim = volumes[home["name"]]["persistentVolumeClaim"]["claimName"]
            assert claim.startswith("claim-"), where  # KubeSpawner's per-user PVC, 1Gi
            assert "/home/shared" not in mounts, where
        else:
            assert volumes[home["name"]]["persistentVolumeClaim"]["claimName"] == "efs-home", where
            assert home["subPath"] == "alice", where  # one directory per user, never the volume root
            shared = mounts["/home/shared"]
            assert volumes[shared["name"]]["persistentVolumeClaim"]["claimName"] == "efs-shared", where
            # built as an admin: read-write; students get it read-only (test below)
            assert shared.get("readOnly") is False, where


async def test_the_classroom_disk_is_a_1gi_claim_on_the_default_storage_class(hubs):
    """aks-classroom: the PVC KubeSpawner creates at a student's first start, as the values build it."""
    from .hub import make_spawner, pod_for

    spawner = make_spawner(hubs["aks-classroom"], name="student01", admin=False)
    pod = await pod_for(spawner, {"profile": "classroom"})
    pvc = spawner.api.api_client.sanitize_for_serialization(spawner.get_pvc_manifest())
    kubernetes_validate.validate(pvc, K8S_VERSION, strict=True)
    assert spawner.storage_pvc_ensure is True  # KubeSpawner creates it before the pod
    assert pvc["spec"]["resources"]["requests"] == {"storage": "1Gi"}
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # no class named, old annotation included: the cluster's default StorageClass (managed-csi on AKS) applies
    assert "storageClassName" not in pvc["spec"], pvc["spec"]
    assert "volume.beta.kubernetes.io/storage-class" not in (pvc["metadata"].get("annotations") or {})
    home = next(m for m in container(pod)["volumeMounts"] if m["mountPath"] == "/home/jovyan")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == home["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


async def test_students_read_the_shared_volume_instructors_write_it(hubs):
    from .hub import make_spawner, pod_for

    hub = hubs["eks-cognito"]
    for groups, read_only in ((["students"], True), (["instructors"], False)):
        spawner = make_spawner(hub, name="bob", groups=groups, admin=False)
        pod = await pod_for(spawner, {"profile": "data-engineering"})
        shared = next(m for m in container(pod)["volumeMounts"] if m["mountPath"] == "/home/shared")
        assert shared["readOnly"] is read_only, groups


def test_every_eks_pod_requires_a_user_node_and_keeps_the_chart_tolerations(pods):
    for name, label, pod in _each_pod(pods):
        tolerations = pod["spec"]["tolerations"]
        assert {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                "effect": "NoSchedule"} in tolerations
        assert pod["spec"]["schedulerName"] == "jupyterhub-user-scheduler"
        if name == "aks-classroom":
            continue
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]} in \
            terms[0]["matchExpressions"], f"{name}/{label}"
        assert pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"


def test_every_pod_gets_the_course_whatever_its_image(pods):
    """The course image seeds the home from an init container (as the user, the notebook's home mount), so
    third-party profile images (PySpark, Elyra, gpu-jupyter, Neuron) get the course too; postStart is untouched."""
    from jupyterhub_ext.courses.model import IMAGE_COURSE_DIR

    images = set()
    for name, label, pod in _each_pod(pods):
        where = f"{name}/{label}"
        images.add(container(pod)["image"].rsplit(":", 1)[0])
        init = pod["spec"]["initContainers"][-1]
        assert init["name"] == "course-course", where
        assert init["image"] == "ghcr.io/example-org/jupyterhub-ext-course:0.1.0", where
        assert init["securityContext"]["runAsUser"] == 1000 and init["securityContext"]["runAsNonRoot"], where
        home = next(m for m in container(pod)["volumeMounts"] if m["mountPath"] == "/home/jovyan")
        (mount,) = init["volumeMounts"]
        assert (mount["name"], mount["mountPath"], mount.get("subPath")) == \
            (home["name"], "/home/jovyan", home.get("subPath")), where
        command = init["command"]
        assert command[command.index("--source") + 1] == IMAGE_COURSE_DIR, where
        assert command[command.index("--dest") + 1] == "/home/jovyan", where
        assert "postStart" not in (container(pod).get("lifecycle") or {}), where  # nothing asked of the image
    assert len(images) >= 4, images  # the catalog's own images, none of which carries the seeder


# -- the local run (jupyterhub_config.py) offers the catalog of the Helm values ----------------------------------

LOCAL_FROM_HELM = ("catalog_file", "profiles", "node_pool_label", "gpu_timeslice_resource", "extra_mig_profiles",
                   "admins_see_all", "home_subpath_template", "home_dir_scheme", "shared_write_groups")


def local_spawner(config_file, data_dir, monkeypatch):
    """The LocalProfilesSpawner that ``jupyterhub -f <config_file>`` would use, loaded as JupyterHub loads it."""
    from traitlets.config.loader import PyFileConfigLoader

    from jupyterhub_ext.local import LocalProfilesSpawner
    from tests.local.helpers import fake_hub, fake_user

    monkeypatch.setenv("JUPYTERHUB_EXT_DATA", str(data_dir))
    for name in ("JUPYTERHUB_SHARED_PASSWORD", "JUPYTERHUB_SHARED_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    config = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
    assert config.JupyterHub.spawner_class is LocalProfilesSpawner
    return LocalProfilesSpawner(config=config, user=fake_user("student"), hub=fake_hub())


async def test_the_local_run_offers_the_catalog_of_the_helm_values(hubs, tmp_path, monkeypatch):
    """Issue 8: the same catalog as the Helm values - compared as the two hubs load them."""
    from .hub import make_spawner

    local = local_spawner(z2jh_chart.ROOT / "jupyterhub_config.py", tmp_path / "data", monkeypatch)
    kube = make_spawner(hubs["base"], name="student", admin=False)
    assert local.catalog is not None and kube.catalog is not None
    assert [p.slug for p in local.catalog.profiles] == [p.slug for p in kube.catalog.profiles]
    # Catalog compares by identity (a cache key); its parts compare by value: every profile, option, choice,
    # access rule and hardware request, and the settings it was parsed with
    assert local.catalog.profiles == kube.catalog.profiles
    assert local.catalog.settings == kube.catalog.settings
    for key in LOCAL_FROM_HELM:
        assert getattr(local, key) == getattr(kube, key), key


def repo_with_helm_catalog(tmp_path, profiles: list, **settings):
    """A copy of the repository's local run whose helm/values.yaml has ``profiles`` as its inline catalog."""
    import shutil

    repo = tmp_path / "repo"
    (repo / "helm").mkdir(parents=True)
    shutil.copy(z2jh_chart.ROOT / "jupyterhub_config.py", repo)
    shutil.copytree(z2jh_chart.ROOT / "images" / "singleuser" / "course", repo / "images" / "singleuser" / "course")
    values = z2jh_chart.load_yaml(z2jh_chart.HELM / "values.yaml")
    spawner = values["hub"]["config"]["ProfilesKubeSpawner"]
    del spawner["catalog_file"]
    spawner.update(profiles=profiles, **settings)
    (repo / "helm" / "values.yaml").write_text(yaml.safe_dump(values))
    return repo / "jupyterhub_config.py"


def test_the_local_run_reads_the_catalog_from_helm_values_yaml(tmp_path, monkeypatch):
    """Not a copy that happens to agree today: change the Helm values and the local hub follows."""
    config = repo_with_helm_catalog(tmp_path, [
        {"slug": "only-this", "display_name": "Only this", "default": True,
         "hardware": {"kind": "cpu", "cpu": {"limit": 1}, "memory": {"limit": "1G"}}}], home_dir_scheme="safe")
    local = local_spawner(config, tmp_path / "data", monkeypatch)
    assert [p.slug for p in local.catalog.profiles] == ["only-this"]
    assert local.catalog_file == "" and local.home_dir_scheme == "safe"


def test_a_mistake_in_the_helm_catalog_reads_as_written_there_in_the_local_run(tmp_path, monkeypatch):
    """The local run copies helm/values.yaml's ProfilesKubeSpawner catalog into LocalProfilesSpawner; its errors
    still name the section the operator wrote (issue 18), not the one it was copied to."""
    config = repo_with_helm_catalog(tmp_path, [
        {"slug": "gpu", "display_name": "GPU", "hardware": {"kind": "gpu", "gpus": 0}}])
    with pytest.raises(SystemExit) as stopped:
        local_spawner(config, tmp_path / "data", monkeypatch)
    assert "configuration error: ProfilesKubeSpawner.profiles[0].hardware.gpus: " in str(stopped.value)
    assert "LocalProfilesSpawner" not in str(stopped.value)
