"""Consistent by construction: every profile of every shipped values combination yields a pod that a node of
the platform chart (rendered by the real helm) can run, and that Karpenter can bring up - and breaking any one
label, taint or device setting on the platform side is caught.

See scheduling.py for the model (the nodes' labels, taints, allocatable and device-plugin resources; whether a pod
fits one is the emulated scheduler's filters, tests/harness/scheduler.py).
"""

from __future__ import annotations

import copy

import pytest

from . import scheduling
from .conftest import render_platform
from .scheduling import aks_nodes, nodes_of, placements, provisionable
from .z2jh_chart import COMBINATIONS

EKS = [c for c in COMBINATIONS if c != "aks-classroom"]


@pytest.fixture(scope="module")
def nodes(platform_objects):
    return nodes_of(platform_objects)


def unschedulable(pods: dict[str, dict], nodes) -> dict[str, str]:
    """{profile: why} for every pod that no node fits or that Karpenter could not bring up."""
    problems = {}
    for label, pod in pods.items():
        fits, reasons = placements(pod, nodes)
        if not fits:
            wanted = (pod["spec"].get("nodeSelector") or {}).get("karpenter.sh/nodepool")
            own = {w: r for w, r in reasons.items() if wanted in (None, w.split("/")[0])}
            problems[label] = ("; ".join(f"{w}: {r}" for w, r in own.items())
                               or f"no NodePool {wanted!r} (pools: {sorted({n.pool for n in nodes})})")
            continue
        if all(provisionable(pod, n) for n in fits):
            problems[label] = provisionable(pod, fits[0])
    return problems


def test_the_model_sees_every_pool_and_what_it_advertises(nodes):
    pools = {n.pool for n in nodes}
    assert pools == {"cpu", "gpu-ts", "gpu-mig", "gpu", "trainium", "inferentia"}
    by_pool = {p: [n for n in nodes if n.pool == p] for p in pools}
    assert all(n.allocatable.get("nvidia.com/gpu") == 4 * 1 for n in by_pool["gpu-ts"] if n.instance == "g5.xlarge")
    (p4d,) = by_pool["gpu-mig"]
    assert p4d.allocatable["nvidia.com/mig-1g.5gb"] == 56 and "nvidia.com/gpu" not in p4d.allocatable
    assert all(n.allocatable["aws.amazon.com/neuron"] >= 1 for n in by_pool["trainium"] + by_pool["inferentia"])
    assert {n.instance.split(".")[0] for n in by_pool["cpu"]} <= {"c6i", "m6i", "r6i", "c6a", "m6a", "r6a", "c7i",
                                                                   "m7i", "r7i", "c7a", "m7a", "r7a"}
    assert all(n.labels["hub.jupyter.org/node-purpose"] == "user" for n in nodes)


@pytest.mark.parametrize("name", EKS)
def test_every_profile_runs_on_a_platform_node_pool(pods, nodes, name):
    problems = unschedulable(pods[name], nodes)
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


@pytest.mark.parametrize("name", EKS)
def test_each_profile_lands_only_in_its_own_pool(pods, nodes, name):
    for label, pod in pods[name].items():
        fits, _ = placements(pod, nodes)
        wanted = pod["spec"]["nodeSelector"]["karpenter.sh/nodepool"]
        assert {n.pool for n in fits} == {wanted}, label


def test_the_classroom_runs_on_a_plain_aks_node(pods):
    assert not unschedulable(pods["aks-classroom"], aks_nodes())


# -- break one thing on the platform side: the check must notice ----------------------------------------

def _pool(objects, name):
    return next(o for o in objects if o["kind"] == "NodePool" and o["metadata"]["name"] == name)


def _labels(objects, name):
    return _pool(objects, name)["spec"]["template"]["metadata"]["labels"]


def _drop_label(key, pool):
    def mutate(objects):
        del _labels(objects, pool)[key]
    return mutate


def _set_label(key, value, pool):
    def mutate(objects):
        _labels(objects, pool)[key] = value
    return mutate


def _rename_pool(old, new):
    def mutate(objects):
        _pool(objects, old)["metadata"]["name"] = new
    return mutate


def _add_taint(pool, taint):
    def mutate(objects):
        _pool(objects, pool)["spec"]["template"]["spec"].setdefault("taints", []).append(taint)
    return mutate


def _instance_types(pool, types):
    def mutate(objects):
        reqs = _pool(objects, pool)["spec"]["template"]["spec"]["requirements"]
        reqs[:] = [r for r in reqs if r["key"] not in ("karpenter.k8s.aws/instance-family",
                                                        "node.kubernetes.io/instance-type")]
        reqs.append({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types})
    return mutate


def _device_plugin(key, edit):
    def mutate(objects):
        import yaml

        cm = next(o for o in objects if o["kind"] == "ConfigMap")
        config = yaml.safe_load(cm["data"][key])
        edit(config)
        cm["data"][key] = yaml.safe_dump(config)
    return mutate


def _no_warm_nodes(objects):
    objects[:] = [o for o in objects if o["kind"] != "Deployment"]


BREAKAGES = {
    # a label the pods select on
    "cpu pool loses hub.jupyter.org/node-purpose": (_drop_label("hub.jupyter.org/node-purpose", "cpu"),
                                                     {"data-engineering", "elyra"}),
    "gpu-ts NodePool renamed (karpenter.sh/nodepool label)": (_rename_pool("gpu-ts", "gpu-timeslice"),
                                                               {"gpu-timeslice"}),
    "trainium pool labelled as another purpose": (_set_label("hub.jupyter.org/node-purpose", "core", "trainium"),
                                                  {"trainium"}),
    # a taint no profile tolerates
    "inferentia pool gets an extra taint": (_add_taint("inferentia", {"key": "dedicated", "value": "ml",
                                                                      "effect": "NoSchedule"}), {"inferentia"}),
    # the device plugin no longer advertises what the profile requests
    "gpu-mig pool's MIG layout disabled": (_set_label("nvidia.com/mig.config", "all-disabled", "gpu-mig"),
                                           {"gpu-mig"}),
    "gpu-mig pool gets a MIG layout its A100-40GB lacks": (_set_label("nvidia.com/mig.config", "all-1g.10gb",
                                                                      "gpu-mig"), {"gpu-mig"}),
    "gpu-ts selects a device-plugin config that does not exist": (
        _set_label("nvidia.com/device-plugin.config", "timesliced", "gpu-ts"), {"gpu-timeslice"}),
    "time-slicing renamed to nvidia.com/gpu.shared": (
        _device_plugin("time-sliced", lambda c: c["sharing"]["timeSlicing"].update(renameByDefault=True)),
        {"gpu-timeslice"}),
    # resources
    "gpu pool restricted to g5.xlarge (16 GiB)": (_instance_types("gpu", ["g5.xlarge"]), {"gpu"}),
    # Karpenter cannot launch a node for MIG slices; without a warm node the profile waits forever
    "no warm gpu-mig node": (_no_warm_nodes, {"gpu-mig"}),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_breaking_the_platform_is_caught(pods, platform_objects, breakage):
    mutate, victims = BREAKAGES[breakage]
    objects = copy.deepcopy(platform_objects)
    mutate(objects)
    problems = unschedulable(pods["base"], nodes_of(objects))
    broken = {label.split("[")[0] for label in problems}
    assert broken == victims, f"{breakage}: expected {victims} to break, got {problems}"


def test_gpu_operator_that_cannot_run_on_gpu_nodes_is_caught(pods, platform_objects):
    """The device plugin itself must be able to run on the tainted GPU nodes (helm/addons/gpu-operator.yaml)."""
    operator = scheduling.gpu_operator_values()
    operator["daemonsets"]["tolerations"] = []
    problems = unschedulable(pods["base"], nodes_of(platform_objects, gpu_operator=operator))
    assert {label.split("[")[0] for label in problems} == {"gpu-timeslice", "gpu-mig", "gpu"}
    assert "do not tolerate" in problems["gpu"]


def test_gpu_operator_without_nfd_needs_the_pool_label(pods, platform_objects):
    operator = {**scheduling.gpu_operator_values(), "nfd": {"enabled": False}}
    assert not unschedulable(pods["base"], nodes_of(platform_objects, gpu_operator=operator))
    objects = copy.deepcopy(platform_objects)
    _drop_label("nvidia.com/gpu.present", "gpu")(objects)
    problems = unschedulable(pods["base"], nodes_of(objects, gpu_operator=operator))
    assert {label.split("[")[0] for label in problems} == {"gpu"}


def test_breaking_it_through_helm_values_is_caught_too(helm, pods):
    """The same check on a real render with an operator's mistaken values."""
    objects = render_platform(helm, "--set", "karpenter.nodePools.gpu-ts.labels.nvidia\\.com/device-plugin\\.config=x",
                              "--set", "karpenter.userNodeLabels.hub\\.jupyter\\.org/node-purpose=users")
    problems = unschedulable(pods["base"], nodes_of(objects))
    assert {label.split("[")[0] for label in problems} == {
        "data-engineering", "elyra", "trainium", "inferentia", "gpu-timeslice", "gpu-mig", "gpu"}


def test_a_catalog_pointing_at_a_missing_pool_is_caught(pods, nodes):
    pod = copy.deepcopy(pods["base"]["gpu"])
    pod["spec"]["nodeSelector"]["karpenter.sh/nodepool"] = "gpu-a100"
    fits, reasons = placements(pod, nodes)
    assert not fits and all("node selector" in r for r in reasons.values())


def test_the_model_agrees_with_the_device_plugin_rules():
    """A few fixed points of the device model, independent of the chart."""
    node = scheduling.Node("x", "g5.xlarge", {"a": "b"}, [{"key": "k", "effect": "NoSchedule"}],
                           {"cpu": 4.0, "memory": 16 * 2**30})
    pod = {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                    "tolerations": [{"key": "k", "operator": "Exists"}]}}
    assert "insufficient nvidia.com/gpu" in scheduling.why_not(pod, node)
    node.allocatable["nvidia.com/gpu"] = 1.0
    assert scheduling.why_not(pod, node) is None
    pod["spec"]["tolerations"] = [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]
    assert "untolerated" in scheduling.why_not(pod, node)
    assert scheduling.provisionable({"spec": {"containers": [{"resources": {"limits": {"nvidia.com/mig-1g.5gb": "1"}}}]}},
                                    node) is not None
