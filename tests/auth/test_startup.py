"""Start-up refusals through a real ``jupyterhub`` process: a setup that would admit everybody by accident or
nobody at all, or an admin password that is too short, stops the hub with one line naming the key.

test_config.py checks every refusal in-process; these check that each kind also stops a real hub (the
authenticators raise from ``check_allow_config``, which JupyterHub calls while starting).
"""

from __future__ import annotations

import pytest

from .conftest import refusal_case

POOL_ID = "eu-west-1_TestPool1"
COGNITO = {
    "domain": "my-hub",
    "user_pool_id": POOL_ID,
    "client_id": "abc",
    "client_secret": "def",
    "oauth_callback_url": "https://hub.example.com/hub/oauth_callback",
}
# Loopback and nothing listening: the realm is never reached (the checks come before discovery).
KEYCLOAK = {"realm_url": "http://127.0.0.1:9/realms/hub", "client_id": "hub", "client_secret": "def"}


def oidc(authenticator: str, section: str, settings: dict, extra: dict | None = None) -> dict:
    return {"JupyterHub": {"authenticator_class": authenticator}, section: settings, **(extra or {})}


CASES = [
    refusal_case(
        "startup/cognito-allow-all-with-allowed-groups",
        oidc("cognito", "CognitoAuthenticator", {**COGNITO, "allowed_groups": {"students"}, "allow_all": True}),
        crypt_key=True,
        match=r"CognitoAuthenticator\.allow_all: is True, which admits every user .* allowed_groups would have no",
    ),
    refusal_case(
        "startup/cognito-standard-allowed-scopes",
        # Every Cognito login is granted 'openid': as an allow rule that admits everybody.
        oidc("cognito", "CognitoAuthenticator", {**COGNITO, "allowed_scopes": ["openid"]}),
        crypt_key=True,
        match=r"CognitoAuthenticator\.allowed_scopes: \['openid'\] are granted to every login, so this would admit",
    ),
    refusal_case(
        "startup/keycloak-allow-all-with-allowed-users",
        oidc(
            "keycloak",
            "KeycloakAuthenticator",
            KEYCLOAK,
            # Set on the base class, as oauthenticator's docs show; the error names the key as written.
            {"Authenticator": {"allowed_users": {"alice"}, "allow_all": True}},
        ),
        crypt_key=True,
        match=r"(?<!Keycloak)Authenticator\.allow_all: is True, which admits every user .* allowed_users would have",
    ),
    refusal_case(
        "startup/keycloak-no-allow-rule",
        oidc("keycloak", "KeycloakAuthenticator", KEYCLOAK),
        crypt_key=True,
        match=r"KeycloakAuthenticator\.allowed_groups: no allow rule is set, so nobody could log in",
    ),
    refusal_case(
        "startup/classroom-short-admin-password",
        {
            "JupyterHub": {"authenticator_class": "classroom-password"},
            "ClassroomSharedPasswordAuthenticator": {"allowed_users": {"alice"}, "admin_users": {"teacher"}},
        },
        env={"JUPYTERHUB_SHARED_PASSWORD": "correct horse battery", "JUPYTERHUB_SHARED_ADMIN_PASSWORD": "t" * 31},
        match=(
            r"ClassroomSharedPasswordAuthenticator\.admin_password_env \(\$JUPYTERHUB_SHARED_ADMIN_PASSWORD\): "
            r"must be at least 32 characters long, got 31"
        ),
    ),
]


@pytest.mark.parametrize("refusal", CASES, ids=[case.split("/", 1)[1] for case in CASES])
def test_refuses_to_start(background, refusal):
    log = background.refusal(refusal)
    assert "t" * 31 not in log  # the short admin password of the last case is not logged either
