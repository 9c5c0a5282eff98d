"""Bad catalogs and the exact error each must produce: (id, profiles, path, message fragment).

Shared by the pure parser tests and the real-hub start-up tests, so both check the same cases.
"""

import copy

GOOD = {
    "slug": "cpu",
    "display_name": "CPU",
    "image": "quay.io/jupyter/minimal-notebook:2024-12-09",
    "hardware": {"kind": "cpu", "cpu": {"guarantee": 1, "limit": 2}, "memory": {"guarantee": "1G", "limit": "2G"}},
}


def good(**changes):
    p = copy.deepcopy(GOOD)
    for key, value in changes.items():
        p[key] = value
    return p


def hw(**changes):
    h = copy.deepcopy(GOOD["hardware"])
    h.update(changes)
    return h


P = "ProfilesKubeSpawner.profiles"

CASES = [
    ("unknown-key", [good(display="x")], f"{P}[0].display", "unknown key 'display'"),
    ("camel-case-key", [good(displayName="x")], f"{P}[0].displayName", "use 'display_name'"),
    ("wrong-type-slug", [good(slug=3)], f"{P}[0].slug", "expected a string"),
    ("wrong-type-profiles", {"slug": "x"}, P, "expected a list of profiles"),
    ("gpus-zero", [good(hardware=hw(kind="gpu", gpus=0))], f"{P}[0].hardware.gpus",
     "expected a positive integer, got 0"),
    ("malformed-memory", [good(hardware=hw(memory={"limit": "8GB"}))], f"{P}[0].hardware.memory.limit",
     "expected a memory quantity"),
    ("malformed-cpu", [good(hardware=hw(cpu={"limit": "two"}))], f"{P}[0].hardware.cpu.limit",
     "expected a CPU quantity"),
    ("guarantee-above-limit", [good(hardware=hw(memory={"guarantee": "4G", "limit": "2G"}))],
     f"{P}[0].hardware.memory.guarantee", "above the limit"),
    ("duplicate-slug", [good(), good(display_name="Other")], f"{P}[1].slug", "duplicate profile slug 'cpu'"),
    ("extended-without-limit", [good(kubespawner_override={"extra_resource_guarantees": {"nvidia.com/mig-1g.5gb": 1}})],
     f"{P}[0].kubespawner_override.extra_resource_guarantees.nvidia.com/mig-1g.5gb", "needs a limit"),
    ("unknown-mig-profile", [good(hardware=hw(kind="mig", mig_profile="1g.6gb"))],
     f"{P}[0].hardware.mig_profile", "unknown MIG profile '1g.6gb'"),
    ("empty-image", [good(image="")], f"{P}[0].image", "must not be empty"),
    ("free-text-without-pattern",
     [good(options=[{"slug": "image", "display_name": "Image", "free_text": {"display_name": "Other"}}])],
     f"{P}[0].options[0].free_text.pattern", "needs a pattern"),
    ("two-defaults", [good(default=True), good(slug="cpu2", default=True)], f"{P}[1].default",
     "two profiles are marked default"),
    ("override-unknown-mig", [good(kubespawner_override={"extra_resource_limits": {"nvidia.com/mig-9g.99gb": 1}})],
     f"{P}[0].kubespawner_override.extra_resource_limits.nvidia.com/mig-9g.99gb", "unknown MIG profile '9g.99gb'"),
    ("override-mig-request-above-limit", [good(kubespawner_override={
        "extra_resource_limits": {"nvidia.com/mig-1g.5gb": 1}, "extra_resource_guarantees": {"nvidia.com/mig-1g.5gb": 2}})],
     f"{P}[0].kubespawner_override.extra_resource_guarantees.nvidia.com/mig-1g.5gb", "needs a limit equal"),
    ("override-fractional-gpu", [good(kubespawner_override={"extra_resource_limits": {"nvidia.com/gpu": "0.5"}})],
     f"{P}[0].kubespawner_override.extra_resource_limits.nvidia.com/gpu", "whole devices"),
    ("choice-override-request-without-profile-limit", [good(
        kubespawner_override={"extra_resource_limits": {"nvidia.com/gpu": 1}},
        options=[{"slug": "gpus", "display_name": "GPUs", "choices": [
            {"slug": "two", "display_name": "Two", "kubespawner_override": {
                "extra_resource_guarantees": {"nvidia.com/gpu": 2}}}]}])],
     f"{P}[0].options[0].choices[0].kubespawner_override.extra_resource_guarantees.nvidia.com/gpu",
     "needs a limit equal"),
    ("override-typo", [good(kubespawner_override={"mem_limt": "1G"})], f"{P}[0].kubespawner_override.mem_limt",
     "did you mean 'mem_limit'"),
    ("override-camel", [good(kubespawner_override={"lifecycleHooks": {}})],
     f"{P}[0].kubespawner_override.lifecycleHooks", "use 'lifecycle_hooks'"),
    ("override-bad-value", [good(kubespawner_override={"start_timeout": "soon"})],
     f"{P}[0].kubespawner_override.start_timeout", "not a valid value"),
    ("override-managed", [good(kubespawner_override={"image": "x:1"})], f"{P}[0].kubespawner_override.image",
     "use the profile's image"),
    ("unknown-kind", [good(hardware=hw(kind="tpu"))], f"{P}[0].hardware.kind", "expected one of cpu"),
    ("missing-hardware", [{"slug": "x", "display_name": "X"}], f"{P}[0].hardware", "is required"),
    ("bad-slug", [good(slug="Has Spaces")], f"{P}[0].slug", "expected a slug"),
    ("bad-regex", [good(options=[{"slug": "image", "display_name": "I", "free_text": {"pattern": "("}}])],
     f"{P}[0].options[0].free_text.pattern", "not a valid regular expression"),
    ("duplicate-choice", [good(options=[{"slug": "size", "display_name": "S", "choices": [
        {"slug": "a", "display_name": "A"}, {"slug": "a", "display_name": "B"}]}])],
     f"{P}[0].options[0].choices[1]", "duplicate choice slug 'a'"),
    ("choice-guarantee-above-profile-limit", [good(options=[{"slug": "size", "display_name": "S", "choices": [
        {"slug": "big", "display_name": "Big", "cpu": {"guarantee": 4}}]}])],
     f"{P}[0].options[0].choices[0]", "cpu guarantee is above the limit"),
    ("neuron-devices-and-cores", [good(hardware=hw(kind="trainium", devices=1, cores=2))],
     f"{P}[0].hardware.cores", "not both"),
    ("bad-toleration-effect", [good(hardware=hw(tolerations=[{"key": "a", "effect": "Never"}]))],
     f"{P}[0].hardware.tolerations[0].effect", "expected one of"),
    ("access-groups-not-list", [good(access={"groups": "staff"})], f"{P}[0].access.groups",
     "expected a list of strings"),
    ("timeslice-bad-resource", [good(hardware=hw(kind="gpu-timeslice", resource="amd.com/gpu"))],
     f"{P}[0].hardware.resource", "expected 'nvidia.com/gpu'"),
]
