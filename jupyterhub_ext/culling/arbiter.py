"""The ``cull_arbiter_hook`` of jupyterhub-idle-culler 2.x, run in the culler's own process.

That process has the culler's dependencies and this package installed without its own (``--no-deps``): this module
imports only the standard library, tornado and the pure policy. The culler's config file (``idle_culler_config.py``
beside it) installs the hook; the hub puts the policy and the API's address and token in the culler's environment.

Before it answers "cull", the hook tells the hub why (``POST <api>/jupyterhub-ext/culls``), so the usage ledger
can say the run was culled. If the hub cannot be told, the cull still happens and the ledger says "stopped".
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from typing import Any, Awaitable, Callable, Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .policy import Policy, decide, from_env

CULLS_PATH = "/jupyterhub-ext/culls"  # under the hub's API (/hub/api); the handler's route
TELL_TIMEOUT = 10.0  # seconds: a hub that does not answer must not hold the culler's round for long

# the culler is a traitlets Application: its log is the logger named after its class
log = logging.getLogger("IdleCuller")

Fetch = Callable[[HTTPRequest], Awaitable[Any]]


def _seconds_since(stamp: str | None, now: datetime.datetime) -> float | None:
    if not stamp:
        return None
    when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # JupyterHub's ISO 8601, in UTC
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return (now - when).total_seconds()


def owner(server: Mapping[str, Any]) -> tuple[str, str]:
    """(user, server name) from the server model's ``full_name``, ``user/server`` (``user/`` for the default)."""
    user, _, name = str(server.get("full_name") or "").rpartition("/")  # a server's name has no "/"
    return user, name


def make_arbiter(policy: Policy, api_url: str, token: str, fetch: Fetch | None = None,
                 clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc)):
    """The hook: (inactive: timedelta | None, inactive_limit: seconds, server: the server model) -> bool."""

    async def tell_hub(user: str, name: str, reason: str) -> None:
        request = HTTPRequest(api_url.rstrip("/") + CULLS_PATH, method="POST", request_timeout=TELL_TIMEOUT,
                              headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                              body=json.dumps({"user": user, "server": name, "reason": reason}))
        try:
            # the culler's own client: its TLS settings (internal SSL) and its defaults apply
            response = await (fetch or AsyncHTTPClient().fetch)(request, raise_error=False)
        except Exception as e:  # noqa: BLE001 - a hub that cannot be told never stops a cull
            log.warning("jupyterhub_ext: could not tell the hub why %s/%s is culled (%s); the usage ledger will say "
                        "'stopped'", user, name, e)
            return
        if response.code != 204:
            log.warning("jupyterhub_ext: the hub answered %s to the cull of %s/%s: %s; the usage ledger will say "
                        "'stopped'", response.code, user, name, (response.body or b"")[:200].decode("utf8", "replace"))

    async def cull_arbiter(*, inactive, inactive_limit, server, **_: Any) -> bool:
        profile = (server.get("user_options") or {}).get("profile")
        reason = decide(profile if isinstance(profile, str) else None,
                        None if inactive is None else inactive.total_seconds(),
                        _seconds_since(server.get("started"), clock()), inactive_limit, policy)
        if reason is None:
            return False
        user, name = owner(server)
        log.info("jupyterhub_ext: culling %s/%s (profile %s): %s", user, name, profile or "none",
                 "maximum age reached" if reason == "max_age" else "idle past its timeout")
        await tell_hub(user, name, reason)
        return True

    return cull_arbiter


def arbiter_from_env(environ: Mapping[str, str] = os.environ):
    """The hook as the hub configured this managed service: the policy, the hub's API, the service's token."""
    return make_arbiter(from_env(environ), environ["JUPYTERHUB_API_URL"], environ["JUPYTERHUB_API_TOKEN"])
