"""The hub as a values combination configures it: its Config, its authenticator, and the pod of every profile."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Iterator, Mapping

from traitlets.config import Config

from . import z2jh_chart

# The Secrets an operator creates (docs/deploy-*.md) - fake values of the right shape.
SECRETS = {
    "jupyterhub-ext-login": {"user-password": "correct-horse-battery", "admin-password": "A" * 24 + "b" * 16},
    "jupyterhub-ext-oauth": {"client-secret": "s3cr3t-from-the-identity-provider"},
}


@dataclass
class Hub:
    name: str
    values: dict
    config: Config
    env: dict[str, str]

    @property
    def spawner_class(self) -> type:
        return self.config.JupyterHub.spawner_class

    def authenticator(self):
        """The configured authenticator class, resolved like JupyterHub resolves it (entry point or path)."""
        from jupyterhub.app import JupyterHub

        name = self.config.JupyterHub.authenticator_class
        trait = JupyterHub.class_traits()["authenticator_class"]
        return trait.validate(JupyterHub(), name) if isinstance(name, str) else name


def configure(name: str, files: list[str] | None = None, values: dict | None = None,
              secrets: Mapping[str, Mapping[str, str]] = SECRETS) -> Hub:
    """Run the chart's configuration for a combination (or explicit user values), with its environment."""
    merged = z2jh_chart.merged_values(values if values is not None else files or z2jh_chart.COMBINATIONS[name])
    env = z2jh_chart.hub_environment(merged, secrets)
    with z2jh_chart.environ(env):
        config = z2jh_chart.chart_config(merged)
    return Hub(name=name, values=merged, config=config, env=env)


def make_spawner(hub: Hub, name: str = "alice", groups=(), admin: bool = True):
    spawner = hub.spawner_class(config=hub.config, _mock=True)
    spawner.user.name = name
    spawner.user.admin = admin
    spawner.user.groups = [SimpleNamespace(name=g) for g in groups]
    return spawner


async def pod_for(spawner, user_options: dict) -> dict:
    spawner.user_options = user_options
    await spawner.load_user_options()
    return spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())


def selections(catalog) -> Iterator[tuple[str, dict]]:
    """Every profile with its defaults, and every listed choice of every option (one at a time)."""
    for profile in catalog.profiles:
        yield profile.slug, {"profile": profile.slug}
        for option in profile.options:
            for choice in option.choices:
                yield (f"{profile.slug}[{option.slug}={choice.slug}]",
                       {"profile": profile.slug, option.slug: choice.slug})


async def all_pods(hub: Hub) -> dict[str, dict]:
    """The pod of every profile and choice, built by the configured spawner as an admin (who sees all)."""
    probe = make_spawner(hub)
    catalog = probe.catalog
    assert catalog is not None, f"{hub.name}: no catalog configured"
    pods = {}
    for label, options in selections(catalog):
        pods[label] = await pod_for(make_spawner(hub), options)
    return pods


def container(pod: dict, name: str = "notebook") -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)
