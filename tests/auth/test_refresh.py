"""refresh_user decisions when the provider misbehaves, in-process against the real test provider.

The end-to-end tests (test_cognito, test_keycloak) cover refresh through a real hub; these cover the
cases a shared provider cannot play without disturbing other tests: the provider or its keys unreachable.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from jupyterhub_ext.auth.cognito import CognitoAuthenticator
from jupyterhub_ext.auth.idtoken import IdTokenError
from tests.support.hub_process import free_port

from .conftest import TOKEN_LIFETIME, unique

REDIRECT = "http://127.0.0.1:9/hub/oauth_callback"  # never called: the test reads the code from the redirect


class FakeUser:
    """What refresh_user uses of a JupyterHub User."""

    def __init__(self, name: str, auth_state: dict):
        self.name = name
        self._auth_state = auth_state

    async def get_auth_state(self):
        return self._auth_state


@pytest.fixture
def client(provider):
    return provider.register_client(REDIRECT, auth_method="client_secret_basic")


def authenticator(provider, client, **overrides) -> CognitoAuthenticator:
    client_id, secret = client
    return CognitoAuthenticator(
        domain=provider.base_url,
        user_pool_id="eu-west-1_TestPool1",
        issuer=provider.issuer,
        client_id=client_id,
        client_secret=secret,
        allowed_groups={"students"},
        **overrides,
    )


async def logged_in(provider, a: CognitoAuthenticator, groups=("students",)) -> FakeUser:
    """A user logged in through the real code flow (the browser part done with requests)."""
    name = unique("refresh-")
    provider.set_user(
        f"sub-{name}",
        {"email": f"{name}@example.com", "email_verified": True, "cognito:groups": list(groups)},
    )
    r = requests.post(
        f"{provider.base_url}/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": a.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid email",
            "nonce": "nonce-1",
        },
        data={"sub": f"sub-{name}"},
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlparse(r.headers["Location"]).query)["code"][0]
    token_info = await a.get_token_info(
        None, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    )
    model = await a.auth_model_from_tokens(token_info, nonce="nonce-1")
    assert model["groups"] == sorted(groups)
    return FakeUser(model["name"], model["auth_state"])


async def test_refresh_gives_a_fresh_verified_model(provider, client):
    a = authenticator(provider, client)
    user = await logged_in(provider, a)
    model = await a.refresh_user(user)
    assert model["name"] == user.name and model["groups"] == ["students"]
    assert model["auth_state"]["id_token"] != user._auth_state["id_token"]
    assert model["auth_state"]["refresh_token"] == user._auth_state["refresh_token"]  # not rotated: kept


async def test_unreachable_token_endpoint_keeps_the_session(provider, client):
    a = authenticator(provider, client)
    user = await logged_in(provider, a)
    a.token_url = f"http://127.0.0.1:{free_port()}/oauth2/token"
    assert await a.refresh_user(user) is True


async def test_unreachable_jwks_keeps_the_session(provider, client):
    a = authenticator(provider, client)
    user = await logged_in(provider, a)
    # New keys to fetch (as after a restart of the hub) from a JWKS URL that does not answer.
    a.jwks_url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    assert await a.refresh_user(user) is True


async def test_revoked_refresh_token_needs_a_new_login(provider, client):
    a = authenticator(provider, client)
    user = await logged_in(provider, a)
    provider.revoke(f"sub-{user.name.split('@')[0]}")
    assert await a.refresh_user(user) is False


async def test_a_user_no_longer_allowed_is_refused(provider, client):
    a = authenticator(provider, client)
    user = await logged_in(provider, a)
    sub = f"sub-{user.name.split('@')[0]}"
    provider.set_user(sub, {"email": user.name, "email_verified": True, "cognito:groups": ["alumni"]})
    assert await a.refresh_user(user) is False
    # Blocked users too, whatever their groups.
    provider.set_user(sub, {"email": user.name, "email_verified": True, "cognito:groups": ["students"]})
    assert (await a.refresh_user(user))["groups"] == ["students"]
    a.blocked_users = {user.name}
    assert await a.refresh_user(user) is False


async def test_without_a_refresh_token_the_id_token_decides(provider, client):
    a = authenticator(provider, client)
    user = await logged_in(provider, a)
    user._auth_state = {**user._auth_state, "refresh_token": None}
    assert await a.refresh_user(user) is True  # the ID token is still valid
    broken = dict(user._auth_state["token_response"], id_token="not.a.token")
    user._auth_state = {**user._auth_state, "token_response": broken}
    assert await a.refresh_user(user) is False


async def test_refresh_user_hook_still_wins(provider, client):
    a = authenticator(provider, client, refresh_user_hook=lambda authenticator, user, auth_state: False)
    user = await logged_in(provider, a)
    assert await a.refresh_user(user) is False


async def test_a_refresh_response_without_id_token_keeps_the_verified_one(provider, client):
    """OpenID Connect lets a refresh response carry no ID token: the one verified at login is kept, even once
    it has expired; an expired ID token arriving in a token response is still refused."""
    a = authenticator(provider, client, id_token_leeway=0.0)
    user = await logged_in(provider, a)
    previous = user._auth_state
    await asyncio.sleep(TOKEN_LIFETIME + 1.2)  # the ID token has expired now
    without = {k: v for k, v in previous["token_response"].items() if k != "id_token"}
    model = await a.auth_model_from_tokens(without, previous=previous)
    assert model["name"] == user.name and model["groups"] == ["students"]
    assert model["auth_state"]["id_token"] == previous["id_token"]
    with pytest.raises(IdTokenError, match="expired"):
        await a.auth_model_from_tokens(previous["token_response"])
