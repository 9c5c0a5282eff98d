"""The hub as a values combination configures it: its Config, its authenticator, and the pod of every profile."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Mapping

import yaml
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
    """The hub pod's configuration for a combination (or explicit user values), made by the real z2jh chart:
    rendered by helm, its own jupyterhub_config.py run over it (jupyterhub_ext/cli/chart.py), with ``secrets``
    as the cluster's Secrets (a missing one the hub needs: chart.MissingSecret, as the kubelet would refuse)."""
    from jupyterhub_ext.cli import chart

    from .conftest import helm_binary
    from .real_chart import CHART

    with tempfile.TemporaryDirectory(prefix="deploy-values-") as tmp:
        if values is not None:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            paths, merged = [str(path)], z2jh_chart.merged_values(values)
        else:
            names = files or z2jh_chart.COMBINATIONS[name]
            paths, merged = [str(z2jh_chart.HELM / n) for n in names], z2jh_chart.merged_values(names)
        run = chart.hub_config(str(helm_binary()), str(CHART), paths, secrets)
    return Hub(name=name, values=merged, config=run.config, env=run.env)


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
