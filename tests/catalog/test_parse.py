"""Parsing the catalog: every documented mistake is refused with the exact path and a useful message."""

import re
from pathlib import Path

import pytest
import yaml

from jupyterhub_ext.catalog import Settings, parse_catalog
from jupyterhub_ext.catalog.kubespawner import check_catalog
from jupyterhub_ext.catalog.quantities import format_cpu, format_memory, parse_cpu, parse_memory, QuantityError
from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.profiles import builtin_catalog_path

from .bad_catalogs import CASES, P, good, hw

ROOT = Path(__file__).resolve().parents[2]


def parse_and_check(data, settings=Settings()):
    catalog = parse_catalog(data, settings, P)
    check_catalog(catalog, P, validate=_validate_with_kubespawner)
    return catalog


def _validate_with_kubespawner(key, value):
    from kubespawner import KubeSpawner

    trait = KubeSpawner.class_traits()[key]
    trait.validate(None, value)


@pytest.mark.parametrize("case_id,data,path,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_catalog_is_refused_with_exact_path(case_id, data, path, fragment):
    with pytest.raises(ConfigError) as info:
        parse_and_check(data)
    assert info.value.path == path
    assert fragment in info.value.message
    assert str(info.value).startswith(f"{path}: ")


def test_there_are_at_least_fifteen_distinct_bad_catalogs():
    assert len({c[0] for c in CASES}) >= 15


def test_shipped_catalog_parses_and_covers_every_kind():
    with open(builtin_catalog_path("eks")) as f:
        catalog = parse_and_check(yaml.safe_load(f)["profiles"])
    kinds = {p.hardware.kind for p in catalog.profiles}
    assert kinds == {"cpu", "gpu", "gpu-timeslice", "mig", "trainium", "inferentia"}
    elyra = catalog.profile("elyra")
    assert elyra.image.startswith("elyra/elyra:") and elyra.command == ("start-singleuser.sh",)
    assert elyra.hardware.kind == "cpu"
    ts = catalog.profile("gpu-timeslice")
    assert "share" in ts.description and "memory" in ts.description


def test_shipped_timeslice_description_is_true_of_its_pool():
    with open(builtin_catalog_path("eks")) as f:
        raw = next(p for p in yaml.safe_load(f)["profiles"] if p["slug"] == "gpu-timeslice")
    description = raw["description"]  # as written in the file, before the parser adds anything
    assert "share one physical GPU and its memory" in description and "not isolated" in description
    assert parse_catalog([raw]).profiles[0].description == description  # nothing added twice
    values = yaml.safe_load((ROOT / "helm" / "platform" / "values.yaml").read_text())
    pool = values["karpenter"]["nodePools"][raw["hardware"]["node_pool"]]
    families = next(r["values"] for r in pool["requirements"] if r["key"] == "karpenter.k8s.aws/instance-family")
    named = set(re.findall(r"\b([GP][0-9]+[a-z]*)\b", description))  # EC2 GPU families: G5, G6e, P4d...
    assert named == {f.upper() for f in families}, (named, families)


@pytest.mark.parametrize("kind,extra,resource,count,taints", [
    ("gpu", {"gpus": 2}, "nvidia.com/gpu", 2, {"nvidia.com/gpu"}),
    ("gpu-timeslice", {}, "nvidia.com/gpu", 1, {"nvidia.com/gpu"}),
    ("gpu-timeslice", {"resource": "nvidia.com/gpu.shared"}, "nvidia.com/gpu.shared", 1, {"nvidia.com/gpu"}),
    ("mig", {"mig_profile": "3g.40gb"}, "nvidia.com/mig-3g.40gb", 1, {"nvidia.com/gpu"}),
    ("mig", {"mig_profile": "nvidia.com/mig-1g.18gb", "count": 2}, "nvidia.com/mig-1g.18gb", 2, {"nvidia.com/gpu"}),
    ("trainium", {}, "aws.amazon.com/neuron", 1, {"aws.amazon.com/neuron", "aws.amazon.com/neuroncore"}),
    ("inferentia", {"cores": 2}, "aws.amazon.com/neuroncore", 2, {"aws.amazon.com/neuron", "aws.amazon.com/neuroncore"}),
])
def test_hardware_kinds(kind, extra, resource, count, taints):
    profile = parse_and_check([good(hardware=hw(kind=kind, node_pool="pool", **extra))]).profiles[0]
    assert profile.hardware.extended == ((resource, count),)
    assert {t["key"] for t in profile.hardware.tolerations} == taints
    assert all(t["operator"] == "Exists" and t["effect"] == "NoSchedule" for t in profile.hardware.tolerations)
    assert dict(profile.hardware.node_selector) == {"karpenter.sh/nodepool": "pool"}


def test_timeslice_resource_setting_and_extra_mig_profiles():
    settings = Settings(timeslice_resource="nvidia.com/gpu.shared", extra_mig_profiles=frozenset({"1g.6gb"}),
                        node_pool_label="example.com/pool")
    catalog = parse_and_check([
        good(hardware=hw(kind="gpu-timeslice", node_pool="ts")),
        good(slug="mig", hardware=hw(kind="mig", mig_profile="1g.6gb")),
    ], settings)
    assert catalog.profiles[0].hardware.extended == (("nvidia.com/gpu.shared", 1),)
    assert dict(catalog.profiles[0].hardware.node_selector) == {"example.com/pool": "ts"}
    assert catalog.profiles[1].hardware.extended == (("nvidia.com/mig-1g.6gb", 1),)


def test_extended_resources_in_raw_overrides():
    mig = {"extra_resource_limits": {"nvidia.com/mig-1g.6gb": 1}, "extra_resource_guarantees": {"nvidia.com/mig-1g.6gb": "1"}}
    # a MIG name the hardware kind would refuse is refused in a raw override too, and admitted the same way
    with pytest.raises(ConfigError, match=r"unknown MIG profile '1g\.6gb'") as info:
        parse_and_check([good(kubespawner_override=mig)])
    assert info.value.path == f"{P}[0].kubespawner_override.extra_resource_limits.nvidia.com/mig-1g.6gb"
    catalog = parse_and_check([good(kubespawner_override=mig)], Settings(extra_mig_profiles=frozenset({"1g.6gb"})))
    assert catalog.profiles[0].kubespawner_override == mig
    # known names, a limit alone (Kubernetes takes it as the request too), and non-extended resources pass
    parse_and_check([good(kubespawner_override={"extra_resource_limits": {"nvidia.com/mig-3g.71gb": 2,
                                                                          "nvidia.com/gpu": "1",
                                                                          "ephemeral-storage": "10Gi"}})])
    # a choice's request meets its profile's limit: equal passes, different is refused at the choice
    def with_choice(count):
        return [good(kubespawner_override={"extra_resource_limits": {"nvidia.com/gpu": 1}},
                     options=[{"slug": "g", "display_name": "G", "choices": [{"slug": "one", "display_name": "One",
                               "kubespawner_override": {"extra_resource_guarantees": {"nvidia.com/gpu": count}}}]}])]
    parse_and_check(with_choice(1))
    with pytest.raises(ConfigError, match="needs a limit equal") as info:
        parse_and_check(with_choice(2))
    assert info.value.path == (f"{P}[0].options[0].choices[0].kubespawner_override"
                               ".extra_resource_guarantees.nvidia.com/gpu")


def test_own_toleration_is_kept_and_not_duplicated():
    tol = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}
    profile = parse_and_check([good(hardware=hw(kind="gpu", tolerations=[tol]))]).profiles[0]
    assert profile.hardware.tolerations == (tol,)


def test_free_text_pattern_must_match_whole_value():
    profile = parse_and_check([good(options=[{"slug": "image", "display_name": "Image", "free_text": {
        "pattern": r"quay\.io/jupyter/[a-z-]+:[\w.-]+"}}])]).profiles[0]
    ft = profile.options[0].free_text
    assert ft.accepts("quay.io/jupyter/base-notebook:2024-12-09")
    # re.match (upstream) accepts these: a suffix or a newline defeats an unanchored pattern
    assert re.match(ft.pattern, "quay.io/jupyter/base-notebook:x@evil.example/miner:1")
    assert not ft.accepts("quay.io/jupyter/base-notebook:x evil")
    assert not ft.accepts("quay.io/jupyter/base-notebook:1\n")
    assert not ft.accepts("docker.io/evil/quay.io/jupyter/x:1")


@pytest.mark.parametrize("text,cores", [(2, 2.0), (0.5, 0.5), ("500m", 0.5), ("1.5", 1.5)])
def test_cpu_quantities(text, cores):
    assert parse_cpu(text) == cores


@pytest.mark.parametrize("text,size", [("8G", 8 * 2**30), ("8Gi", 8 * 2**30), ("512Mi", 2**29), (1024, 1024),
                                       ("1.5G", int(1.5 * 2**30)), ("1T", 2**40)])
def test_memory_quantities(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("bad", ["8GB", "8 G", "-1G", "0", 0, True, None, "1e9", "G"])
def test_bad_memory_quantities(bad):
    with pytest.raises(QuantityError):
        parse_memory(bad)


@pytest.mark.parametrize("bad", ["two", "-1", 0, "1.5m.", True, "500M"])
def test_bad_cpu_quantities(bad):
    with pytest.raises(QuantityError):
        parse_cpu(bad)


def test_formatting_round_trips():
    assert format_memory(8 * 2**30) == "8Gi" and format_memory(1000) == "1000"
    assert format_cpu(2.0) == "2" and format_cpu(0.25) == "250m"
