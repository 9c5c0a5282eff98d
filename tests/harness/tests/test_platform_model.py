"""The node pools and EFS volumes the harness models from helm/platform/values.yaml."""

from __future__ import annotations

from tests.harness.platform import efs_objects, instance_types_for, load_values, pools_from_platform
from tests.harness.scheduler import filter_node


def test_pools_follow_the_chart_values():
    values = load_values()
    pools = {p.name: p for p in pools_from_platform(values)}
    assert set(pools) == {n for n, s in values["karpenter"]["nodePools"].items() if s.get("enabled", True)}
    for name, spec in values["karpenter"]["nodePools"].items():
        node = pools[name].node("n")
        labels = node["metadata"]["labels"]
        assert labels["karpenter.sh/nodepool"] == name
        for k, v in {**values["karpenter"]["userNodeLabels"], **(spec.get("labels") or {})}.items():
            assert labels[k] == v
        assert node["spec"].get("taints", []) == (spec.get("taints") or [])
    alloc = lambda pool: pools[pool].node("n")["status"]["allocatable"]
    replicas = str(values["nvidia"]["devicePlugin"]["timeSlicing"]["replicas"])
    assert alloc("gpu-ts")["nvidia.com/gpu"] == replicas
    assert alloc("gpu")["nvidia.com/gpu"] == "1"
    assert "nvidia.com/mig-1g.5gb" in alloc("gpu-mig") and "nvidia.com/gpu" not in alloc("gpu-mig")
    assert alloc("trainium")["aws.amazon.com/neuron"] == "1"
    assert alloc("inferentia")["aws.amazon.com/neuroncore"] == "2"
    assert pools["gpu-mig"].initial == 1  # warmNodes is left to the operator: the harness keeps one


def test_instance_types_honour_requirements():
    cpu = instance_types_for([{"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["m"]},
                              {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"]}])
    assert cpu and all(t.startswith("m6") for t in cpu)
    assert instance_types_for([{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                "values": ["p4d.24xlarge"]}]) == ["p4d.24xlarge"]
    assert instance_types_for([{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                "values": ["inf2"]}])[0] == "inf2.xlarge"


def test_karpenter_picks_the_smallest_instance_type_that_fits():
    gpu = {p.name: p for p in pools_from_platform()}["gpu"]
    pod = {"metadata": {"name": "p"}, "spec": {
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "4"}}}]}}
    fits = [t for t in gpu.candidates if not filter_node(pod, gpu.node("n", t), None)[0]]
    assert fits[0] == "g5.2xlarge"  # g5.xlarge has 4 vCPUs, less the kubelet's reservation


def test_efs_volumes_mirror_the_chart():
    objs = efs_objects("ns")
    pvs = [b for p, b in objs if p == "persistentvolumes"]
    pvcs = [b for p, b in objs if p == "persistentvolumeclaims"]
    values = load_values()["efs"]
    assert {c["metadata"]["name"] for c in pvcs} == {values["home"]["pvcName"], values["shared"]["pvcName"]}
    for pv in pvs:
        assert pv["spec"]["csi"]["driver"] == "efs.csi.aws.com" and "::" in pv["spec"]["csi"]["volumeHandle"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == values["reclaimPolicy"]
        assert pv["spec"]["claimRef"]["namespace"] == "ns"
