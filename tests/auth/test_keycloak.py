"""KeycloakAuthenticator against a real OpenID Connect provider (Keycloak paths) and a real hub."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import AUTH_REFRESH_AGE, TOKEN_LIFETIME, hub_factory, refusal_case, start_oidc_hub, unique
from .provider import BAD_TOKENS, login, whoami

DEFAULT_REALM_ROLES = ["default-roles-hub", "offline_access", "uma_authorization"]


def keycloak_claims(name: str, groups=None, realm_roles=(), client_roles=()) -> dict:
    """Claims shaped like a Keycloak ID token's (group mapper with full path, roles mappers on)."""
    claims = {
        "preferred_username": name,
        "email": f"{name}@example.org",
        "email_verified": True,
        "typ": "ID",
        "realm_access": {"roles": DEFAULT_REALM_ROLES + list(realm_roles)},
        "resource_access": {
            "account": {"roles": ["manage-account", "view-profile"]},
            "jupyterhub": {"roles": list(client_roles)},
        },
    }
    if groups is not None:
        claims["groups"] = groups
    return claims


@hub_factory("keycloak")
def start_keycloak(provider):
    return start_oidc_hub(
        provider,
        "keycloak",
        {
            "realm_url": provider.realm_url,
            # Written as Keycloak shows them (with the leading slash); normalised at start-up.
            "allowed_groups": {"/courses/ml/students", "realm-role:hub-user"},
            "admin_groups": {"client-role:jupyterhub:admin"},
            "realm_roles_as_groups": True,
            "client_roles_as_groups": ["jupyterhub"],
            "fetch_userinfo": True,
            "id_token_leeway": 1.0,
        },
        auth_method="client_secret_post",
        name="keycloak",
    )


def new_user(keycloak, prefix: str, **claims) -> tuple[str, str]:
    name = unique(prefix)
    keycloak.provider.set_user(f"kc-{name}", keycloak_claims(name, **claims))
    return f"kc-{name}", name


def test_group_path_member_logs_in(keycloak):
    sub, name = new_user(keycloak, "ml-student", groups=["/courses/ml/students"])
    result = login(keycloak.hub, sub)
    assert result.status == 302, result.response.text[:300]
    # Endpoints come from the realm's discovery document.
    authorize = urlparse(result.authorize_url)
    assert authorize.path == "/realms/hub/protocol/openid-connect/auth"
    assert result.authorize_params["scope"] == "openid email profile"
    keycloak.hub.wait_for_log(r"Keycloak realm 'hub': issuer " + keycloak.provider.issuer)
    me = whoami(keycloak.hub, result.session)
    assert me["name"] == name
    # The path without its leading slash; Keycloak's default roles given to everybody are not groups.
    assert me["groups"] == ["courses/ml/students"]
    assert me["admin"] is False


def test_same_group_name_under_another_parent_is_refused(keycloak):
    # /courses/stats/students is not /courses/ml/students: why full paths are the default.
    sub, name = new_user(keycloak, "stats-student", groups=["/courses/stats/students"])
    result = login(keycloak.hub, sub)
    assert result.status == 403
    assert keycloak.user(name) is None


def test_realm_role_admits_a_user_without_groups(keycloak):
    sub, name = new_user(keycloak, "role-holder", groups=[], realm_roles=["hub-user"])
    result = login(keycloak.hub, sub)
    assert result.status == 302
    assert whoami(keycloak.hub, result.session)["groups"] == ["realm-role:hub-user"]


def test_client_role_grants_admin(keycloak):
    sub, name = new_user(keycloak, "kc-admin", groups=["/courses/ml/students"], client_roles=["admin"])
    result = login(keycloak.hub, sub)
    assert result.status == 302
    me = whoami(keycloak.hub, result.session)
    assert me["admin"] is True
    # Roles of other clients (account) are not turned into groups.
    assert sorted(me["groups"]) == ["client-role:jupyterhub:admin", "courses/ml/students"]


@pytest.mark.parametrize("groups", [None, ["/other"]], ids=["no-groups-claim", "unrelated-group"])
def test_user_without_allowed_group_or_role_is_refused(keycloak, groups):
    sub, name = new_user(keycloak, "kc-outsider", groups=groups)
    assert login(keycloak.hub, sub).status == 403
    assert keycloak.user(name) is None


def test_refresh_after_expiry_follows_role_changes(keycloak):
    sub, name = new_user(keycloak, "kc-refresh", groups=[], realm_roles=["hub-user"], client_roles=["admin"])
    session = login(keycloak.hub, sub).session
    assert whoami(keycloak.hub, session)["admin"] is True

    # Admin client role removed while the ID token expires: the refresh token brings the change.
    keycloak.provider.set_user(sub, keycloak_claims(name, groups=[], realm_roles=["hub-user"]))
    time.sleep(TOKEN_LIFETIME + 1.2)
    me = whoami(keycloak.hub, session)
    assert me is not None and me["admin"] is False and me["groups"] == ["realm-role:hub-user"]
    assert keycloak.provider.grants_for(keycloak.client_id)[-1] == "refresh_token"

    # The realm role that let them in goes too: logged out at the next refresh.
    keycloak.provider.set_user(sub, keycloak_claims(name, groups=[]))
    time.sleep(AUTH_REFRESH_AGE + 0.2)
    assert whoami(keycloak.hub, session) is None
    keycloak.hub.wait_for_log(rf"{name} is no longer allowed to use the hub")


def test_logout_is_rp_initiated_with_id_token_hint(keycloak):
    sub, name = new_user(keycloak, "kc-leaver", groups=["/courses/ml/students"])
    session = login(keycloak.hub, sub).session
    id_token = keycloak.user(name)["auth_state"]["id_token"]

    r = session.get(keycloak.hub.url("hub/logout"), allow_redirects=False)
    assert r.status_code == 302
    location = urlparse(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{keycloak.provider.realm_url}/protocol/openid-connect/logout"
    )
    assert {k: v[0] for k, v in parse_qs(location.query).items()} == {
        "client_id": keycloak.client_id,
        "post_logout_redirect_uri": keycloak.root_url,
        "id_token_hint": id_token,
    }
    # The provider checks the hint (signature, our client) and the registered redirect, and ends the session.
    r = session.get(r.headers["Location"], allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == keycloak.root_url
    assert keycloak.provider.logout_requests[-1]["id_token_hint"] == id_token
    assert whoami(keycloak.hub, session) is None


@pytest.mark.parametrize("mode", list(BAD_TOKENS))
def test_bad_id_token_is_refused(keycloak, mode):
    kind, words = BAD_TOKENS[mode]
    sub, name = new_user(keycloak, f"kc-target-{mode}-", groups=["/courses/ml/students"], client_roles=["admin"])
    with keycloak.provider.tamper(mode):
        result = login(keycloak.hub, sub)
    assert result.status == 403, result.response.text[:500]
    assert words in result.response.text.replace("&#39;", "'")
    keycloak.hub.wait_for_log(rf"ID token rejected \({kind}\)")
    assert keycloak.user(name) is None
    assert whoami(keycloak.hub, result.session) is None
    # Control: the same user, untampered, gets in. The refusal was the token's doing.
    assert login(keycloak.hub, sub).status == 302


@hub_factory("keycloak_last")
def start_keycloak_last(provider):
    """Groups by their last path segment, from the ID token alone (no userinfo call)."""
    return start_oidc_hub(
        provider,
        "keycloak",
        {
            "realm_url": provider.realm_url,
            "group_path": "last",
            "allowed_groups": {"students"},
            "admin_groups": {"admins"},
            "fetch_userinfo": False,
            "id_token_leeway": 1.0,
        },
        auth_method="client_secret_post",
        name="keycloak-last",
    )


def test_group_path_last_from_the_id_token_alone(keycloak_last, keycloak):
    sub, name = new_user(keycloak_last, "kc-last", groups=["/courses/ml/students", "/staff/admins"])
    result = login(keycloak_last.hub, sub)
    assert result.status == 302, result.response.text[:300]
    me = whoami(keycloak_last.hub, result.session)
    assert me["name"] == name
    assert sorted(me["groups"]) == ["admins", "students"]
    assert me["admin"] is True
    # Any parent's "students" counts with group_path 'last' (why 'full' is the default).
    other, other_name = new_user(keycloak_last, "kc-last-stats", groups=["/courses/stats/students"])
    result = login(keycloak_last.hub, other)
    assert result.status == 302
    assert whoami(keycloak_last.hub, result.session)["groups"] == ["students"]
    # The groups came from the ID token: this hub never called userinfo, while the hub with fetch_userinfo
    # on did for the same kind of login.
    assert keycloak_last.client_id not in keycloak_last.provider.userinfo_requests
    control, _ = new_user(keycloak, "kc-userinfo", groups=["/courses/ml/students"])
    assert login(keycloak.hub, control).status == 302
    assert keycloak.client_id in keycloak.provider.userinfo_requests


def test_group_path_last_refuses_users_outside_the_groups(keycloak_last):
    sub, name = new_user(keycloak_last, "kc-last-out", groups=["/courses/ml/teachers"])
    assert login(keycloak_last.hub, sub).status == 403
    assert keycloak_last.user(name) is None


NOT_A_REALM = refusal_case(
    "keycloak/not-a-realm",
    {
        "JupyterHub": {"authenticator_class": "keycloak"},
        "KeycloakAuthenticator": {
            "realm_url": "https://sso.example.com/admin/master/console",
            "client_id": "hub",
            "allowed_groups": {"students"},
        },
    },
    crypt_key=True,
    match=r"KeycloakAuthenticator\.realm_url: .* is not a realm URL",
)


@pytest.mark.parametrize("refusal", [NOT_A_REALM])
def test_realm_url_that_is_not_a_realm_refuses_to_start(background, refusal):
    background.refusal(refusal)
