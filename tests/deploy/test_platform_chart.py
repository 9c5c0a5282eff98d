"""helm/platform rendered by a real helm: lint, schema, every object valid, volumes wired to what the hub mounts."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from . import crds
from .conftest import K8S_VERSION, PLATFORM, PLATFORM_EXAMPLE, render_platform, run_helm
from .z2jh_chart import COMBINATIONS, NAMESPACE, merged_values

CRD_KINDS = {"NodePool", "EC2NodeClass"}


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_helm_lint_is_clean(helm):
    proc = run_helm(helm, "lint", str(PLATFORM), "--strict", "-f", str(PLATFORM_EXAMPLE))
    assert "0 chart(s) failed" in proc.stdout


def test_every_rendered_object_is_valid(platform_objects):
    kinds = {o["kind"] for o in platform_objects}
    assert {"StorageClass", "PersistentVolume", "PersistentVolumeClaim", "ConfigMap", "NodePool", "EC2NodeClass",
            "Deployment"} <= kinds
    for obj in platform_objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CRD_KINDS:
            crds.validate(obj)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{where}: {e}") from None


@pytest.mark.parametrize("kind, mutate", [
    ("NodePool", lambda o: o["spec"]["template"]["spec"].update(taint=[])),                  # unknown field
    ("NodePool", lambda o: o["spec"]["template"]["spec"]["taints"].append({"key": "a", "effect": "NoExecut"})),
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update({"karpenter.sh/nodepool": "x"})),
    ("NodePool", lambda o: o["spec"]["template"]["spec"]["requirements"].append(
        {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["five"]})),
    ("NodePool", lambda o: o["spec"]["template"]["spec"]["requirements"].append(
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": []})),
    ("NodePool", lambda o: o["spec"]["disruption"].update(consolidateAfter="10 minutes")),
    ("NodePool", lambda o: o["spec"]["template"]["spec"].pop("nodeClassRef")),
    ("EC2NodeClass", lambda o: o["spec"].update(instanceProfile="KarpenterNodeInstanceProfile")),
    ("EC2NodeClass", lambda o: o["spec"]["amiSelectorTerms"].append({"id": "ami-0123456789abcdef0"})),
    ("EC2NodeClass", lambda o: o["spec"]["metadataOptions"].update(httpPutResponseHopLimit=0)),
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"][0]["ebs"].update(volumeSize="100GB")),
])
def test_the_crd_checks_refuse_broken_objects(platform_objects, kind, mutate):
    obj = copy.deepcopy(next(o for o in platform_objects if o["kind"] == kind))
    crds.validate(obj)
    mutate(obj)
    with pytest.raises((jsonschema.ValidationError, crds.CRDError)):
        crds.validate(obj)


@pytest.mark.parametrize("args, message", [
    (["--set", "efs.fileSystemId="], "efs.fileSystemId is required"),
    (["--set", "efs.home.accessPointId="], "efs.home.accessPointId is required"),
    (["--set", "karpenter.clusterName="], "karpenter.clusterName is required"),
    (["--set", "karpenter.nodePools.gpu-mig.warmNodes=null"], "karpenter.nodePools.gpu-mig.warmNodes must be set"),
    (["--set", "efs.fileSytemId=fs-0123456789abcdef0"], "fileSytemId"),              # misspelled key: schema
    (["--set", "efs.fileSystemId=vol-0123"], "fileSystemId"),                         # wrong shape
    (["--set", "karpenter.nodePools.cpu.nodeClass=big"], 'nodeClass "big" is not one of'),
    (["--set", "karpenter.nodePools.cpu.taints[0].effect=NoSchedul"], "effect"),
])
def test_bad_values_are_refused_by_helm_naming_the_key(helm, args, message):
    proc = render_platform(helm, *args, check=False)
    assert proc.returncode != 0, f"helm accepted {args}"
    assert message in proc.stderr, proc.stderr


def test_efs_volumes_are_pinned_pairs_on_their_own_access_points(platform_objects):
    pvs, pvcs = by_kind(platform_objects, "PersistentVolume"), by_kind(platform_objects, "PersistentVolumeClaim")
    example = yaml.safe_load(PLATFORM_EXAMPLE.read_text())
    handles = set()
    assert set(pvcs) == {"efs-home", "efs-shared"}
    for name, pvc in pvcs.items():
        assert pvc["metadata"]["namespace"] == NAMESPACE
        pv = pvs[pvc["spec"]["volumeName"]]
        assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                          "namespace": NAMESPACE, "name": name}
        assert pv["spec"]["accessModes"] == pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        assert pv["spec"]["storageClassName"] == pvc["spec"]["storageClassName"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert pv["spec"]["csi"]["driver"] == "efs.csi.aws.com"
        fs, ap = pv["spec"]["csi"]["volumeHandle"].split("::")
        assert fs == example["efs"]["fileSystemId"]
        what = name.split("-", 1)[1]
        assert ap == example["efs"][what]["accessPointId"], "never the file-system root"
        handles.add(ap)
        assert "tls" in pv["spec"]["mountOptions"]
    assert len(handles) == 2, "homes and shared must be different access points"


HOMES_AP = "fsap-0123456789abcdef0"  # the example values' homes access point


# The shared volume must never show the homes (a public blueprint mounts the EFS root as "shared"): each values
# file below would, and helm must refuse it naming the key.
@pytest.mark.parametrize("efs, message", [
    ({"shared": {"accessPointId": ""}},
     "efs.shared.accessPointId is required (fsap-...): without an access point the shared volume is the EFS "
     "file-system root"),
    ({"shared": {"accessPointId": HOMES_AP}},
     f'efs.shared.accessPointId "{HOMES_AP}" is also efs.home.accessPointId'),
    ({"shared": {"rootDirectory": "/"}}, 'efs.shared.rootDirectory is "/"'),
    ({"shared": {"rootDirectory": "/homes"}}, 'efs.shared.rootDirectory "/homes" is efs.home.rootDirectory'),
    ({"home": {"rootDirectory": "/data/homes"}, "shared": {"rootDirectory": "/data"}},
     'efs.shared.rootDirectory "/data" contains the homes (efs.home.rootDirectory "/data/homes")'),
    ({"shared": {"rootDirectory": "/homes/shared"}},
     'efs.shared.rootDirectory "/homes/shared" is inside the homes (efs.home.rootDirectory "/homes")'),
    ({"home": {"rootDirectory": "/"}}, 'efs.home.rootDirectory is "/"'),
    ({"shared": {"rootDirectory": "/homes/../x"}}, "efs.shared.rootDirectory: Does not match pattern"),
    ({"shared": {"rootDirectory": None}}, "efs.shared: rootDirectory is required"),
])
def test_a_shared_volume_that_could_show_the_homes_is_refused(helm, tmp_path, efs, message):
    values = tmp_path / "platform.yaml"
    values.write_text(yaml.safe_dump({"efs": efs}))
    proc = render_platform(helm, "-f", str(values), check=False)
    assert proc.returncode != 0, f"helm accepted {efs}"
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("efs", [
    {},                                                                      # the example: /homes and /shared
    {"shared": {"rootDirectory": "/homes-shared"}},                          # a sibling sharing a prefix
    {"home": {"rootDirectory": "/data/homes"}, "shared": {"rootDirectory": "/data/shared"}},
    {"shared": {"enabled": False, "accessPointId": ""}},                    # no shared volume at all
])
def test_a_shared_volume_beside_the_homes_renders(helm, tmp_path, efs):
    values = tmp_path / "platform.yaml"
    values.write_text(yaml.safe_dump({"efs": efs}))
    pvcs = by_kind(render_platform(helm, "-f", str(values)), "PersistentVolumeClaim")
    assert set(pvcs) == ({"efs-home"} if efs.get("shared", {}).get("enabled") is False
                         else {"efs-home", "efs-shared"})


@pytest.mark.parametrize("name", [n for n in COMBINATIONS if n != "aks-classroom"])
def test_the_hub_mounts_the_claims_and_classes_the_platform_makes(platform_objects, name):
    values = merged_values(COMBINATIONS[name])
    spawner = values["hub"]["config"]["ProfilesKubeSpawner"]
    pvcs = by_kind(platform_objects, "PersistentVolumeClaim")
    assert spawner["home_pvc"] in pvcs and pvcs[spawner["home_pvc"]]["metadata"]["labels"][
        "jupyterhub-ext/volume"] == "home"
    assert spawner["shared_pvc"] in pvcs and pvcs[spawner["shared_pvc"]]["metadata"]["labels"][
        "jupyterhub-ext/volume"] == "shared"
    classes = by_kind(platform_objects, "StorageClass")
    assert values["hub"]["db"]["pvc"]["storageClassName"] in classes
    assert classes["gp3"]["volumeBindingMode"] == "WaitForFirstConsumer"


def test_device_plugin_configs_parse(platform_objects):
    (cm,) = [o for o in platform_objects if o["kind"] == "ConfigMap"]
    assert cm["metadata"]["namespace"] == "gpu-operator"
    configs = {key: yaml.safe_load(text) for key, text in cm["data"].items()}
    assert set(configs) == {"default", "time-sliced"}
    for key, config in configs.items():
        assert config["version"] == "v1"
        assert config["flags"]["migStrategy"] in ("none", "single", "mixed")
    (resource,) = configs["time-sliced"]["sharing"]["timeSlicing"]["resources"]
    assert resource == {"name": "nvidia.com/gpu", "replicas": 4}


def test_node_pools_reference_existing_node_classes(platform_objects):
    classes = by_kind(platform_objects, "EC2NodeClass")
    for name, pool in by_kind(platform_objects, "NodePool").items():
        ref = pool["spec"]["template"]["spec"]["nodeClassRef"]
        assert ref["group"] == "karpenter.k8s.aws" and ref["kind"] == "EC2NodeClass"
        assert ref["name"] in classes, name
        # notebooks are never moved to save money; only empty nodes go
        assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    for nodeclass in classes.values():
        assert nodeclass["spec"]["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert nodeclass["spec"]["metadataOptions"]["httpTokens"] == "required"
        assert nodeclass["spec"]["amiSelectorTerms"][0]["alias"] != "al2023@latest"


def test_warm_nodes_only_where_asked(helm):
    objects = render_platform(helm, "--set", "karpenter.nodePools.gpu-mig.warmNodes=0")
    assert not [o for o in objects if o["kind"] == "Deployment"]
    objects = render_platform(helm, "--set", "karpenter.nodePools.gpu-mig.warmNodes=2")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"karpenter.sh/nodepool": "gpu-mig"}
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
