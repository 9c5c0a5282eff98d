"""The exact pod ProfilesKubeSpawner builds for each profile of the shipped catalog."""

import asyncio

import kubernetes_validate
import pytest

from jupyterhub_ext.errors import SpawnRefused
from jupyterhub_ext.spawner import ProfilesKubeSpawner

from .conftest import CHART_TOLERATIONS, chart_config, make_spawner, pod_for

K8S_VERSION = "1.31.0"
NVIDIA = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
NEURON = [{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"},
          {"key": "aws.amazon.com/neuroncore", "operator": "Exists", "effect": "NoSchedule"}]
GiB = 2**30

EXPECTED = {
    # slug: (image, cmd, node pool, cpu req/lim, mem req/lim, extended resources, accelerator tolerations)
    "data-engineering": ("quay.io/jupyter/pyspark-notebook:spark-3.5.3", None, "cpu", (2, 4), (8, 8), {}, []),
    "elyra": ("elyra/elyra:3.15.0", ["start-singleuser.sh"], "cpu", (2, 4), (8, 8), {}, []),
    "trainium": ("public.ecr.aws/data-on-eks/pytorch-neuronx:latest", ["start-singleuser.sh"], "trainium",
                 (2, 2), (10, 10), {"aws.amazon.com/neuron": "1"}, NEURON),
    "inferentia": ("public.ecr.aws/data-on-eks/pytorch-neuronx:latest", ["start-singleuser.sh"], "inferentia",
                   (2, 2), (10, 10), {"aws.amazon.com/neuron": "1"}, NEURON),
    "gpu-timeslice": ("cschranz/gpu-jupyter:v1.5_cuda-11.6_ubuntu-20.04_python-only", ["start-singleuser.sh"],
                      "gpu-ts", (2, 2), (4, 4), {"nvidia.com/gpu": "1"}, [NVIDIA]),
    "gpu-mig": ("cschranz/gpu-jupyter:v1.5_cuda-11.6_ubuntu-20.04_python-only", ["start-singleuser.sh"],
                "gpu-mig", (2, 2), (10, 10), {"nvidia.com/mig-1g.5gb": "1"}, [NVIDIA]),
    "gpu": ("cschranz/gpu-jupyter:v1.5_cuda-11.6_ubuntu-20.04_python-only", ["start-singleuser.sh"], "gpu",
            (4, 8), (16, 32), {"nvidia.com/gpu": "1"}, [NVIDIA]),
}


@pytest.mark.parametrize("slug", list(EXPECTED))
async def test_pod_for_every_profile(slug):
    image, cmd, pool, cpu, mem, extended, accel_tolerations = EXPECTED[slug]
    spawner = make_spawner(chart_config(), admin=True)
    pod = await pod_for(spawner, {"profile": slug})
    container = pod["spec"]["containers"][0]

    assert container["image"] == image
    if cmd:
        assert container["args"][: len(cmd)] == cmd
    assert pod["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": pool}
    res = container["resources"]
    assert (res["requests"]["cpu"], res["limits"]["cpu"]) == cpu
    assert (res["requests"]["memory"], res["limits"]["memory"]) == (mem[0] * GiB, mem[1] * GiB)
    for name, count in extended.items():  # extended resources: a limit, and an equal request
        assert res["limits"][name] == count and res["requests"][name] == count
    assert not {k for k in res["limits"] if "/" in k} - set(extended)
    # the chart's tolerations are kept, the accelerator's added, nothing else
    tolerations = [frozenset(t.items()) for t in pod["spec"]["tolerations"]]
    assert len(tolerations) == len(set(tolerations))
    assert set(tolerations) == {frozenset(t.items()) for t in CHART_TOLERATIONS + accel_tolerations}
    assert pod["metadata"]["labels"]["jupyterhub-ext/profile"] == slug
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


async def test_choices_change_image_and_size_and_are_labelled():
    spawner = make_spawner(chart_config(), groups=["data-engineers"])
    pod = await pod_for(spawner, {"profile": "data-engineering", "image": "pyspark-3-4", "size": "large"})
    container = pod["spec"]["containers"][0]
    assert container["image"] == "quay.io/jupyter/pyspark-notebook:spark-3.4.1"
    assert container["resources"]["limits"] == {"cpu": 4.0, "memory": 16 * GiB}
    labels = pod["metadata"]["labels"]
    assert labels["jupyterhub-ext/option-image"] == "pyspark-3-4" and labels["jupyterhub-ext/option-size"] == "large"


async def test_free_text_image_is_used_and_annotated():
    spawner = make_spawner(chart_config())
    image = "quay.io/jupyter/datascience-notebook:2024-12-09"
    pod = await pod_for(spawner, {"profile": "data-engineering", "image--unlisted-choice": image})
    assert pod["spec"]["containers"][0]["image"] == image
    assert pod["metadata"]["labels"]["jupyterhub-ext/option-image"] == "custom"
    assert pod["metadata"]["annotations"]["jupyterhub-ext/image"] == image


async def test_nothing_leaks_from_one_start_into_the_next():
    spawner = make_spawner(chart_config(), admin=True)
    gpu = await pod_for(spawner, {"profile": "gpu"})
    assert gpu["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    cpu = await pod_for(spawner, {"profile": "elyra"})
    assert "nvidia.com/gpu" not in cpu["spec"]["containers"][0]["resources"]["limits"]
    assert {t["key"] for t in cpu["spec"]["tolerations"]} == {t["key"] for t in CHART_TOLERATIONS}
    assert cpu["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}
    assert spawner.tolerations == CHART_TOLERATIONS  # the configured value itself was restored


async def test_chart_node_selector_and_labels_are_merged_not_replaced():
    c = chart_config()
    c.KubeSpawner.node_selector = {"hub.jupyter.org/node-purpose": "user"}
    c.KubeSpawner.extra_labels = {"team": "data"}
    pod = await pod_for(make_spawner(c, admin=True), {"profile": "gpu"})
    assert pod["spec"]["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user", "karpenter.sh/nodepool": "gpu"}
    assert pod["metadata"]["labels"]["team"] == "data"


async def test_hidden_profile_is_refused_with_a_user_message():
    spawner = make_spawner(chart_config())
    with pytest.raises(SpawnRefused) as info:
        await pod_for(spawner, {"profile": "gpu"})
    assert info.value.status_code == 400
    assert "not one you may start" in info.value.jupyterhub_message


async def test_form_offers_only_the_users_profiles_and_refuses_on_the_form():
    student = make_spawner(chart_config())
    form = await student._render_options_form_dynamically(student)
    assert 'value="data-engineering"' in form and 'value="elyra"' in form
    assert 'value="gpu"' not in form and "Trainium" not in form
    # the large size is for data engineers only
    assert 'value="large"' not in form
    engineer = make_spawner(chart_config(), groups=["ml-engineers"])
    form = await engineer._render_options_form_dynamically(engineer)
    assert all(f'value="{s}"' in form for s in ("gpu", "gpu-mig", "trainium", "inferentia", "large"))
    with pytest.raises(SpawnRefused, match="unknown choice 'large'"):
        student._options_from_form({"profile": ["data-engineering"],
                                    "profile-option-data-engineering--size": ["large"]})
    ok = student._options_from_form({"profile": ["elyra"]})
    assert ok == {"profile": "elyra"}


async def test_refused_request_never_reaches_kubernetes(monkeypatch):
    reached = []

    async def watch(self, *a, **k):
        reached.append("watch")
        raise RuntimeError("would talk to Kubernetes")

    monkeypatch.setattr(ProfilesKubeSpawner, "_start_watching_pods", watch)
    spawner = make_spawner(chart_config())
    spawner.user_options = {"profile": "gpu"}
    with pytest.raises(SpawnRefused):
        await spawner._start()
    assert reached == []
    spawner.user_options = {"profile": "elyra"}
    with pytest.raises(RuntimeError, match="would talk"):
        await spawner._start()
    assert reached == ["watch"]


async def test_without_a_catalog_it_is_plain_kubespawner():
    from traitlets.config import Config

    c = Config()
    c.KubeSpawner.profile_list = [{"display_name": "Upstream", "slug": "up",
                                   "kubespawner_override": {"image": "x/y:1"}}]
    spawner = make_spawner(c)
    assert spawner.catalog is None
    pod = await pod_for(spawner, {"profile": "up"})
    assert pod["spec"]["containers"][0]["image"] == "x/y:1"
