"""The server-profile catalog: plain data (YAML, Helm values) -> typed, validated objects.

Format (one profile; every key but ``slug``, ``display_name`` and ``hardware.kind`` is optional)::

    - slug: cpu
      display_name: Data Engineering (CPU)
      description: PySpark notebooks
      default: true
      image: quay.io/jupyter/pyspark-notebook:spark-3.5.3
      command: [start-singleuser.sh]          # container command, KubeSpawner's cmd
      env: {SPARK_DRIVER_MEMORY: 4g}
      hardware:
        kind: cpu                             # cpu | gpu | gpu-timeslice | mig | trainium | inferentia
        cpu: {guarantee: 2, limit: 4}
        memory: {guarantee: 8G, limit: 8G}
        node_pool: cpu                        # karpenter.sh/nodepool: cpu
        node_selector: {topology.kubernetes.io/zone: us-west-2a}
        tolerations: []                       # added to the chart's, never replacing them
        # gpu: gpus: 1 | gpu-timeslice: resource: nvidia.com/gpu.shared | mig: mig_profile: 1g.5gb, count: 1
        # trainium / inferentia: devices: 1 (aws.amazon.com/neuron) or cores: 2 (aws.amazon.com/neuroncore)
      options:
        - slug: image
          display_name: Image
          choices:
            - {slug: spark-3-5, display_name: Spark 3.5, image: "...", default: true}
            - {slug: spark-3-4, display_name: Spark 3.4, image: "...", access: {groups: [beta]}}
          free_text: {display_name: Other image, pattern: 'quay\\.io/jupyter/[a-z-]+:[\\w.-]+'}
        - slug: size
          display_name: Size
          choices:
            - {slug: small, display_name: 2 CPU / 8 GiB, cpu: {limit: 2}, memory: {guarantee: 8G, limit: 8G}}
      access: {groups: [data-eng], users: [alice], admin_only: false}
      kubespawner_override: {start_timeout: 1200}   # any real KubeSpawner trait, checked at start-up
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from . import reader as r
from .hardware import Hardware, Range, Settings, check_ranges, parse_hardware, parse_range, timeslice_note
from .quantities import parse_cpu, parse_memory


@dataclass(frozen=True)
class Access:
    """Who may see and start something. Empty groups and users (and not admin_only) means everyone."""

    groups: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    admin_only: bool = False

    @property
    def is_open(self) -> bool:
        return not (self.groups or self.users or self.admin_only)


OPEN = Access()


@dataclass(frozen=True)
class Choice:
    slug: str
    display_name: str
    default: bool = False
    description: str = ""
    image: str | None = None
    cpu: Range = Range()
    memory: Range = Range()
    access: Access = OPEN
    kubespawner_override: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FreeText:
    """A free-text value for an option (an image name); ``pattern`` must match the WHOLE value."""

    display_name: str
    pattern: "re.Pattern[str]"
    access: Access = OPEN

    def accepts(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class Option:
    slug: str
    display_name: str
    choices: tuple[Choice, ...]
    free_text: FreeText | None = None


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    hardware: Hardware
    description: str = ""
    default: bool = False
    image: str | None = None
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    access: Access = OPEN
    kubespawner_override: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)  # identity hash: parsed once, cached, used as a cache key for views
class Catalog:
    profiles: tuple[Profile, ...]
    settings: Settings = Settings()  # what it was parsed with: later checks (raw overrides) use the same

    def profile(self, slug: str) -> Profile | None:
        return next((p for p in self.profiles if p.slug == slug), None)


# -- parsing -----------------------------------------------------------------------------------------

def parse_access(node: r.Node | None) -> Access:
    if node is None:
        return OPEN
    access = Access(
        groups=frozenset(node.get("groups", r.string_list, ())),
        users=frozenset(node.get("users", r.string_list, ())),
        admin_only=node.get("admin_only", r.boolean, False),
    )
    node.done()
    return access


def parse_image(value: object, path: str) -> str:
    image = r.string(value, path)
    if not image.strip():
        raise ConfigError(path, "image must not be empty")
    if image != image.strip() or any(c.isspace() for c in image):
        raise ConfigError(path, f"image must not contain spaces, got {r.describe(image)}")
    return image


def _unique(slugs: list[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for path, slug in slugs:
        if slug in seen:
            raise ConfigError(path, f"duplicate {what} slug {slug!r} (also at {seen[slug]})")
        seen[slug] = path


def _single_default(defaults: list[str], what: str) -> None:
    if len(defaults) > 1:
        raise ConfigError(defaults[1], f"two {what}s are marked default (also {defaults[0]}); mark at most one")


def parse_choice(node: r.Node) -> Choice:
    choice = Choice(
        slug=node.get("slug", r.slug, required=True),
        display_name=node.get("display_name", r.nonempty_string, required=True),
        default=node.get("default", r.boolean, False),
        description=node.get("description", r.string, ""),
        image=node.get("image", parse_image),
        cpu=parse_range(node.node("cpu"), parse_cpu, "cpu"),
        memory=parse_range(node.node("memory"), parse_memory, "memory"),
        access=parse_access(node.node("access")),
        kubespawner_override=node.get("kubespawner_override", r.plain_mapping, {}),
    )
    node.done()
    return choice


def parse_option(node: r.Node) -> Option:
    slug = node.get("slug", r.slug, required=True)
    display_name = node.get("display_name", r.nonempty_string, required=True)
    choices = tuple(parse_choice(r.Node(v, p)) for p, v in node.items("choices"))
    paths = [p for p, _ in node.items("choices")]
    _unique([(paths[i], c.slug) for i, c in enumerate(choices)], "choice")
    _single_default([f"{paths[i]}.default" for i, c in enumerate(choices) if c.default], "choice")

    free_text = None
    ft = node.node("free_text")
    if ft is not None:
        if not ft.has("pattern"):
            raise ConfigError(ft.at("pattern"), "a free-text option needs a pattern that the whole value must "
                                                "match (without one, any image could be started)")
        free_text = FreeText(
            display_name=ft.get("display_name", r.nonempty_string, "Other..."),
            pattern=ft.get("pattern", r.regex),
            access=parse_access(ft.node("access")),
        )
        ft.done()
    if not choices and free_text is None:
        raise ConfigError(node.at("choices"), "an option needs at least one choice or a free_text entry")
    node.done()
    return Option(slug=slug, display_name=display_name, choices=choices, free_text=free_text)


def parse_profile(node: r.Node, settings: Settings) -> Profile:
    slug = node.get("slug", r.slug, required=True)
    hardware = parse_hardware(node.node("hardware", required=True), settings)  # type: ignore[arg-type]
    options = tuple(parse_option(r.Node(v, p)) for p, v in node.items("options"))
    option_paths = [p for p, _ in node.items("options")]
    _unique([(option_paths[i], o.slug) for i, o in enumerate(options)], "option")
    for i, option in enumerate(options):
        if option.slug == "profile" or option.slug.endswith("--unlisted-choice"):
            raise ConfigError(f"{option_paths[i]}.slug", f"{option.slug!r} is reserved")
        for j, choice in enumerate(option.choices):
            check_ranges(merge_range(hardware.cpu, choice.cpu), merge_range(hardware.memory, choice.memory),
                         f"{option_paths[i]}.choices[{j}]")

    description = node.get("description", r.string, "")
    note = timeslice_note(hardware)
    if note and note not in description:
        description = f"{description} {note}".strip()
    profile = Profile(
        slug=slug,
        display_name=node.get("display_name", r.nonempty_string, required=True),
        description=description,
        default=node.get("default", r.boolean, False),
        image=node.get("image", parse_image),
        command=node.get("command", r.command),
        env=node.get("env", r.string_map, {}),
        hardware=hardware,
        options=options,
        access=parse_access(node.node("access")),
        kubespawner_override=node.get("kubespawner_override", r.plain_mapping, {}),
    )
    node.done()
    return profile


def merge_range(base: Range, override: Range) -> Range:
    """A choice's bounds replace the profile's, bound by bound."""
    return Range(
        override.guarantee if override.guarantee is not None else base.guarantee,
        override.limit if override.limit is not None else base.limit,
    )


def parse_catalog(data: object, settings: Settings = Settings(), path: str = "profiles") -> Catalog:
    """Parse and validate a list of profile mappings. Raises ConfigError naming the exact path."""
    if not isinstance(data, list):
        raise ConfigError(path, f"expected a list of profiles, got {r.type_name(data)} {r.describe(data)}")
    profiles = tuple(parse_profile(r.Node(item, f"{path}[{i}]"), settings) for i, item in enumerate(data))
    _unique([(f"{path}[{i}].slug", p.slug) for i, p in enumerate(profiles)], "profile")
    _single_default([f"{path}[{i}].default" for i, p in enumerate(profiles) if p.default], "profile")
    return Catalog(profiles, settings)
