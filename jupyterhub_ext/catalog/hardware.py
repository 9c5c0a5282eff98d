"""Accelerator presets: what each hardware kind asks Kubernetes for, and where it may run.

Extended resources (GPUs, MIG slices, Neuron devices) are always requested as limits with equal requests:
Kubernetes rejects a pod that requests an extended resource without the same limit, which is what a
guarantee-only MIG request (``extra_resource_guarantees: {nvidia.com/mig-1g.5gb: 1}``) produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from . import reader as r
from .quantities import QuantityError, parse_cpu, parse_memory

NVIDIA_GPU = "nvidia.com/gpu"
NVIDIA_GPU_SHARED = "nvidia.com/gpu.shared"
NEURON_DEVICE = "aws.amazon.com/neuron"
NEURON_CORE = "aws.amazon.com/neuroncore"
MIG_PREFIX = "nvidia.com/mig-"

KINDS = ("cpu", "gpu", "gpu-timeslice", "mig", "trainium", "inferentia")

# MIG profile names (the part after "nvidia.com/mig-") of the GPUs we target, from NVIDIA's MIG user guide.
MIG_PROFILES = {
    "A100-40GB": ("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
    "A100-80GB": ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-80GB": ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-94GB": ("1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"),
    "H100-96GB": ("1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"),
    "H200-141GB": ("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
}
KNOWN_MIG_PROFILES = frozenset(p for names in MIG_PROFILES.values() for p in names)
_MIG_SHAPE = re.compile(r"[1-7]g\.[0-9]+gb")

# Taints that accelerator node pools carry (NVIDIA GPU operator / EKS GPU AMIs, AWS Neuron pools).
_TAINTS = {
    "gpu": (NVIDIA_GPU,),
    "gpu-timeslice": (NVIDIA_GPU,),
    "mig": (NVIDIA_GPU,),
    "trainium": (NEURON_DEVICE, NEURON_CORE),
    "inferentia": (NEURON_DEVICE, NEURON_CORE),
}
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}


@dataclass(frozen=True)
class Settings:
    """Catalog-wide settings (traits of the spawner), passed to the parser."""

    node_pool_label: str = "karpenter.sh/nodepool"
    timeslice_resource: str = NVIDIA_GPU
    extra_mig_profiles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Range:
    guarantee: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class Hardware:
    kind: str
    cpu: Range = Range()
    memory: Range = Range()
    extended: tuple[tuple[str, int], ...] = ()  # (resource name, count): limit == request
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict, ...] = field(default_factory=tuple)
    node_pool: str | None = None

    @property
    def accelerator(self) -> str | None:
        return self.extended[0][0] if self.extended else None


def check_mig_profile(name: str, settings: Settings, path: str) -> None:
    """``name`` (``1g.5gb``, without ``nvidia.com/mig-``) must be an A100/H100/H200 profile or admitted."""
    if name in KNOWN_MIG_PROFILES or name in settings.extra_mig_profiles:
        return
    shape = "" if _MIG_SHAPE.fullmatch(name) else " (MIG profiles look like '<g>g.<memory>gb')"
    raise ConfigError(path, f"unknown MIG profile {name!r}{shape}; A100/H100/H200 profiles are "
                            f"{', '.join(sorted(KNOWN_MIG_PROFILES))}; admit others with "
                            f"ProfilesKubeSpawner.extra_mig_profiles")


def toleration_for(key: str) -> dict:
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def parse_range(node: r.Node | None, parse, what: str) -> Range:
    if node is None:
        return Range()
    values = {}
    for bound in ("guarantee", "limit"):
        try:
            values[bound] = node.get(bound, lambda v, p: parse(v))
        except QuantityError as e:
            raise ConfigError(node.at(bound), str(e)) from None
    node.done()
    g, lim = values["guarantee"], values["limit"]
    if g is not None and lim is not None and g > lim:
        raise ConfigError(node.at("guarantee"),
                          f"{what} guarantee {node.data['guarantee']!r} is above the limit {node.data['limit']!r}")
    return Range(g, lim)


def check_ranges(cpu: Range, memory: Range, path: str) -> None:
    """Guarantee <= limit once choices and profiles are combined."""
    for what, rng in (("cpu", cpu), ("memory", memory)):
        if rng.guarantee is not None and rng.limit is not None and rng.guarantee > rng.limit:
            raise ConfigError(path, f"{what} guarantee is above the limit once combined with the profile")


def parse_toleration(value: object, path: str) -> dict:
    node = r.Node(value, path)
    for key in node.data:
        if key not in _TOLERATION_KEYS:
            raise ConfigError(node.at(str(key)), r.unknown_key_message(key, _TOLERATION_KEYS))
    operator = node.data.get("operator", "Equal")
    if operator not in ("Equal", "Exists"):
        raise ConfigError(node.at("operator"), f"expected 'Equal' or 'Exists', got {r.describe(operator)}")
    effect = node.data.get("effect")
    if effect is not None and effect not in _EFFECTS:
        raise ConfigError(node.at("effect"), f"expected one of {', '.join(sorted(_EFFECTS))}, got {r.describe(effect)}")
    if operator == "Equal" and "key" not in node.data:
        raise ConfigError(path, "a toleration with operator 'Equal' needs a key")
    return dict(node.data)


def parse_hardware(node: r.Node, settings: Settings) -> Hardware:
    kind = node.get("kind", r.string, required=True)
    if kind not in KINDS:
        raise ConfigError(node.at("kind"), f"expected one of {', '.join(KINDS)}, got {r.describe(kind)}")
    cpu = parse_range(node.node("cpu"), parse_cpu, "cpu")
    memory = parse_range(node.node("memory"), parse_memory, "memory")
    node_pool = node.get("node_pool", r.nonempty_string)
    selector = dict(node.get("node_selector", r.string_map, {}))
    if node_pool:
        if selector.get(settings.node_pool_label, node_pool) != node_pool:
            raise ConfigError(node.at("node_selector"),
                              f"{settings.node_pool_label} conflicts with node_pool {node_pool!r}")
        selector[settings.node_pool_label] = node_pool
    tolerations = [parse_toleration(v, p) for p, v in node.items("tolerations")]

    extended: list[tuple[str, int]] = []
    if kind == "gpu":
        extended.append((NVIDIA_GPU, node.get("gpus", r.positive_int, 1)))
    elif kind == "gpu-timeslice":
        resource = node.get("resource", r.string, settings.timeslice_resource)
        if resource not in (NVIDIA_GPU, NVIDIA_GPU_SHARED):
            raise ConfigError(node.at("resource"),
                              f"expected {NVIDIA_GPU!r} or {NVIDIA_GPU_SHARED!r}, got {r.describe(resource)}")
        extended.append((resource, 1))  # one replica of a shared GPU
    elif kind == "mig":
        name = node.get("mig_profile", r.nonempty_string, required=True)
        name = name.removeprefix(MIG_PREFIX)
        check_mig_profile(name, settings, node.at("mig_profile"))
        extended.append((f"{MIG_PREFIX}{name}", node.get("count", r.positive_int, 1)))
    elif kind in ("trainium", "inferentia"):
        if node.has("devices") and node.has("cores"):
            raise ConfigError(node.at("cores"), "set either devices (aws.amazon.com/neuron) or cores "
                                                "(aws.amazon.com/neuroncore), not both")
        if node.has("cores"):
            extended.append((NEURON_CORE, node.get("cores", r.positive_int)))
        else:
            extended.append((NEURON_DEVICE, node.get("devices", r.positive_int, 1)))
    node.done()

    for key in _TAINTS.get(kind, ()):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(toleration_for(key))
    return Hardware(
        kind=kind, cpu=cpu, memory=memory, extended=tuple(extended),
        node_selector=tuple(sorted(selector.items())), tolerations=tuple(tolerations), node_pool=node_pool,
    )


def timeslice_note(hardware: Hardware) -> str:
    """Shown in the description of time-sliced profiles: users must know memory is shared."""
    if hardware.kind != "gpu-timeslice":
        return ""
    return ("Time-sliced GPU: you share one physical GPU and its memory with other users; "
            "memory is not isolated and a notebook that fills it affects the others.")
