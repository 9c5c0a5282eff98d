"""The hub a set of values files makes, for the command line: its Config (through the real chart when given,
else from ``hub.config`` alone), every start-up problem (the hub's own checks, all run), and spawners for a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import quote

from jupyterhub.objects import Server
from traitlets.config import Config

from .. import z2jh
from ..errors import ConfigError
from . import chart as chart_run
from .values import ValuesError, dig, merged

SETUP_CALL = "jupyterhub_ext.z2jh.setup"


class UsageError(Exception):
    """Exit 2: the command was given something it cannot work with (a file, a missing helm)."""


@dataclass
class Hub:
    config: Config
    values: dict
    mode: str                                   # how the configuration was made, for the summary
    env: dict[str, str] = field(default_factory=dict)   # the hub container's environment
    placeholders: list[str] = field(default_factory=list)
    setup_called: bool = True

    def environment(self):
        """The hub container's environment, while the checks read it (passwords from Secrets...)."""
        return chart_run.environment(self.env)

    def key_as_written(self, error: ConfigError) -> str:
        """``hub.config.ProfilesKubeSpawner.profiles[2].hardware.gpus: ...``: the path in the values files."""
        section = error.path.split(".", 1)[0].split("[", 1)[0]
        if section and section in (dig(self.values, "hub.config") or {}):
            return f"hub.config.{error}"
        return str(error)


def build(files: list[str], chart: str | None = None, helm: str | None = None) -> Hub:
    values = merged(files)
    if chart:
        helm_bin = chart_run.find_helm(helm)
        if helm_bin is None:
            raise UsageError(f"--helm {helm}: not an executable file" if helm else
                             "--chart needs helm: put it on PATH or pass --helm PATH")
        with z2jh.deferred_checks() as wired, contextlib.redirect_stdout(io.StringIO()):
            try:
                run = chart_run.hub_config(helm_bin, chart, files)
            except chart_run.ChartError as e:
                raise UsageError(f"helm template failed: {e}") from None
        if not wired:  # reported; the checks still say what the call would stop on, as without the chart
            with z2jh.deferred_checks(), chart_run.environment(run.env):
                z2jh.setup(run.config)
        return Hub(run.config, values, f"the z2jh chart at {chart}, rendered by {helm_bin}", run.env,
                   run.placeholders, setup_called=bool(wired))
    env, placeholders = extra_env(values)
    c = Config()
    for section, settings in (dig(values, "hub.config") or {}).items():  # as the chart loads hub.config
        if isinstance(settings, dict):
            c[section].update(settings)
    called = any(SETUP_CALL in str(code) for code in (dig(values, "hub.extraConfig") or {}).values())
    with z2jh.deferred_checks(), chart_run.environment(env):
        z2jh.setup(c)  # what the extraConfig entry does (values-only: the chart's singleuser.* mapping is not run)
    return Hub(c, values, "hub.config of the values files (no chart: the chart's singleuser.* settings are not "
                          "applied; --chart DIR runs the real one)", env, placeholders, setup_called=called)


def extra_env(values: dict) -> tuple[dict[str, str], list[str]]:
    """The hub's environment from ``hub.extraEnv`` (either of the chart's forms); Secrets get placeholders."""
    env: dict[str, str] = {}
    placeholders: list[str] = []
    raw = dig(values, "hub.extraEnv") or {}
    nulls = [k for k, v in raw.items() if v is None] if isinstance(raw, dict) else []
    if nulls:  # helm's own refusal ("hub.extraEnv.X had an unexpected type (<nil>)"): no hub is made
        raise ValuesError(f"hub.extraEnv.{nulls[0]}: null is not an entry (the chart's template refuses it); "
                          "remove the entry from the file that sets it")
    entries = [dict(e) for e in raw] if isinstance(raw, list) else [
        {"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in raw.items()]
    for entry in entries:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif ref:  # optional or not: the operator makes the Secrets their values name
            env[entry["name"]] = chart_run.placeholder(str(ref.get("name")), str(ref.get("key")))
            placeholders.append(f"{ref.get('name')}/{ref.get('key')}")
    return env, placeholders


def run(coroutine_fn):
    """KubeSpawner makes its API client for the running event loop, even when nothing is asked of Kubernetes."""
    async def inside():
        return coroutine_fn()
    return asyncio.run(inside())


def problems(hub: Hub) -> list[str]:
    """Every problem the hub's start-up would stop on, and more: each section's check is run, not only the first
    failing one. Lines name the keys as the values files write them."""
    with hub.environment():
        return _problems(hub)


def _problems(hub: Hub) -> list[str]:
    found = z2jh.problems(hub.config)  # the hub's own start-up checks, every section
    if not hub.setup_called:
        found.append(ConfigError("hub.extraConfig", f"no entry calls {SETUP_CALL}(c): the hub would start with "
                                                    "none of these checks (docs/deploy-eks.md)"))
    lines: list[str] = []
    for error in found:
        line = str(error) if error.path == "hub.extraConfig" else hub.key_as_written(error)
        if line not in lines:
            lines.append(line)
    return lines


def make_spawner(c: Config, user: str = "check", groups: tuple[str, ...] = (), admin: bool = False):
    """The configured spawner for ``user``'s default server, as the hub builds it, with no cluster: the user and
    the hub are stand-ins carrying what a pod is made from (the hub's in-cluster URL as z2jh connects it)."""
    base = c.JupyterHub.get("base_url", "/")
    connect = (c.JupyterHub.get("hub_connect_url") or "http://hub:8081").rstrip("/")
    hub = SimpleNamespace(public_host="", base_url=f"{base}hub/", url=f"{connect}{base}hub/",
                          api_url=f"{connect}{base}hub/api")
    who = SimpleNamespace(name=user, id=1, admin=admin, groups=[SimpleNamespace(name=g) for g in groups],
                          url=f"{base}user/{quote(user, safe='@~')}/", escaped_name=quote(user, safe="@~"))
    # what JupyterHub gives every spawner of a user's default server (User._new_spawner, User.spawn): its OAuth
    # client, whether admins may reach it (JupyterHub.admin_access, the chart's default: true), its URL prefix
    spawner = c.JupyterHub.spawner_class(config=c, user=who, hub=hub, _mock=True,
                                         oauth_client_id=f"jupyterhub-user-{quote(user)}")
    spawner.admin_access = bool(c.JupyterHub.get("admin_access", False))
    logging.disable(logging.WARNING)  # "Setting Spawner.server ... with no underlying orm_spawner": none here
    try:
        spawner.server = Server(base_url=who.url)
    finally:
        logging.disable(logging.NOTSET)
    return spawner
