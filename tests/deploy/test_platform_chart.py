"""helm/platform rendered by a real helm: lint, schema, every object valid, volumes wired to what the hub mounts."""

from __future__ import annotations

import copy
import re

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


def test_helm_lint_passes_with_the_charts_own_defaults(helm):
    """An operator's first `helm lint helm/platform`, before writing any value: lint renders with `required` and
    `fail` downgraded to messages, and what it renders must still be YAML (an empty EFS id made `volumeHandle:
    ::`)."""
    proc = run_helm(helm, "lint", str(PLATFORM))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_helm_template_with_the_defaults_fails_only_naming_the_values_to_set(helm):
    proc = run_helm(helm, "template", "platform", str(PLATFORM), check=False)
    assert proc.returncode != 0
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    # the first value without which there is no platform, named as the values file writes it
    assert "execution error at" in error and re.search(r"karpenter\.nodePools\.[a-z0-9-]+\.warmNodes must be set|"
                                                       r"efs\.[A-Za-z.]+ is required", error), error


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


def refusal(obj: dict) -> str | None:
    """Why crds.validate refuses obj (the JSON path and message), or None if it accepts it."""
    try:
        crds.validate(obj)
    except jsonschema.ValidationError as e:
        return f"{e.json_path}: {e.message}"
    except crds.CRDError as e:
        return str(e)
    return None


def _spec(o):
    return o["spec"]["template"]["spec"]


def _req(key, operator, *values, **extra):
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {}), **extra}


TAGS = {"karpenter.sh/discovery": "jupyterhub"}

# Each mutation is something the real CRD (or Karpenter's RuntimeValidate, marked) refuses; the pattern is the
# reason ours must give, so a mutation refused for some other reason does not pass. Upstream files and commits:
# tests/deploy/crds.py.
REFUSED = [
    # NodePool: schema
    ("NodePool", lambda o: _spec(o).update(taint=[]), r"Additional properties are not allowed \('taint'"),
    ("NodePool", lambda o: _spec(o)["taints"].append({"key": "a", "effect": "NoExecut"}), r"'NoExecut' is not one of"),
    ("NodePool", lambda o: _spec(o).pop("nodeClassRef"), r"'nodeClassRef' is a required property"),
    ("NodePool", lambda o: o["spec"]["disruption"].update(consolidateAfter="10 minutes"),
     r"consolidateAfter: '10 minutes' does not match"),
    ("NodePool", lambda o: o["spec"]["disruption"].update(budgets=[{"nodes": "10%", "schedule": "every night",
                                                                    "duration": "8h"}]),
     r"schedule: 'every night' does not match"),
    ("NodePool", lambda o: o["spec"]["disruption"].update(budgets=[{"nodes": "101%"}]),
     r"nodes: '101%' does not match"),
    ("NodePool", lambda o: o["spec"].update(limits={"nvidia.com/gpu": "sixteen"}),
     r"limits\['nvidia.com/gpu'\]: 'sixteen' is not valid"),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("karpenter.sh/capacity-type", "In", "on demand")),
     r"'on demand' does not match"),                                              # runtime: a label value
    # NodePool: CEL
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update({"karpenter.sh/nodepool": "x"}),
     r'labels\[karpenter.sh/nodepool\]: label "karpenter.sh/nodepool" is restricted'),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("karpenter.sh/nodepool", "In", "cpu")),
     r'requirements\[\d+\].key: label "karpenter.sh/nodepool" is restricted'),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("kubernetes.io/hostname", "Exists")),
     r'label (domain "kubernetes.io"|"kubernetes.io/hostname") is restricted'),   # upstream: both rules fail
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update({"example.k8s.io": "x"}),
     r'label domain "k8s.io" is restricted'),                                     # a bare key is its own domain
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update({"kubernetes.io/role": "x"}),
     r'label domain "kubernetes.io" is restricted'),
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update({"karpenter.sh/capacity": "x"}),
     r'label domain "karpenter.sh" is restricted'),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("karpenter.k8s.aws/instance-color", "In", "red")),
     r'label domain "karpenter.k8s.aws" is restricted'),
    ("NodePool", lambda o: _spec(o)["requirements"].append(
        _req("karpenter.k8s.aws/instance-generation", "Gt", "five")), r"single positive integer value"),
    ("NodePool", lambda o: _spec(o)["requirements"].append(
        _req("karpenter.k8s.aws/instance-generation", "Gt", "9223372036854775808")),   # CEL int() overflows
     r"single positive integer value"),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("karpenter.k8s.aws/instance-cpu", "Lt", "8", "16")),
     r"single positive integer value"),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("karpenter.k8s.aws/instance-family", "In")),
     r"operator 'In' must have a value defined"),
    ("NodePool", lambda o: _spec(o)["requirements"].append(
        _req("karpenter.k8s.aws/instance-family", "In", "g5", minValues=2)), r"at least that many values"),
    ("NodePool", lambda o: o["spec"]["disruption"].update(budgets=[{"nodes": "1", "schedule": "@daily"}]),
     r"'schedule' must be set with 'duration'"),
    # NodePool: runtime (the API server accepts these; Karpenter never makes the pool Ready)
    ("NodePool", lambda o: _spec(o)["taints"].append({**_spec(o)["taints"][0], "value": "other"}),
     r"duplicate taint Key/Effect pair"),
    ("NodePool", lambda o: _spec(o).update(startupTaints=[{**_spec(o)["taints"][0]}]), r"duplicate taint Key/Effect"),
    ("NodePool", lambda o: _spec(o)["taints"].append({"key": "example.com/" + "a" * 64, "effect": "NoSchedule"}),
     r"taints\[\d+\].key: .* is not a qualified name"),
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update({"a" * 64: "x"}),
     r"is not a qualified name"),
    # EC2NodeClass: schema
    ("EC2NodeClass", lambda o: o["spec"]["metadataOptions"].update(httpPutResponseHopLimit=0),
     r"less than the minimum"),
    ("EC2NodeClass", lambda o: o["spec"]["metadataOptions"].update(httpTokens="sometimes"),
     r"'sometimes' is not one of"),
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"][0]["ebs"].update(volumeSize="100GB"),
     r"does not match"),
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"][0]["ebs"].update(volumeSize="60000Gi"),
     r"volumeSize: '60000Gi' does not match"),                                   # the CRD's maximum is 59000Gi
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"][0]["ebs"].update(volumeType="gp4"),
     r"'gp4' is not one"),
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"][0]["ebs"].pop("volumeSize"),
     r"ebs: .* is not valid under any of the given schemas"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"owner": "amazon"}], amiFamily="AL2023"),
     r"amiSelectorTerms\[0\]: .* is not valid under any of the given schemas"),  # owner alone selects nothing
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"alias": "al2023@"}]), r"does not match"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"alias": "ubuntu@latest"}]), r"does not match"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"alias": "al2023@v" + "1" * 30}]), r"is too long"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"ssmParameter": "/aws/x"}], amiFamily="AL2023"),
     r"Additional properties are not allowed \('ssmParameter'"),                  # Karpenter 1.0 has no such field
    ("EC2NodeClass", lambda o: o["spec"]["subnetSelectorTerms"].append({}), r"is not valid under any"),
    ("EC2NodeClass", lambda o: o["spec"].update(subnetSelectorTerms=[]), r"should be non-empty"),
    ("EC2NodeClass", lambda o: o["spec"]["subnetSelectorTerms"][0]["tags"].update({"Name": ""}),
     r"should be non-empty"),
    ("EC2NodeClass", lambda o: o["spec"].update(role=""), r"role: '' should be non-empty"),
    ("EC2NodeClass", lambda o: o["spec"]["tags"].update({"eks:eks-cluster-name": "x"}), r"should not be valid under"),
    ("EC2NodeClass", lambda o: o["spec"]["tags"].update({"karpenter.sh/managed-by": "x"}),
     r"should not be valid under"),
    ("EC2NodeClass", lambda o: o["spec"]["tags"].update({"karpenter.sh/nodeclaim": "x"}), r"should not be valid under"),
    ("EC2NodeClass", lambda o: o["spec"]["tags"].update({"kubernetes.io/cluster/jupyterhub": "owned"}),
     r"should not be valid under"),
    ("EC2NodeClass", lambda o: o["spec"]["tags"].update({"": "x"}), r"'' should be non-empty"),
    ("EC2NodeClass", lambda o: o["spec"].update(kubelet={"maxPods": 110}), r"Additional properties .*'kubelet'"),
    # EC2NodeClass: CEL
    ("EC2NodeClass", lambda o: o["spec"].update(instanceProfile="KarpenterNodeInstanceProfile"),
     r"must specify exactly one of \['role', 'instanceProfile'\]"),
    ("EC2NodeClass", lambda o: o["spec"].pop("role"), r"must specify exactly one of"),
    ("EC2NodeClass", lambda o: o["spec"]["amiSelectorTerms"].append({"id": "ami-0123456789abcdef0"}),
     r"'alias' is mutually exclusive, cannot be set with a combination of other amiSelectorTerms"),
    ("EC2NodeClass", lambda o: o["spec"]["amiSelectorTerms"][0].update(owner="amazon"),
     r"'alias' is mutually exclusive, cannot be set with a combination of other fields"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"id": "ami-0123", "name": "x"}], amiFamily="AL2023"),
     r"'id' is mutually exclusive"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"name": "my-ami-*"}]),
     r"must specify amiFamily if amiSelectorTerms does not contain an alias"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiFamily="Bottlerocket"),
     r"amiFamily must be 'AL2023' or 'Custom'"),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"alias": "windows2022@v20240101"}]),
     r"windows families may only specify version 'latest'"),
    ("EC2NodeClass", lambda o: o["spec"].update(subnetSelectorTerms=[{"id": "subnet-0123", "tags": TAGS}]),
     r"'id' is mutually exclusive, cannot be set with a combination of other fields in subnetSelectorTerms"),
    ("EC2NodeClass", lambda o: o["spec"].update(securityGroupSelectorTerms=[{"id": "sg-0123", "name": "nodes"}]),
     r"'id' is mutually exclusive, cannot be set with a combination of other fields in securityGroupSelectorTerms"),
    ("EC2NodeClass", lambda o: o["spec"].update(securityGroupSelectorTerms=[{"name": "nodes", "tags": TAGS}]),
     r"'name' is mutually exclusive"),
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"].append(
        {"deviceName": "/dev/xvdb", "rootVolume": True, "ebs": {"volumeSize": "10Gi"}}),
     r"must have only one blockDeviceMappings with rootVolume"),
]


def _sample(platform_objects, kind):
    return copy.deepcopy(next(o for o in platform_objects if o["kind"] == kind))


@pytest.mark.parametrize("kind, mutate, reason", REFUSED)
def test_the_crd_checks_refuse_what_karpenter_refuses(platform_objects, kind, mutate, reason):
    obj = _sample(platform_objects, kind)
    assert refusal(obj) is None
    mutate(obj)
    problem = refusal(obj)
    assert problem is not None, "accepted"
    assert re.search(reason, problem), problem


# What the real CRD accepts, ours must accept too: no check stricter than upstream where it matters.
@pytest.mark.parametrize("kind, mutate", [
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("nvidia.com/gpu.product", "Exists", "A100"))),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("karpenter.k8s.aws/instance-cpu", "Gt", "007"))),
    ("NodePool", lambda o: _spec(o)["requirements"].append(_req("topology.kubernetes.io/zone", "In", "eu-west-1a"))),
    ("NodePool", lambda o: _spec(o)["requirements"].append(
        _req("node.kubernetes.io/instance-type", "NotIn", "t3.micro"))),
    ("NodePool", lambda o: o["spec"]["template"]["metadata"]["labels"].update(
        {"node.kubernetes.io/exclude-from-external-load-balancers": "true", "topology.kubernetes.io/zone": "a",
         "example.node-restriction.kubernetes.io/tier": "user", "x.kops.k8s.io/ig": "nodes"})),
    ("NodePool", lambda o: _spec(o)["taints"].append({"key": "a" * 200 + ".example.com/b", "effect": "NoExecute"})),
    ("NodePool", lambda o: _spec(o)["taints"].append({**_spec(o)["taints"][0], "effect": "NoExecute"})),
    ("NodePool", lambda o: o["spec"]["disruption"].update(
        budgets=[{"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Empty"]}])),
    ("NodePool", lambda o: o["spec"].update(weight=100, limits={"cpu": 1000, "memory": "4000Gi"})),
    ("EC2NodeClass", lambda o: o["spec"]["blockDeviceMappings"][0]["ebs"].update(volumeSize="59000Gi")),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"alias": "bottlerocket@v1.10.0"}])),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"alias": "windows2022@latest"}])),
    ("EC2NodeClass", lambda o: o["spec"].update(amiSelectorTerms=[{"tags": TAGS, "owner": "self"},
                                                                 {"id": "ami-0123"}], amiFamily="Custom")),
    # upstream's rule is !self.all(...): a mixed term is refused only when every term is mixed
    ("EC2NodeClass", lambda o: o["spec"]["subnetSelectorTerms"].append({"id": "subnet-0123", "tags": TAGS})),
    ("EC2NodeClass", lambda o: o["spec"].update(instanceProfile=o["spec"].pop("role"))),
])
def test_the_crd_checks_accept_what_karpenter_accepts(platform_objects, kind, mutate):
    obj = _sample(platform_objects, kind)
    mutate(obj)
    assert refusal(obj) is None


@pytest.mark.parametrize("args, message", [
    (["--set", "efs.fileSystemId="], "efs.fileSystemId is required"),
    (["--set", "efs.home.accessPointId="], "efs.home.accessPointId is required"),
    (["--set", "karpenter.clusterName="], "karpenter.clusterName is required"),
    (["--set", "karpenter.nodePools.gpu-mig.warmNodes=null"], "karpenter.nodePools.gpu-mig.warmNodes must be set"),
    (["--set", "efs.fileSytemId=fs-0123456789abcdef0"], "fileSytemId"),              # misspelled key: schema
    (["--set", "efs.fileSystemId=vol-0123"], "fileSystemId"),                         # wrong shape
    (["--set", "karpenter.nodePools.cpu.nodeClass=big"], 'nodeClass "big" is not one of'),
    (["--set", "karpenter.nodePools.cpu.taints[0].effect=NoSchedul"], "effect"),
    # values the chart would render into a NodePool or EC2NodeClass that the real CRD refuses
    (["--set", "karpenter.nodeClasses.standard.rootVolumeSize=60000Gi"],
     "karpenter.nodeClasses.standard.rootVolumeSize: Does not match pattern"),
    (["--set", "karpenter.amiAlias=al2023@v20250807000000000000000"],
     "karpenter.amiAlias: String length must be less than or equal to 30"),
    (["--set-json", 'karpenter.tags={"kubernetes.io/cluster/jupyterhub": "owned"}'],
     'karpenter.tags: Property name of "kubernetes.io/cluster/jupyterhub" does not match'),
    (["--set-json", 'karpenter.tags={"eks:eks-cluster-name": "jupyterhub"}'],
     'karpenter.tags: Property name of "eks:eks-cluster-name" does not match'),
    (["--set-json", 'karpenter.tags={"jupyterhub-ext/release": "x"}'],     # the chart sets it: a duplicate key
     'karpenter.tags: Property name of "jupyterhub-ext/release" does not match'),
    (["--set-json", 'karpenter.nodePools.cpu.taints=[{"key": "a", "value": "", "effect": "NoSchedule"}]'],
     "karpenter.nodePools.cpu.taints.0.value: Does not match pattern"),
    (["--set-json", 'karpenter.nodePools.cpu.requirements=[{"key": "karpenter.sh/capacity-type", "operator": "In"}]'],
     "karpenter.nodePools.cpu.requirements.0: values is required"),
    (["--set-json", 'karpenter.nodePools.cpu.requirements=[{"key": "karpenter.sh/capacity-type", "operator": "In", '
                    '"values": []}]'],
     "karpenter.nodePools.cpu.requirements.0.values: Array must have at least 1 items"),
    (["--set-json", 'karpenter.nodePools.cpu.requirements=[{"key": "karpenter.k8s.aws/instance-generation", '
                    '"operator": "Gt", "values": ["five"]}]'],
     "karpenter.nodePools.cpu.requirements.0.values.0: Does not match pattern"),
    (["--set-json", 'karpenter.nodePools.cpu.requirements=[{"key": "karpenter.k8s.aws/instance-generation", '
                    '"operator": "Lt", "values": ["5", "6"]}]'],
     "karpenter.nodePools.cpu.requirements.0.values: Array must have at most 1 items"),
    (["--set-json", 'karpenter.userNodeLabels={"bad key": "x"}'],
     'karpenter.userNodeLabels: Property name of "bad key" does not match'),
])
def test_bad_values_are_refused_by_helm_naming_the_key(helm, args, message):
    proc = render_platform(helm, *args, check=False)
    assert proc.returncode != 0, f"helm accepted {args}"
    assert message in proc.stderr, proc.stderr


def test_values_at_the_chart_schemas_limits_render_objects_the_crds_accept(helm):
    objects = render_platform(
        helm, "--set", "karpenter.nodeClasses.standard.rootVolumeSize=16384Gi",
        "--set", "karpenter.amiAlias=bottlerocket@v1.10.0",
        "--set-json", 'karpenter.tags={"team": "ml", "cost-center": ""}',
        "--set-json", 'karpenter.nodePools.cpu.taints=[{"key": "example.com/dedicated", "value": "user", '
                      '"effect": "NoSchedule"}, {"key": "example.com/dedicated", "effect": "NoExecute"}]',
        "--set-json", 'karpenter.nodePools.cpu.requirements=[{"key": "karpenter.k8s.aws/instance-cpu", '
                      '"operator": "Lt", "values": ["65"]}, {"key": "karpenter.k8s.aws/instance-family", '
                      '"operator": "In", "values": ["m7i", "m7a"], "minValues": 2}, '
                      '{"key": "karpenter.k8s.aws/instance-local-nvme", "operator": "DoesNotExist"}]',
        "--set-json", 'karpenter.userNodeLabels={"hub.jupyter.org/node-purpose": "user", "example.com/tier": ""}')
    crd_objects = [o for o in objects if o["kind"] in CRD_KINDS]
    assert len(crd_objects) == 8
    for obj in crd_objects:
        crds.validate(obj)


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
