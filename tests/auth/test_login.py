"""Login answers that a shared provider cannot play without disturbing other tests, in-process: the
provider unreachable (one 503 page, whether the login starts or comes back), the OAuth state missing."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from tornado import web

from jupyterhub_ext.auth.handlers import PROVIDER_UNAVAILABLE, OIDCLoginHandler
from jupyterhub_ext.auth.keycloak import KeycloakAuthenticator
from tests.support.hub_process import free_port


def unreachable_keycloak() -> KeycloakAuthenticator:
    return KeycloakAuthenticator(realm_url=f"http://127.0.0.1:{free_port()}/realms/hub", client_id="cid")


def callback(state: str | None = "state-1") -> SimpleNamespace:
    """What authenticate uses of the OAuth callback handler."""
    arguments = {"state": state, "code": "code-1"}
    return SimpleNamespace(
        get_argument=lambda name, default=None: arguments.get(name) or default,
        settings={"cookie_secret": b"secret"},
    )


async def test_unreachable_provider_at_the_callback_is_a_503(caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError) as raised:
        await unreachable_keycloak().authenticate(callback())
    assert raised.value.status_code == 503 and raised.value.log_message == PROVIDER_UNAVAILABLE
    assert "Login failed: " in caplog.text and "openid-configuration" in caplog.text


async def test_unreachable_provider_when_the_login_starts_is_the_same_503(caplog):
    handler = SimpleNamespace(authenticator=unreachable_keycloak(), log=logging.getLogger("test-login"))
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError) as raised:
        await OIDCLoginHandler.get(handler)
    assert raised.value.status_code == 503 and raised.value.log_message == PROVIDER_UNAVAILABLE
    assert "Cannot start a login: " in caplog.text


@pytest.mark.parametrize("state", [None, ""])
async def test_a_callback_without_oauth_state_is_refused(state):
    # Without the state there is no nonce to hold the ID token to: refused before the provider is asked.
    with pytest.raises(web.HTTPError) as raised:
        await unreachable_keycloak().authenticate(callback(state))
    assert raised.value.status_code == 400
