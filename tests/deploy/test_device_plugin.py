"""helm/platform's NVIDIA device-plugin configs, rendered by the real helm: the time-slicing replicas come from
the chart's values, and each GPU node picks its config by label, as helm/platform/values.yaml and
docs/deploy-eks.md say."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from .conftest import K8S_VERSION, PLATFORM, render_platform
from .instances import INSTANCES
from .scheduling import gpu_operator_values, nodes_of
from .z2jh_chart import ROOT

LABEL = "nvidia.com/device-plugin.config"
GPUS = {i.name: i.gpus for i in INSTANCES}


def device_plugin_configs(objects: list[dict]) -> tuple[dict, dict[str, dict]]:
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return cm, {key: yaml.safe_load(text) for key, text in cm["data"].items()}


def time_slicing(config: dict) -> dict | None:
    return (config.get("sharing") or {}).get("timeSlicing")


def advertised(objects: list[dict], pool: str) -> dict[str, float]:
    """{instance: nvidia.com/gpu per node} for the nodes ``pool`` can bring up (tests/deploy/scheduling.py)."""
    return {n.instance: n.allocatable.get("nvidia.com/gpu", 0.0) for n in nodes_of(objects) if n.pool == pool}


@pytest.mark.parametrize("replicas", [2, 8])
def test_the_replicas_value_sets_the_time_sliced_config(helm, replicas):
    objects = render_platform(helm, "--set", f"nvidia.devicePlugin.timeSlicing.replicas={replicas}")
    cm, configs = device_plugin_configs(objects)
    kubernetes_validate.validate(cm, K8S_VERSION, strict=True)
    assert time_slicing(configs["time-sliced"])["resources"] == [{"name": "nvidia.com/gpu", "replicas": replicas}]
    assert time_slicing(configs["default"]) is None  # whole GPUs elsewhere, whatever the replicas
    # a time-sliced node then offers that many nvidia.com/gpu per physical GPU
    ts = advertised(objects, "gpu-ts")
    assert ts and all(count == GPUS[inst] * replicas for inst, count in ts.items()), ts
    assert all(count == GPUS[inst] for inst, count in advertised(objects, "gpu").items())


def test_the_default_is_the_documented_four(platform_objects):
    values = yaml.safe_load((PLATFORM / "values.yaml").read_text())
    default = values["nvidia"]["devicePlugin"]["timeSlicing"]["replicas"]
    _, configs = device_plugin_configs(platform_objects)
    assert time_slicing(configs["time-sliced"])["resources"][0]["replicas"] == default == 4
    docs = (ROOT / "docs" / "deploy-eks.md").read_text()
    assert f"`replicas` = {default}" in docs and f"{default} × `nvidia.com/gpu` per GPU" in docs


@pytest.mark.parametrize("replicas", ["1", "0", "four"])
def test_replicas_that_would_not_share_a_gpu_are_refused(helm, replicas):
    proc = render_platform(helm, "--set", f"nvidia.devicePlugin.timeSlicing.replicas={replicas}", check=False)
    assert proc.returncode != 0, f"helm accepted replicas={replicas}"
    assert "replicas" in proc.stderr, proc.stderr


def test_each_gpu_pool_selects_its_config_by_label(platform_objects):
    """A node's nvidia.com/device-plugin.config label names a key of the ConfigMap the GPU Operator is given;
    nodes without it get the operator's default key."""
    cm, configs = device_plugin_configs(platform_objects)
    operator = gpu_operator_values()["devicePlugin"]["config"]
    assert cm["metadata"]["name"] == operator["name"] and operator["default"] in configs
    assert cm["metadata"]["namespace"] == "gpu-operator"  # where the operator (helm/addons) is installed
    selected = {}
    for pool in (o for o in platform_objects if o["kind"] == "NodePool"):
        labels = pool["spec"]["template"]["metadata"]["labels"]
        if labels.get("nvidia.com/gpu.present") == "true":
            selected[pool["metadata"]["name"]] = labels.get(LABEL, operator["default"])
    assert selected == {"gpu-ts": "time-sliced", "gpu": "default", "gpu-mig": "default"}
    assert set(selected.values()) <= set(configs)


def test_relabelling_a_pool_moves_its_nodes_to_that_config(helm):
    """The label, not the pool, decides: the whole-GPU pool labelled time-sliced shares its GPUs too, and
    the time-sliced pool labelled default stops sharing."""
    key = LABEL.replace(".", "\\.")
    objects = render_platform(helm, "--set", f"karpenter.nodePools.gpu.labels.{key}=time-sliced",
                              "--set", f"karpenter.nodePools.gpu-ts.labels.{key}=default",
                              "--set", "nvidia.devicePlugin.timeSlicing.replicas=3")
    gpu, ts = advertised(objects, "gpu"), advertised(objects, "gpu-ts")
    assert gpu and all(count == GPUS[inst] * 3 for inst, count in gpu.items()), gpu
    assert ts and all(count == GPUS[inst] for inst, count in ts.items()), ts


def test_the_documented_label_is_the_one_the_chart_sets():
    """helm/platform/values.yaml and docs/deploy-eks.md name the label the pools carry."""
    values_text = (PLATFORM / "values.yaml").read_text()
    docs = (ROOT / "docs" / "deploy-eks.md").read_text()
    assert re.search(rf"label {re.escape(LABEL)}=<key>", values_text)
    assert f"`{LABEL}`" in docs and f"`{LABEL}=time-sliced`" in docs
