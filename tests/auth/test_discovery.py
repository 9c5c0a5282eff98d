"""Keycloak discovery and JWKS fetching against the real test provider, in-process (no hub)."""

from __future__ import annotations

import pytest

from jupyterhub_ext.auth.idtoken import ProviderUnavailable
from jupyterhub_ext.auth.keycloak import KeycloakAuthenticator
from tests.support.hub_process import free_port


async def test_endpoints_come_from_the_realm_discovery_document(provider):
    a = KeycloakAuthenticator(realm_url=provider.realm_url, client_id="cid", allowed_groups={"x"})
    assert a.authorize_url == "" and a.issuer == ""
    await a.resolve_endpoints()
    oidc = f"{provider.realm_url}/protocol/openid-connect"
    assert a.authorize_url == f"{oidc}/auth"
    assert a.token_url == f"{oidc}/token"
    assert a.userdata_url == f"{oidc}/userinfo"
    assert a.jwks_url == f"{oidc}/certs"
    assert a.end_session_url == f"{oidc}/logout"
    assert a.issuer == provider.issuer
    # The keys behind jwks_url are the provider's.
    keys = await a.fetch_json(a.jwks_url)
    assert [k["kid"] for k in keys["keys"]] == [k["kid"] for k in provider.jwks()["keys"]]


async def test_explicit_endpoints_win_over_discovery(provider):
    a = KeycloakAuthenticator(
        realm_url=provider.realm_url,
        client_id="cid",
        allowed_groups={"x"},
        token_url="https://internal.example.com/token",
        issuer="https://sso.example.com/realms/hub",
    )
    await a.resolve_endpoints()
    assert a.token_url == "https://internal.example.com/token"
    assert a.issuer == "https://sso.example.com/realms/hub"
    assert a.authorize_url.endswith("/protocol/openid-connect/auth")


async def test_unreachable_keycloak_is_retried_later(provider):
    a = KeycloakAuthenticator(realm_url=f"http://127.0.0.1:{free_port()}/realms/hub", client_id="cid")
    with pytest.raises(ProviderUnavailable, match="openid-configuration"):
        await a.resolve_endpoints()
    assert a.authorize_url == ""
    # Keycloak comes back (here: the URL now points at a running one): the next login resolves.
    a.realm_url = provider.realm_url
    await a.resolve_endpoints()
    assert a.issuer == provider.issuer


async def test_a_realm_that_does_not_exist_is_reported(provider):
    a = KeycloakAuthenticator(realm_url=f"{provider.base_url}/realms/nope", client_id="cid")
    with pytest.raises(ProviderUnavailable, match="404"):
        await a.resolve_endpoints()
