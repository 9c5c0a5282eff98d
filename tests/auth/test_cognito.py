"""CognitoAuthenticator against a real OpenID Connect provider and a real hub, through the real login flow."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import jwt
import pytest

from .conftest import AUTH_REFRESH_AGE, TOKEN_LIFETIME, hub_factory, refusal_case, start_oidc_hub, unique
from .provider import BAD_TOKENS, login, whoami

POOL_ID = "eu-west-1_TestPool1"


def cognito_claims(name: str, groups: list[str] | None, **extra) -> dict:
    """Claims shaped like a Cognito ID token's."""
    claims = {
        "email": f"{name.capitalize()}@Example.com",
        "email_verified": True,
        "cognito:username": name,
        "token_use": "id",
        **extra,
    }
    if groups is not None:
        claims["cognito:groups"] = groups
    return claims


@hub_factory("cognito")
def start_cognito(provider):
    return start_oidc_hub(
        provider,
        "cognito",
        {
            "domain": provider.base_url,
            "user_pool_id": POOL_ID,
            # Real pools: https://cognito-idp.<region>.amazonaws.com/<pool> (the default); the test
            # provider signs as its own URL.
            "issuer": provider.issuer,
            "allowed_groups": {"students", "teachers"},
            "admin_groups": {"hub-admins"},
            "allowed_users": {"guest@example.com"},
            "id_token_leeway": 1.0,
        },
        auth_method="client_secret_basic",
        name="cognito",
    )


def new_user(cognito, prefix: str, groups: list[str] | None = None, **extra) -> tuple[str, str]:
    """(sub, hub username) of a fresh user at the provider."""
    name = unique(prefix)
    cognito.provider.set_user(f"sub-{name}", cognito_claims(name, groups, **extra))
    return f"sub-{name}", f"{name}@example.com"


def test_group_member_logs_in_with_verified_claims(cognito):
    sub, username = new_user(cognito, "student", ["students"])
    result = login(cognito.hub, sub)

    assert result.status == 302, result.response.text[:300]
    assert result.response.headers["Location"].startswith("/hub/")
    # The authorize request is Cognito's: our client, PKCE, a nonce, the default scopes.
    params = result.authorize_params
    assert params["client_id"] == cognito.client_id
    assert params["scope"] == "openid email"
    assert params["code_challenge_method"] == "S256"
    assert params["nonce"]
    # Username: the verified email, lowercased by JupyterHub; groups: cognito:groups of the ID token.
    me = whoami(cognito.hub, result.session)
    assert me["name"] == username
    assert me["groups"] == ["students"]
    assert me["admin"] is False
    # auth_state holds a genuine ID token for this client, bound to this login's nonce, and a refresh token.
    state = cognito.user(username)["auth_state"]
    claims = cognito.provider.verify(state["id_token"], audience=cognito.client_id)
    assert claims["sub"] == sub and claims["nonce"] == params["nonce"]
    assert state["refresh_token"]
    assert "authorization_code" in cognito.provider.grants_for(cognito.client_id)


def test_admin_group_member_is_admin(cognito):
    sub, username = new_user(cognito, "teacher", ["teachers", "hub-admins"])
    result = login(cognito.hub, sub)
    assert result.status == 302
    me = whoami(cognito.hub, result.session)
    assert me["admin"] is True
    assert sorted(me["groups"]) == ["hub-admins", "teachers"]


@pytest.mark.parametrize("groups", [["visitors"], [], None], ids=["other-group", "empty-groups", "no-groups-claim"])
def test_user_outside_allowed_groups_is_refused(cognito, groups):
    sub, username = new_user(cognito, "outsider", groups)
    result = login(cognito.hub, sub)
    assert result.status == 403
    assert "not currently authorized" in result.response.text
    assert cognito.user(username) is None
    assert whoami(cognito.hub, result.session) is None


def test_listed_user_without_groups_logs_in(cognito):
    cognito.provider.set_user("sub-guest", cognito_claims("guest", None))
    result = login(cognito.hub, "sub-guest")
    assert result.status == 302
    me = whoami(cognito.hub, result.session)
    assert me["name"] == "guest@example.com" and me["groups"] == []


def test_cognito_access_token_claims_are_not_an_id_token(cognito):
    # A token Cognito marked as an access token must never be taken for an ID token.
    sub, username = new_user(cognito, "access-token", ["students"], token_use="access")
    result = login(cognito.hub, sub)
    assert result.status == 403
    cognito.hub.wait_for_log(r"ID token rejected \(token-use\)")
    assert cognito.user(username) is None


def test_unverified_email_is_refused(cognito):
    # Otherwise anyone who signs up with a teacher's address (unverified) would become that teacher.
    sub, username = new_user(cognito, "unverified", ["students"], email_verified=False)
    result = login(cognito.hub, sub)
    assert result.status == 403
    assert "not verified" in result.response.text
    assert cognito.user(username) is None


@pytest.mark.parametrize("mode", list(BAD_TOKENS))
def test_bad_id_token_is_refused(cognito, mode):
    kind, words = BAD_TOKENS[mode]
    sub, username = new_user(cognito, f"target-{mode}-", ["students", "hub-admins"])
    with cognito.provider.tamper(mode):
        result = login(cognito.hub, sub)
    assert result.status == 403, result.response.text[:500]
    assert words in result.response.text.replace("&#39;", "'")
    cognito.hub.wait_for_log(rf"ID token rejected \({kind}\)")
    assert cognito.user(username) is None
    assert whoami(cognito.hub, result.session) is None
    # Control: the same user, untampered, gets in. The refusal was the token's doing.
    assert login(cognito.hub, sub).status == 302


def test_logout_ends_the_cognito_session(cognito):
    sub, username = new_user(cognito, "leaver", ["students"])
    session = login(cognito.hub, sub).session
    r = session.get(cognito.hub.url("hub/logout"), allow_redirects=False)
    assert r.status_code == 302
    expected = f"{cognito.provider.base_url}/logout?" + urlencode(
        {"client_id": cognito.client_id, "logout_uri": cognito.root_url}
    )
    assert r.headers["Location"] == expected
    # Cognito accepts it (known client, allowed sign-out URL) and sends the browser back to the hub.
    r = session.get(r.headers["Location"], allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == cognito.root_url
    assert whoami(cognito.hub, session) is None


def test_refresh_after_id_token_expiry_uses_the_refresh_token(cognito, upstream_generic):
    """oauthenticator#793: with claims from the ID token, a refresh after it expired fails upstream."""
    sub, username = new_user(cognito, "night-owl", ["students"])
    ours = login(cognito.hub, sub)
    theirs = login(upstream_generic.hub, sub)
    assert ours.status == 302 and theirs.status == 302
    first = cognito.user(username)["auth_state"]["id_token"]

    time.sleep(TOKEN_LIFETIME + 1.2)  # both ID tokens (and access tokens) have expired now
    with pytest.raises(jwt.ExpiredSignatureError):
        cognito.provider.verify(first, audience=cognito.client_id)

    page = ours.session.get(cognito.hub.url("hub/home"), allow_redirects=False, timeout=30)
    assert page.status_code == 200
    assert cognito.provider.grants_for(cognito.client_id)[-1] == "refresh_token"
    fresh = cognito.user(username)["auth_state"]
    assert fresh["id_token"] != first
    assert cognito.provider.verify(fresh["id_token"], audience=cognito.client_id)["sub"] == sub
    assert fresh["refresh_token"]
    assert whoami(cognito.hub, ours.session)["name"] == username

    # The same situation with the upstream GenericOAuthenticator, to show this test reproduces the bug:
    # refresh_user raises HTTP 500 on the expired ID token (never trying the refresh token); JupyterHub 5+
    # logs it with the token in clear and treats the user as logged out.
    page = theirs.session.get(upstream_generic.hub.url("hub/home"), allow_redirects=False, timeout=30)
    assert page.status_code == 302 and "/hub/login" in page.headers["Location"]
    upstream_generic.hub.wait_for_log(r"HTTP 500: Internal Server Error \(Unable to decode id token")
    assert "refresh_token" not in upstream_generic.provider.grants_for(upstream_generic.client_id), (
        "upstream now uses the refresh token (oauthenticator#793 fixed?): revisit CognitoAuthenticator.refresh_user"
    )


def test_removal_from_allowed_groups_logs_the_user_out_at_refresh(cognito):
    sub, username = new_user(cognito, "dropout", ["students"])
    session = login(cognito.hub, sub).session
    assert whoami(cognito.hub, session)["groups"] == ["students"]

    cognito.provider.set_user(sub, cognito_claims(username.split("@")[0], ["alumni"]))
    time.sleep(AUTH_REFRESH_AGE + 0.2)
    assert whoami(cognito.hub, session) is None
    cognito.hub.wait_for_log(rf"{username} is no longer allowed to use the hub")
    r = session.get(cognito.hub.url("hub/home"), allow_redirects=False)
    assert r.status_code == 302 and "/hub/login" in r.headers["Location"]
    # Logging in again does not help.
    assert login(cognito.hub, sub).status == 403


def test_admin_is_revoked_when_the_admin_group_is_dropped(cognito):
    sub, username = new_user(cognito, "former-admin", ["teachers", "hub-admins"])
    session = login(cognito.hub, sub).session
    assert whoami(cognito.hub, session)["admin"] is True

    cognito.provider.set_user(sub, cognito_claims(username.split("@")[0], ["teachers"]))
    time.sleep(AUTH_REFRESH_AGE + 0.2)
    me = whoami(cognito.hub, session)
    assert me is not None and me["admin"] is False and me["groups"] == ["teachers"]
    assert cognito.user(username)["admin"] is False


def test_user_disabled_at_the_provider_must_log_in_again(cognito):
    sub, username = new_user(cognito, "disabled", ["students"])
    session = login(cognito.hub, sub).session
    cognito.provider.revoke(sub)  # refresh tokens revoked, e.g. user disabled or signed out globally
    time.sleep(AUTH_REFRESH_AGE + 0.2)
    assert whoami(cognito.hub, session) is None
    cognito.hub.wait_for_log(rf"The provider refused to refresh {username}")


@hub_factory("upstream_generic")
def start_upstream_generic(provider):
    """The upstream GenericOAuthenticator, configured as oauthenticator documents it for Cognito ID tokens."""
    return start_oidc_hub(
        provider,
        "generic-oauth",
        {
            "authorize_url": f"{provider.base_url}/oauth2/authorize",
            "token_url": f"{provider.base_url}/oauth2/token",
            "userdata_from_id_token": True,
            "username_claim": "email",
            "scope": ["openid", "email"],
            "enable_auth_state": True,
            "allow_all": True,
        },
        auth_method="client_secret_post",
        name="upstream-generic",
    )


# ---- start-up refusals (real jupyterhub processes) ----------------------------------------------------------


NO_ALLOW_RULE = refusal_case(
    "cognito/no-allow-rule",
    # The public EKS blueprint's Cognito values, translated to this authenticator: no allow rule at all.
    {
        "JupyterHub": {"authenticator_class": "cognito"},
        "CognitoAuthenticator": {
            "domain": "my-hub",
            "user_pool_id": POOL_ID,
            "client_id": "abc",
            "client_secret": "def",
            "oauth_callback_url": "https://hub.example.com/hub/oauth_callback",
            "login_service": "sign in with Cognito",
        },
    },
    crypt_key=True,
    match=r"CognitoAuthenticator\.allowed_groups: no allow rule",
)

NO_CRYPT_KEY = refusal_case(
    "cognito/no-crypt-key",
    {
        "JupyterHub": {"authenticator_class": "cognito"},
        "CognitoAuthenticator": {
            "domain": "my-hub",
            "user_pool_id": POOL_ID,
            "client_id": "abc",
            "allowed_groups": {"students"},
        },
    },
    crypt_key=False,
    match=r"auth_state is enabled, but encryption is not available",
)


@pytest.mark.parametrize("refusal", [NO_ALLOW_RULE])
def test_blueprint_config_without_allow_rule_refuses_to_start(background, refusal):
    log = background.refusal(refusal)
    assert "nobody could log in" in log


@pytest.mark.parametrize("refusal", [NO_CRYPT_KEY])
def test_missing_crypt_key_refuses_to_start(background, refusal):
    background.refusal(refusal)
