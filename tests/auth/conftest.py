"""Fixtures for the authenticator tests: one OpenID Connect provider per session, hubs per module."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import hub_process
from tests.support.hub_process import HubProcess, free_port, start_hub

from .provider import Provider

#: Lifetime of access and ID tokens at the test provider (Cognito's default is 3600 s). Short, so that
#: refresh-after-expiry runs in seconds; long enough for a login on a busy 2-core machine.
TOKEN_LIFETIME = 3.0

#: JupyterHub refreshes a user's auth at most this often; 1 s lets refresh tests run quickly.
AUTH_REFRESH_AGE = 1

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test uses (users are created at the shared provider and hubs)."""
    return f"{prefix}{next(_names)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        # Keep the logs of every hub alive when a test fails (artifacts/hub-logs/).
        for hub in list(hub_process._running):
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
