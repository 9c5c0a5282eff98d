"""The emulated scheduler's predicates and its messages, against the wording of kube-scheduler's FitError."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.harness.nodes import GPU_TAINT, NEURON_TAINT, Accelerators, NodePool, make_node
from tests.harness.quantity import QuantityError, format_quantity, parse_quantity
from tests.harness.scheduler import (filter_node, fit_error, insufficient, node_affinity_matches, pod_requests,
                                     prefilter_error, tolerates, untolerated_taint, usage_by_node)


def pod(containers=None, **spec):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": containers or [{"name": "c", "image": "i"}], **spec}}


def container(limits=None, requests=None):
    return {"name": "c", "image": "i", "resources": {"limits": limits or {}, "requests": requests or {}}}


@pytest.mark.parametrize("text, value", [
    ("500m", Fraction(1, 2)), ("2", 2), ("1.5", Fraction(3, 2)), ("1Gi", 2**30), ("8G", 8 * 10**9),
    ("1e3", 1000), ("100Mi", 100 * 2**20), ("0.5Ki", 512), (4, 4), ("10u", Fraction(1, 100000)),
])
def test_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["1.5.5", "Gi", "1 Gi", "1gi", "-", "", "1Qi"])
def test_bad_quantities(bad):
    with pytest.raises(QuantityError):
        parse_quantity(bad)


def test_format_quantity():
    assert [format_quantity(Fraction(x)) for x in (Fraction(1, 2), 2, 1500, 0)] == ["500m", "2", "1500", "0"]
    assert format_quantity(Fraction(2**30), binary=True) == "1Gi"


@pytest.mark.parametrize("toleration, taint, ok", [
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "operator": "Equal", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "operator": "Equal", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),  # Equal by default
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Equal"}, {"key": "k", "effect": "NoSchedule"}, True),  # empty value == empty
])
def test_toleration_matching(toleration, taint, ok):
    assert tolerates(toleration, taint) is ok


def test_only_noschedule_and_noexecute_taints_repel():
    node = make_node("n", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])
    assert untolerated_taint(pod(), node) is None
    node = make_node("n", taints=[{"key": "hard", "value": "1", "effect": "NoExecute"}])
    assert untolerated_taint(pod(), node)["key"] == "hard"


def _affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize("expr, ok", [
    ({"key": "pool", "operator": "In", "values": ["gpu", "cpu"]}, True),
    ({"key": "pool", "operator": "In", "values": ["cpu"]}, False),
    ({"key": "pool", "operator": "NotIn", "values": ["cpu"]}, True),
    ({"key": "missing", "operator": "NotIn", "values": ["x"]}, True),
    ({"key": "pool", "operator": "Exists"}, True),
    ({"key": "missing", "operator": "Exists"}, False),
    ({"key": "missing", "operator": "DoesNotExist"}, True),
    ({"key": "gen", "operator": "Gt", "values": ["5"]}, True),
    ({"key": "gen", "operator": "Gt", "values": ["6"]}, False),
    ({"key": "gen", "operator": "Lt", "values": ["7"]}, True),
    ({"key": "pool", "operator": "Gt", "values": ["1"]}, False),  # not an integer
])
def test_node_affinity_operators(expr, ok):
    node = make_node("n", labels={"pool": "gpu", "gen": "6"})
    assert node_affinity_matches(pod(affinity=_affinity({"matchExpressions": [expr]})), node) is ok


def test_node_affinity_terms_or_expressions_and_fields():
    node = make_node("n1", labels={"pool": "gpu"})
    no = {"key": "pool", "operator": "In", "values": ["cpu"]}
    yes = {"key": "pool", "operator": "In", "values": ["gpu"]}
    assert node_affinity_matches(pod(affinity=_affinity({"matchExpressions": [no]}, {"matchExpressions": [yes]})), node)
    assert not node_affinity_matches(pod(affinity=_affinity({"matchExpressions": [yes, no]})), node)
    assert not node_affinity_matches(pod(affinity=_affinity({})), node)  # an empty term matches nothing
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert node_affinity_matches(pod(affinity=_affinity(by_name)), node)
    assert not node_affinity_matches(pod(nodeSelector={"pool": "cpu"}), node)
    assert node_affinity_matches(pod(nodeSelector={"pool": "gpu"}), node)


def test_requests_limits_imply_requests_init_containers_and_overhead():
    p = pod([container(limits={"nvidia.com/gpu": "1", "cpu": "2"}, requests={"cpu": "500m"}),
             container(requests={"memory": "1Gi"})],
            initContainers=[container(requests={"cpu": "3"})], overhead={"memory": "100Mi"})
    req = pod_requests(p)
    assert req["nvidia.com/gpu"] == 1
    assert req["cpu"] == 3  # the init container's 3 beats the sum 0.5
    assert req["memory"] == 2**30 + 100 * 2**20
    assert req["pods"] == 1


def test_resource_fit_reasons():
    node = make_node("n", cpu=4, memory="16Gi", pods=2, extended={"nvidia.com/gpu": 1})
    p = pod([container(requests={"cpu": "3900m", "memory": "1Gi"}, limits={"nvidia.com/gpu": "1"})])
    assert insufficient(p, node, None) == []
    used = usage_by_node([{**p, "spec": {**p["spec"], "nodeName": "n"}, "status": {"phase": "Running"}}])["n"]
    assert insufficient(p, node, used) == ["Insufficient cpu", "Insufficient nvidia.com/gpu"]
    used["pods"] = 2
    assert insufficient(p, node, used)[0] == "Too many pods"
    # a finished pod frees its resources
    assert usage_by_node([{**p, "spec": {**p["spec"], "nodeName": "n"}, "status": {"phase": "Succeeded"}}]) == {}


def test_allocatable_leaves_room_for_the_system():
    node = make_node("n", instance_type="m6i.xlarge")
    p = pod([container(requests={"memory": "16Gi"})])
    assert insufficient(p, node, None) == ["Insufficient memory"]
    assert node["status"]["capacity"]["memory"] == "16Gi"


def test_fit_error_wording_matches_kube_scheduler():
    gpu = make_node("gpu-1", labels={"pool": "gpu"}, taints=[GPU_TAINT], extended={"nvidia.com/gpu": 1})
    cpu = [make_node(f"cpu-{i}", labels={"pool": "cpu"}) for i in range(2)]
    gpu_pod = pod([container(limits={"nvidia.com/gpu": "1"})], nodeSelector={"pool": "gpu"},
                  tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    busy = {"gpu-1": {"nvidia.com/gpu": Fraction(1), "pods": Fraction(1)}}
    assert fit_error(gpu_pod, [gpu] + cpu, busy) == (
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")


def test_taint_wording_with_and_without_value():
    nodes = [make_node("g", taints=[GPU_TAINT]), make_node("t", taints=[{"key": "aws.amazon.com/neuron",
                                                                         "effect": "NoSchedule"}])]
    assert fit_error(pod(), nodes, {}) == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {aws.amazon.com/neuron: }, 1 node(s) had "
        "untolerated taint {nvidia.com/gpu: true}. preemption: 0/2 nodes are available: 2 Preemption is not "
        "helpful for scheduling.")


def test_first_failing_filter_wins_per_node():
    # tainted AND mismatched AND too small: only the taint is reported, as the framework stops at the first
    node = make_node("n", labels={"pool": "cpu"}, taints=[NEURON_TAINT], cpu=1)
    p = pod([container(requests={"cpu": "8"})], nodeSelector={"pool": "gpu"})
    assert filter_node(p, node, None) == (["node(s) had untolerated taint {aws.amazon.com/neuron: true}"], False)
    cordoned = make_node("c", unschedulable=True)
    assert filter_node(p, cordoned, None) == (["node(s) were unschedulable"], False)


def test_other_messages():
    assert fit_error(pod(), [], {}) == "no nodes available to schedule pods"
    never = pod([container(requests={"cpu": "100"})], preemptionPolicy="Never")
    assert fit_error(never, [make_node("n")], {}) == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
    assert prefilter_error(pod(), [make_node("a"), make_node("b")], 'persistentvolumeclaim "claim-x" not found') == (
        '0/2 nodes are available: persistentvolumeclaim "claim-x" not found. preemption: 0/2 nodes are available: '
        "2 Preemption is not helpful for scheduling.")


def test_accelerator_nodes_advertise_device_plugin_resources():
    alloc = lambda n: n["status"]["allocatable"]
    assert alloc(make_node("g", instance_type="g5.xlarge"))["nvidia.com/gpu"] == "1"
    shared = make_node("s", instance_type="g5.xlarge", accelerators=Accelerators(gpu_replicas=4))
    assert alloc(shared)["nvidia.com/gpu"] == "4"
    renamed = make_node("r", instance_type="g5.xlarge", accelerators=Accelerators(4, gpu_rename_shared=True))
    assert alloc(renamed)["nvidia.com/gpu.shared"] == "4" and "nvidia.com/gpu" not in alloc(renamed)
    mig = make_node("m", instance_type="p4d.24xlarge", accelerators=Accelerators(mig_profile="1g.5gb"))
    assert alloc(mig)["nvidia.com/mig-1g.5gb"] == "56" and "nvidia.com/gpu" not in alloc(mig)
    trn = make_node("t", instance_type="trn1.32xlarge")
    assert (alloc(trn)["aws.amazon.com/neuron"], alloc(trn)["aws.amazon.com/neuroncore"]) == ("16", "32")
    pool = NodePool("gpu", "g5.xlarge", taints=[GPU_TAINT])
    node = pool.node("gpu-abcde")
    assert node["metadata"]["labels"]["karpenter.sh/nodepool"] == "gpu"
    assert node["spec"]["taints"] == [GPU_TAINT]
