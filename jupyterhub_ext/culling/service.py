"""The chart's culler service, given per-profile culling: what ``jupyterhub_ext.z2jh.setup(c)`` calls.

z2jh runs jupyterhub-idle-culler as a JupyterHub-managed service (``cull.*`` values) with the hub image's own
Python, whose culler is 1.4 (a pin we do not move). With cull rules in ``limits.culling`` and a 2.x culler at
``culler_python`` (the hub image's second virtual environment), the service runs that Python instead, with every
argument the chart gave it, our config file (the hook) and the policy in its environment. Otherwise the culler
runs as the chart made it and the hub log says at start-up that per-profile culling is off, and why.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

from traitlets.config import Config

from .policy import ENV, EVERY_PROFILE, Policy, describe, policy_of, to_env

SERVICE = "jupyterhub-idle-culler"  # the chart's name for it (and its role's)
MODULE = "jupyterhub_idle_culler"
CONFIG_FILE = Path(__file__).with_name("idle_culler_config.py")
MIN_MAJOR = 2  # cull_arbiter_hook came with 2.0
PROBE_TIMEOUT = 60.0

# what a Python says about itself: its culler's version and whether our hook imports there
PROBE = """
import importlib.metadata as m, json
out = {"culler": None, "hook": None}
try:
    out["culler"] = m.version("jupyterhub-idle-culler")
except m.PackageNotFoundError:
    pass
try:
    import jupyterhub_ext.culling.arbiter
except Exception as e:
    out["hook"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""

log = logging.getLogger("JupyterHub")


def probe(python: str) -> dict[str, Any]:
    """``{"culler": version | None, "hook": import error | None}`` of ``python``, or ``{"error": why}``."""
    if not os.access(python, os.X_OK):
        return {"error": f"{python} is not there"}
    try:
        done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"error": f"{python} could not be asked for its culler ({e})"}


def _problem(python: str, found: dict[str, Any]) -> str | None:
    if found.get("error"):
        return found["error"]
    version = found.get("culler")
    if version is None:
        return f"{python} has no jupyterhub-idle-culler"
    major = re.match(r"\d+", version)
    if major is None or int(major.group()) < MIN_MAJOR:
        return f"{python} has jupyterhub-idle-culler {version}; the per-profile hook needs {MIN_MAJOR}.0 or later"
    if found.get("hook"):
        return (f"{python} cannot import jupyterhub_ext.culling.arbiter ({found['hook']}); install jupyterhub_ext "
                "there with --no-deps")
    return None


def _flag(args: list[str], name: str) -> int | None:
    """The value of ``--name=N`` among the culler's arguments (the chart writes them so)."""
    for arg in args:
        if arg.startswith(f"--{name}="):
            try:
                return int(arg.split("=", 1)[1])
            except ValueError:
                return None
    return None


def _timing_warnings(policy: Policy, args: list[str]) -> list[str]:
    """Rules the culler's own settings would undo or delay."""
    out = []
    every, max_age = _flag(args, "cull-every"), _flag(args, "max-age")
    if every is None:  # the culler's own default: half its timeout (600 s by default)
        every = (_flag(args, "timeout") or 600) // 2
    idle = [r["idle_seconds"] for r in policy.values() if r.get("idle_seconds")]
    if idle and every > min(idle):
        out.append(f"the culler looks every {every} s (cull.every), longer than the shortest idle timeout "
                   f"({min(idle):g} s): servers are culled up to {every} s late")
    if max_age:
        longer = sorted(s for s, r in policy.items() if (r.get("max_age_seconds") or 0) > max_age)
        if longer:
            out.append(f"the maximum age of {', '.join(longer)} is longer than the culler's --max-age "
                       f"(cull.maxAge, {max_age} s), which stops every server first")
    return out


def _register_handler(c: Config) -> None:
    from .handler import ROUTE, CullMarkHandler

    route = (ROUTE, CullMarkHandler)
    existing = c.JupyterHub.get("extra_handlers")
    if existing is None or isinstance(existing, list):
        if route not in (existing or []):
            c.JupyterHub.extra_handlers = [*(existing or []), route]
    elif route not in existing.get_value([]):  # a lazy value (someone's .append): added to, merged later
        existing.append(route)


def wire_culler(c: Config, policy: Policy, python: str,
                ask: Callable[[str], dict[str, Any]] = probe) -> bool:
    """Run the chart's culler with ``python`` and our hook for ``policy`` ({slug: seconds}); True if it will.
    Without rules nothing changes; with rules that cannot be applied, a warning says why."""
    if not policy:
        return False
    off = f"jupyterhub_ext: per-profile culling is off ({describe(policy)} in limits.culling): %s"
    services = c.JupyterHub.get("services") or []
    service = next((s for s in services if isinstance(s, dict) and s.get("name") == SERVICE), None)
    if service is None:
        log.warning(off, "the chart's culler is not running (cull.enabled: false); no server is culled")
        return False
    command = list(service.get("command") or [])
    if command[1:3] != ["-m", MODULE]:
        log.warning(off, f"the {SERVICE} service's command is not the chart's (python3 -m {MODULE} ...): {command}")
        return False
    config_arg = f"--config={CONFIG_FILE}"
    args = [a for a in command[3:] if a != config_arg]  # a second setup(c) of the same config changes nothing
    if any(a == "--config" or a.startswith("--config=") for a in args):
        log.warning(off, f"the {SERVICE} service already has a config file of its own: {command}")
        return False
    found = ask(python)
    problem = _problem(python, found)
    if problem is not None:
        log.warning(off, f"{problem}. The culler runs as the chart configures it: one timeout for every server "
                         "(cull.timeout). See docs/fair-use.md, 'Culling per profile'.")
        return False
    service["command"] = [python, "-m", MODULE, *args, config_arg]
    given = dict(policy)
    if _flag(args, "max-age"):  # cull.maxAge: decided by the hook too, so those culls are recorded as culls
        given[EVERY_PROFILE] = {"idle_seconds": None, "max_age_seconds": float(_flag(args, "max-age"))}
    service["environment"] = {**(service.get("environment") or {}), ENV: to_env(given)}
    _register_handler(c)
    log.info("jupyterhub_ext: per-profile culling by jupyterhub-idle-culler %s (%s): %s", found["culler"], python,
             describe(policy))
    for warning in _timing_warnings(policy, args):
        log.warning("jupyterhub_ext: per-profile culling: %s", warning)
    return True


def wire_culling(c: Config, spawner_class: type) -> bool:
    """``wire_culler`` with the cull rules and ``culler_python`` of the configured spawner (ours only)."""
    from ..fairuse.mixin import FairUseMixin

    if not (isinstance(spawner_class, type) and issubclass(spawner_class, FairUseMixin)):
        return False
    spawner = spawner_class(config=c, _mock=True)
    return wire_culler(c, policy_of(spawner.fair_use_limits()), spawner.culler_python)
