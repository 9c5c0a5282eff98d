"""Fixtures for the authenticator tests: one OpenID Connect provider and a set of hubs per session.

Starting a hub costs seconds of CPU (mostly imports), so every hub the selected tests need, and every
start-up refusal they check, is launched at once, in parallel, when the first of them is needed: test modules
register them with ``hub_factory`` and ``refusal_case``; tests get them from the ``background`` fixture.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support import hub_process
from tests.support.hub_process import HubProcess, expect_start_failure, free_port, start_hub

from .provider import Provider

#: Lifetime of access and ID tokens at the test provider (Cognito's default is 3600 s). Short, so that
#: refresh-after-expiry runs in seconds; long enough for a login on a busy 2-core machine.
TOKEN_LIFETIME = 4.0

#: JupyterHub refreshes a user's auth at most this often; 1 s lets refresh tests run quickly.
AUTH_REFRESH_AGE = 1

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test uses (users are created at the shared provider and hubs)."""
    return f"{prefix}{next(_names)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)  # lets fixtures see how the test went
    if report.failed:
        # Keep the logs of every hub alive when a test fails (artifacts/hub-logs/).
        for hub in hub_process.running_hubs():
            hub.save_log(f"{item.nodeid} failed ({report.when})")
    return report


@pytest.fixture(scope="session")
def provider():
    p = Provider(token_lifetime=TOKEN_LIFETIME)
    yield p
    p.stop()


@dataclass
class OIDCHub:
    hub: HubProcess
    provider: Provider
    client_id: str
    client_secret: str
    other_client_id: str
    root_url: str

    def user(self, name: str) -> dict[str, Any] | None:
        r = self.hub.api("GET", f"users/{name}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()


def start_oidc_hub(
    provider: Provider,
    authenticator: str,
    settings: dict[str, Any],
    *,
    auth_method: str,
    name: str,
) -> OIDCHub:
    """A hub using ``authenticator`` with a client registered at ``provider`` (plus a second client of the
    same provider, for tokens issued to someone else)."""
    port = free_port()
    root = f"http://127.0.0.1:{port}/"
    callback = f"{root}hub/oauth_callback"
    client_id, secret = provider.register_client(callback, auth_method=auth_method, logout_uris=[root])
    other_id, _ = provider.register_client(callback, auth_method=auth_method, logout_uris=[root])
    cls = {
        "cognito": "CognitoAuthenticator",
        "keycloak": "KeycloakAuthenticator",
        "generic-oauth": "GenericOAuthenticator",
    }.get(authenticator, authenticator)
    config = {
        "JupyterHub": {"authenticator_class": authenticator},
        cls: {
            "client_id": client_id,
            "client_secret": secret,
            "oauth_callback_url": callback,
            "auth_refresh_age": AUTH_REFRESH_AGE,
            **settings,
        },
    }
    hub = start_hub(config, crypt_key=True, port=port, name=name)
    return OIDCHub(hub, provider, client_id, secret, other_id, root)


# ---- hubs and refusals, started in parallel -------------------------------------------------------------

#: fixture name -> factory(provider) returning an object with .stop() (or an OIDCHub)
HUB_FACTORIES: dict[str, Callable[[Provider], Any]] = {}

#: refusal key -> keyword arguments of expect_start_failure
REFUSALS: dict[str, dict[str, Any]] = {}


def hub_factory(fixture_name: str):
    """Register how to start the hub behind the session fixture ``fixture_name``."""

    def register(factory: Callable[[Provider], Any]):
        HUB_FACTORIES[fixture_name] = factory
        return factory

    return register


def refusal_case(key: str, config: Any, *, match: str, **kwargs: Any) -> str:
    """Register a configuration (or a function making one) the hub must refuse to start with; tests
    parametrize over the keys (parameter name ``refusal``) and read the log from ``background.refusal(key)``."""
    REFUSALS[key] = {"config": config, "match": match, "name": "refusal-" + key.replace("/", "-"), **kwargs}
    return key


@dataclass
class Background:
    hubs: dict[str, Future] = field(default_factory=dict)
    refusals: dict[str, Future] = field(default_factory=dict)

    def hub(self, name: str) -> Any:
        return self.hubs[name].result()

    def refusal(self, key: str) -> str:
        """The log of the refused start (expect_start_failure's assertions already passed)."""
        return self.refusals[key].result()


def _after(futures: list[Future], fn: Callable, *args: Any) -> Any:
    for future in futures:
        future.exception()  # wait, whatever the outcome
    return fn(*args)


def _refuse(case: dict[str, Any]) -> str:
    case = dict(case)
    if callable(case["config"]):  # configs that need files made at run time, not at import
        case["config"] = case["config"]()
    return expect_start_failure(**case)


def _stop(obj: Any) -> None:
    (obj.hub if isinstance(obj, OIDCHub) else obj).stop()


@pytest.fixture(scope="session")
def background(request, provider):
    items = request.session.items
    wanted_hubs = {name for item in items for name in item.fixturenames if name in HUB_FACTORIES}
    wanted_refusals = {
        item.callspec.params["refusal"]
        for item in items
        if hasattr(item, "callspec") and "refusal" in item.callspec.params
    }
    jobs = len(wanted_hubs) + len(wanted_refusals)
    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, int(os.environ.get("AUTH_TEST_PARALLEL_STARTS", "8")))))
    bg = Background()
    for name in sorted(wanted_hubs):
        bg.hubs[name] = pool.submit(HUB_FACTORIES[name], provider)
    # Refusals are read by the last tests of each module: launch them once the hubs are up, so that they
    # use the CPU while the first tests mostly wait (token expiry, refresh age) rather than delay the hubs.
    hubs_up = list(bg.hubs.values())
    for key in sorted(wanted_refusals):
        bg.refusals[key] = pool.submit(_after, hubs_up, _refuse, REFUSALS[key])
    yield bg
    pool.shutdown(wait=True)
    for future in bg.hubs.values():
        if future.exception() is None:
            _stop(future.result())


def _hub_fixture(name: str):
    @pytest.fixture(scope="session", name=name)
    def hub(background):
        return background.hub(name)

    return hub


# The hubs the test modules register (test_cognito, test_keycloak, test_shared).
cognito = _hub_fixture("cognito")
upstream_generic = _hub_fixture("upstream_generic")
keycloak = _hub_fixture("keycloak")
keycloak_last = _hub_fixture("keycloak_last")
classroom = _hub_fixture("classroom")
upstream_named = _hub_fixture("upstream_named")
