"""Configuration checks and derived settings, in-process (the real-start tests cover the wiring into jupyterhub)."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import jupyterhub
import pytest
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import HasTraits
from traitlets.config import Config

from jupyterhub_ext.auth.cognito import CognitoAuthenticator
from jupyterhub_ext.auth.keycloak import KeycloakAuthenticator, normalize_group_path
from jupyterhub_ext.auth.oidc import OIDCAuthenticator
from jupyterhub_ext.auth.shared import ClassroomSharedPasswordAuthenticator
from jupyterhub_ext.errors import ConfigError
from jupyterhub_ext.z2jh import wire_authenticator

DOCS = Path(__file__).resolve().parents[2] / "docs" / "auth.md"

COGNITO = dict(domain="my-hub", user_pool_id="eu-west-1_AbC123", client_id="cid", allowed_groups={"students"})
KEYCLOAK = dict(realm_url="https://sso.example.com/realms/hub", client_id="cid", allowed_groups={"students"})


def config_error(cls, **traits) -> ConfigError | None:
    try:
        cls(**traits).validate_config()
    except ConfigError as e:
        return e
    return None


def assert_refused(cls, key: str, pattern: str = "", **traits) -> None:
    error = config_error(cls, **traits)
    assert error is not None, f"{cls.__name__}({traits}) was accepted"
    assert error.path == f"{cls.__name__}.{key}", str(error)
    assert re.search(pattern, error.message), error.message


# ---- entry points and documentation ---------------------------------------------------------------------


def resolve(name: str):
    """What ``c.JupyterHub.authenticator_class = name`` loads, by JupyterHub's own rules."""
    from jupyterhub.app import JupyterHub

    return JupyterHub(authenticator_class=name).authenticator_class


def test_entry_points_load_our_classes():
    assert resolve("cognito") is CognitoAuthenticator
    assert resolve("keycloak") is KeycloakAuthenticator
    assert resolve("classroom-password") is ClassroomSharedPasswordAuthenticator
    assert issubclass(ClassroomSharedPasswordAuthenticator, SharedPasswordAuthenticator)
    # 'shared-password' is JupyterHub's own class; jupyterhub_ext.z2jh.setup(c) swaps ours in (below).
    assert resolve("shared-password") is SharedPasswordAuthenticator
    named = [ep.name for ep in entry_points(group="jupyterhub.authenticators") if ep.value.startswith("jupyterhub_ext")]
    assert sorted(named) == ["classroom-password", "cognito", "keycloak"]


def our_traits(cls: type[HasTraits]):
    ours = (OIDCAuthenticator, CognitoAuthenticator, KeycloakAuthenticator, ClassroomSharedPasswordAuthenticator)
    for name, trait in cls.class_traits(config=True).items():
        if trait.this_class in ours:
            yield name, trait


@pytest.mark.parametrize("cls", [CognitoAuthenticator, KeycloakAuthenticator, ClassroomSharedPasswordAuthenticator])
def test_every_setting_has_help_and_is_documented(cls):
    docs = DOCS.read_text()
    names = dict(our_traits(cls))
    assert names, cls
    for name, trait in names.items():
        assert len((trait.help or "").split()) >= 5, f"{cls.__name__}.{name} has no real help text"
        assert f"`{name}`" in docs, f"{cls.__name__}.{name} is not in docs/auth.md"


# ---- Cognito --------------------------------------------------------------------------------------------


def test_cognito_endpoints_from_the_console_settings():
    a = CognitoAuthenticator(**COGNITO)
    assert config_error(CognitoAuthenticator, **COGNITO) is None
    base = "https://my-hub.auth.eu-west-1.amazoncognito.com"
    assert (a.authorize_url, a.token_url, a.userdata_url) == (
        f"{base}/oauth2/authorize",
        f"{base}/oauth2/token",
        f"{base}/oauth2/userInfo",
    )
    assert a.region == "eu-west-1"
    assert a.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert a.jwks_url == a.issuer + "/.well-known/jwks.json"
    assert a.username_claim == "email" and a.groups_claim == "cognito:groups"
    assert a.scope == ["openid", "email"] and a.basic_auth is True
    assert a.enable_auth_state is True and a.manage_groups is True


@pytest.mark.parametrize(
    "domain,base",
    [
        ("auth.example.com", "https://auth.example.com"),
        ("my-hub.auth.us-east-1.amazoncognito.com", "https://my-hub.auth.us-east-1.amazoncognito.com"),
        ("https://auth.example.com/", "https://auth.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_cognito_custom_and_full_domains(domain, base):
    a = CognitoAuthenticator(**{**COGNITO, "domain": domain})
    assert config_error(CognitoAuthenticator, **{**COGNITO, "domain": domain}) is None
    assert (a.authorize_url, a.token_url, a.userdata_url) == (
        f"{base}/oauth2/authorize",
        f"{base}/oauth2/token",
        f"{base}/oauth2/userInfo",
    )
    assert a.provider_logout_url(fake_handler(), id_token=None) == (
        f"{base}/logout?client_id=cid&logout_uri=https%3A%2F%2Fhub.example.com%2F"
    )
    # The issuer and its keys stay the user pool's, whatever domain the hosted UI has.
    assert a.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"


def test_cognito_explicit_settings_win():
    a = CognitoAuthenticator(**COGNITO, region="us-west-2", issuer="https://issuer.example.com")
    assert a.authorize_url.startswith("https://my-hub.auth.us-west-2.amazoncognito.com/")
    assert a.jwks_url == "https://issuer.example.com/.well-known/jwks.json"


@pytest.mark.parametrize(
    "key,pattern,traits",
    [
        ("domain", "must be set", {"domain": ""}),
        ("domain", "not a valid Cognito domain prefix", {"domain": "My_Hub"}),
        ("domain", "must use https", {"domain": "http://auth.example.com"}),
        ("domain", "not a valid host name", {"domain": "auth..example.com"}),
        ("user_pool_id", "must be set", {"user_pool_id": ""}),
        ("user_pool_id", "not a user pool id", {"user_pool_id": "AbC123"}),
        ("region", "not an AWS region", {"region": "europe"}),
        ("client_id", "must be set", {"client_id": ""}),
        ("enable_auth_state", "must be True", {"enable_auth_state": False}),
        ("scope", "must include 'openid'", {"scope": ["email"]}),
        ("username_claim", "only in Cognito's userInfo", {"username_claim": "username"}),
        ("username_claim", "never sends", {"username_claim": "login"}),
        ("allowed_groups", "nobody could log in", {"allowed_groups": set()}),
        ("allow_all", "allowed_groups would have no effect", {"allow_all": True}),
        ("allowed_scopes", "admit everybody", {"allowed_groups": set(), "allowed_scopes": ["openid"]}),
        ("id_token_signing_algorithms", "unsupported", {"id_token_signing_algorithms": ["HS256"]}),
        ("id_token_signing_algorithms", "unsupported", {"id_token_signing_algorithms": []}),
        ("id_token_leeway", "negative", {"id_token_leeway": -1.0}),
        ("oauth_callback_url", "must end with /oauth_callback", {"oauth_callback_url": "https://hub.example.com/hub/"}),
        ("oauth_callback_url", "must use https", {"oauth_callback_url": "http://hub.example.com/hub/oauth_callback"}),
        ("post_logout_redirect_uri", "absolute", {"post_logout_redirect_uri": "/hub/"}),
    ],
)
def test_cognito_refusals(key, pattern, traits):
    assert_refused(CognitoAuthenticator, key, pattern, **{**COGNITO, **traits})


@pytest.mark.parametrize(
    "traits",
    [
        {"allowed_groups": set(), "allow_all": True},
        {"allowed_groups": set(), "allowed_users": {"a@example.com"}},
        {"allowed_groups": set(), "admin_users": {"a@example.com"}},
        {"allowed_groups": set(), "admin_groups": {"hub-admins"}},
        {"allowed_groups": set(), "allow_existing_users": True, "admin_users": {"a@example.com"}},
        {"allowed_groups": set(), "scope": ["openid", "email", "hub/use"], "allowed_scopes": ["hub/use"]},
        {"username_claim": "username", "fetch_userinfo": True},
        {"username_claim": "cognito:username"},
    ],
)
def test_cognito_accepted_allow_rules_and_claims(traits):
    assert config_error(CognitoAuthenticator, **{**COGNITO, **traits}) is None


def test_cognito_username_needs_a_verified_email():
    a = CognitoAuthenticator(**COGNITO)
    base = {"email": "A@Example.com", "cognito:username": "a"}
    assert a.user_info_to_username({**base, "email_verified": True}) == "A@Example.com"
    assert a.user_info_to_username({**base, "email_verified": "true"}) == "A@Example.com"  # federated users
    for verified in (False, "false", None):
        with pytest.raises(Exception, match="not verified"):
            a.user_info_to_username({**base, "email_verified": verified})
    b = CognitoAuthenticator(**COGNITO, username_claim="cognito:username")
    assert b.user_info_to_username(base) == "a"
    with pytest.raises(Exception, match="'cognito:username'"):
        b.user_info_to_username({"email": "x"})


def test_cognito_groups_claim_shapes():
    a = CognitoAuthenticator(**COGNITO)
    assert a.groups_from_claims({"cognito:groups": ["a", "b"]}) == {"a", "b"}
    assert a.groups_from_claims({"cognito:groups": "a"}) == {"a"}
    assert a.groups_from_claims({}) == set()
    assert a.groups_from_claims({"cognito:groups": [1, None, "", "c"]}) == {"c"}


def fake_handler(host="hub.example.com", protocol="https", base_url="/"):
    return SimpleNamespace(request=SimpleNamespace(host=host, protocol=protocol), base_url=base_url)


def test_cognito_logout_url():
    a = CognitoAuthenticator(**COGNITO)
    assert a.provider_logout_url(fake_handler(), id_token="ignored") == (
        "https://my-hub.auth.eu-west-1.amazoncognito.com/logout?client_id=cid"
        "&logout_uri=https%3A%2F%2Fhub.example.com%2F"
    )
    # Behind a proxy that rewrites Host, the callback URL knows the public origin.
    b = CognitoAuthenticator(**COGNITO, oauth_callback_url="https://public.example.com/jh/hub/oauth_callback")
    assert b.post_logout_url(fake_handler(host="10.0.0.1:8081", protocol="http", base_url="/jh/")) == (
        "https://public.example.com/jh/"
    )
    c = CognitoAuthenticator(**COGNITO, post_logout_redirect_uri="https://hub.example.com/bye")
    assert c.post_logout_url(fake_handler()) == "https://hub.example.com/bye"


# ---- Keycloak -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,pattern,traits",
    [
        ("realm_url", "must be set", {"realm_url": ""}),
        ("realm_url", "not a realm URL", {"realm_url": "https://sso.example.com/"}),
        ("realm_url", "not a realm URL", {"realm_url": "https://sso.example.com/realms/hub/account"}),
        ("realm_url", "must use https", {"realm_url": "http://sso.example.com/realms/hub"}),
        ("realm_url", "must use https", {"realm_url": "http://10.0.0.7:8080/realms/hub"}),
        ("allowed_groups", "nobody could log in", {"allowed_groups": set()}),
        ("allowed_groups", "group_path is 'last'", {"group_path": "last", "allowed_groups": {"/courses/ml"}}),
        ("allowed_groups", "not a group name", {"allowed_groups": {"/"}}),
        ("admin_groups", "group_path is 'last'", {"group_path": "last", "admin_groups": {"staff/admins"}}),
        ("token_url", "absolute", {"token_url": "token"}),
    ],
)
def test_keycloak_refusals(key, pattern, traits):
    assert_refused(KeycloakAuthenticator, key, pattern, **{**KEYCLOAK, **traits})


def test_keycloak_realm_and_configured_groups_are_normalised():
    a = KeycloakAuthenticator(
        **{**KEYCLOAK, "allowed_groups": {"/courses/ml/students", "staff", "realm-role:hub-user"}},
        admin_groups={"/staff/admins/"},
    )
    a.validate_config()
    assert a.realm == "hub"
    assert a.discovery_url == "https://sso.example.com/realms/hub/.well-known/openid-configuration"
    assert a.allowed_groups == {"courses/ml/students", "staff", "realm-role:hub-user"}
    assert a.admin_groups == {"staff/admins"}
    b = KeycloakAuthenticator(**{**KEYCLOAK, "group_path": "last", "allowed_groups": {"/students", "teachers"}})
    b.validate_config()
    assert b.allowed_groups == {"students", "teachers"}


@pytest.mark.parametrize(
    "url",
    [
        "http://keycloak.sso.svc:8080/realms/hub",
        "http://keycloak.sso.svc.cluster.local/realms/hub",
        "http://keycloak:8080/realms/hub",
        "http://127.0.0.1:8080/realms/hub",
    ],
)
def test_keycloak_in_cluster_http_is_accepted(url):
    assert config_error(KeycloakAuthenticator, **{**KEYCLOAK, "realm_url": url}) is None


def test_keycloak_before_17_realm_urls():
    a = KeycloakAuthenticator(**{**KEYCLOAK, "realm_url": "https://sso.example.com/auth/realms/my-realm/"})
    a.validate_config()
    assert a.realm == "my-realm"


@pytest.mark.parametrize(
    "value,full,last",
    [
        ("/courses/ml/students", "courses/ml/students", "students"),
        ("students", "students", "students"),
        ("/staff/", "staff", "staff"),
        ("//a//b", "a/b", "b"),
        ("/", "", ""),
        (" /a / b ", "a/b", "b"),
    ],
)
def test_group_path_normalisation(value, full, last):
    assert normalize_group_path(value, "full") == full
    assert normalize_group_path(value, "last") == last


def test_keycloak_groups_and_roles_from_claims():
    claims = {
        "groups": ["/courses/ml/students", "/staff", 42],
        "realm_access": {"roles": ["default-roles-hub", "offline_access", "uma_authorization", "hub-user"]},
        "resource_access": {"jupyterhub": {"roles": ["admin"]}, "account": {"roles": ["manage-account"]}},
    }
    plain = KeycloakAuthenticator(**KEYCLOAK)
    assert plain.groups_from_claims(claims) == {"courses/ml/students", "staff"}
    roles = KeycloakAuthenticator(
        **KEYCLOAK, realm_roles_as_groups=True, client_roles_as_groups=["jupyterhub"], group_path="last"
    )
    assert roles.groups_from_claims(claims) == {
        "students",
        "staff",
        "realm-role:hub-user",
        "client-role:jupyterhub:admin",
    }
    # Malformed claims are ignored rather than crashing a login.
    odd = {"groups": "/single", "realm_access": "x", "resource_access": {"jupyterhub": ["admin"]}}
    assert roles.groups_from_claims(odd) == {"single"}


def test_keycloak_logout_url():
    a = KeycloakAuthenticator(
        **KEYCLOAK, end_session_url="https://sso.example.com/realms/hub/protocol/openid-connect/logout"
    )
    url = a.provider_logout_url(fake_handler(), id_token="eyJ.a.b")
    assert url == (
        "https://sso.example.com/realms/hub/protocol/openid-connect/logout?client_id=cid"
        "&post_logout_redirect_uri=https%3A%2F%2Fhub.example.com%2F&id_token_hint=eyJ.a.b"
    )
    # Not logged in (no ID token): Keycloak then asks the user to confirm.
    assert "id_token_hint" not in a.provider_logout_url(fake_handler(), id_token=None)


# ---- shared password ------------------------------------------------------------------------------------

STUDENT = "correct horse battery"
ADMIN = "a" * 32


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SHARED_PASSWORD", raising=False)
    monkeypatch.delenv("JUPYTERHUB_SHARED_ADMIN_PASSWORD", raising=False)
    return monkeypatch


def test_shared_password_sources(clean_env, tmp_path):
    (tmp_path / "pw").write_text(STUDENT + "\r\n")
    a = ClassroomSharedPasswordAuthenticator(allowed_users={"alice"}, user_password_file=str(tmp_path / "pw"))
    a.validate_config()
    assert a.user_password == STUDENT
    clean_env.setenv("CLASS_PW", STUDENT)
    clean_env.setenv("JUPYTERHUB_SHARED_ADMIN_PASSWORD", ADMIN)
    b = ClassroomSharedPasswordAuthenticator(allowed_users={"alice"}, admin_users={"t"}, user_password_env="CLASS_PW")
    b.validate_config()
    assert (b.user_password, b.admin_password) == (STUDENT, ADMIN)


@pytest.mark.parametrize(
    "key,pattern,traits,env",
    [
        ("user_password", "no shared password", {}, {}),
        (
            "user_password_env ($JUPYTERHUB_SHARED_PASSWORD)",
            "at least 8 .* got 5",
            {},
            {"JUPYTERHUB_SHARED_PASSWORD": "short"},
        ),
        ("user_password_file", "cannot read", {"user_password_file": "/nonexistent/pw"}, {}),
        ("user_password_file", "not both", {"user_password": STUDENT, "user_password_file": "/x"}, {}),
        (
            "admin_password_env ($JUPYTERHUB_SHARED_ADMIN_PASSWORD)",
            "at least 32 .* got 31",
            {"admin_users": {"t"}},
            {"JUPYTERHUB_SHARED_PASSWORD": STUDENT, "JUPYTERHUB_SHARED_ADMIN_PASSWORD": "b" * 31},
        ),
        ("admin_password", "no admin password", {"admin_users": {"t"}}, {"JUPYTERHUB_SHARED_PASSWORD": STUDENT}),
        (
            "admin_users",
            "no admin_users",
            {},
            {"JUPYTERHUB_SHARED_PASSWORD": STUDENT, "JUPYTERHUB_SHARED_ADMIN_PASSWORD": ADMIN},
        ),
        (
            "admin_password_env ($JUPYTERHUB_SHARED_ADMIN_PASSWORD)",
            "must differ",
            {"admin_users": {"t"}},
            {"JUPYTERHUB_SHARED_PASSWORD": ADMIN, "JUPYTERHUB_SHARED_ADMIN_PASSWORD": ADMIN},
        ),
        ("allowed_users", "must list", {"allowed_users": set()}, {"JUPYTERHUB_SHARED_PASSWORD": STUDENT}),
        ("allow_all", "any number of accounts", {"allow_all": True}, {"JUPYTERHUB_SHARED_PASSWORD": STUDENT}),
    ],
)
def test_shared_password_refusals(clean_env, key, pattern, traits, env):
    for name, value in env.items():
        clean_env.setenv(name, value)
    traits = {"allowed_users": {"alice"}, **traits}
    error = config_error(ClassroomSharedPasswordAuthenticator, **traits)
    assert error is not None
    assert error.path == f"ClassroomSharedPasswordAuthenticator.{key}", error.path
    assert re.search(pattern, error.message), error.message
    for value in env.values():
        assert value not in str(error)


async def test_shared_password_names_are_normalised_before_the_admin_check(clean_env):
    a = ClassroomSharedPasswordAuthenticator(
        allowed_users={"alice"}, admin_users={"teacher"}, user_password=STUDENT, admin_password=ADMIN
    )
    assert await a.authenticate(None, {"username": "TEACHER", "password": STUDENT}) is None
    assert (await a.authenticate(None, {"username": "Teacher", "password": ADMIN}))["admin"] is True
    assert (await a.authenticate(None, {"username": "Alice", "password": STUDENT}))["name"] == "alice"
    # Why the override exists: JupyterHub 5.x's own class lets 'TEACHER' in with the students' password.
    upstream = SharedPasswordAuthenticator(admin_users={"teacher"}, user_password=STUDENT, admin_password=ADMIN)
    leaked = await upstream.authenticate(None, {"username": "TEACHER", "password": STUDENT})
    if jupyterhub.version_info < (6,):
        assert leaked == {"name": "TEACHER", "admin": False, "groups": []}
    else:
        assert leaked is None


# ---- JupyterHub's own shared-password mode, through z2jh.setup ------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "shared-password",
        "Shared-Password",  # JupyterHub looks entry point names up case-insensitively
        SharedPasswordAuthenticator,
        "jupyterhub.authenticators.shared.SharedPasswordAuthenticator",
    ],
    ids=["entry-point", "entry-point-case", "class", "module-path"],
)
def test_z2jh_puts_our_checks_on_jupyterhubs_shared_password(value):
    c = Config()
    c.JupyterHub.authenticator_class = value
    wire_authenticator(c)
    assert c.JupyterHub.authenticator_class is ClassroomSharedPasswordAuthenticator


@pytest.mark.parametrize(
    "value",
    [
        "classroom-password",
        ClassroomSharedPasswordAuthenticator,
        "cognito",
        "dummy",
        "no.such.Authenticator",
    ],
)
def test_z2jh_leaves_other_authenticators_alone(value):
    c = Config()
    c.JupyterHub.authenticator_class = value
    wire_authenticator(c)
    assert c.JupyterHub.authenticator_class == value
    empty = Config()
    wire_authenticator(empty)
    assert "authenticator_class" not in empty.JupyterHub


def upstream_config(**settings) -> Config:
    c = Config()
    for name, value in settings.items():
        section, trait = name.split("__")
        c[section][trait] = value
    return c


@pytest.mark.parametrize(
    "settings,path,pattern",
    [
        (
            {"SharedPasswordAuthenticator__user_password": "short12"},
            "SharedPasswordAuthenticator.user_password",
            "at least 8 .* got 7",
        ),
        ({}, "SharedPasswordAuthenticator.user_password", "no shared password"),
        (
            {
                "SharedPasswordAuthenticator__user_password": STUDENT,
                "SharedPasswordAuthenticator__admin_password": "x" * 31,
            },
            "SharedPasswordAuthenticator.admin_password",
            "at least 32 .* got 31",
        ),
        (
            {"SharedPasswordAuthenticator__user_password": ADMIN, "SharedPasswordAuthenticator__admin_password": ADMIN},
            "SharedPasswordAuthenticator.admin_password",
            "must differ",
        ),
        (
            {"SharedPasswordAuthenticator__user_password": STUDENT, "Authenticator__allow_all": True},
            "Authenticator.allow_all",
            "any number of accounts",
        ),
        (
            {
                "SharedPasswordAuthenticator__user_password": STUDENT,
                "SharedPasswordAuthenticator__allowed_users": set(),
            },
            "SharedPasswordAuthenticator.allowed_users",
            "must list",
        ),
        (
            {
                "SharedPasswordAuthenticator__user_password": STUDENT,
                "SharedPasswordAuthenticator__manage_groups": True,
                "SharedPasswordAuthenticator__password_groups": {"short": ["ta"]},
            },
            "SharedPasswordAuthenticator.password_groups",
            "at least 8 .* got 5",
        ),
    ],
    ids=["short", "none", "short-admin", "same-admin", "allow-all", "no-class-list", "short-group-password"],
)
def test_shared_password_config_gets_our_checks_naming_its_keys(clean_env, settings, path, pattern):
    """A config written for JupyterHub's SharedPasswordAuthenticator, loaded into ours (what z2jh.setup does)."""
    c = upstream_config(**{"SharedPasswordAuthenticator__allowed_users": {"alice"}, **settings})
    # JupyterHub's own validators would raise while loading, naming our class; ours wait for validate_config.
    a = ClassroomSharedPasswordAuthenticator(config=c)
    with pytest.raises(ConfigError) as raised:
        a.validate_config()
    assert raised.value.path == path, str(raised.value)
    assert re.search(pattern, raised.value.message), raised.value.message
    for value in (STUDENT, ADMIN, "short12", "x" * 31):
        assert value not in str(raised.value)


def test_shared_password_config_from_upstream_settings_works(clean_env, tmp_path):
    (tmp_path / "admin").write_text(ADMIN + "\n")
    c = upstream_config(
        SharedPasswordAuthenticator__allowed_users={"alice"},
        SharedPasswordAuthenticator__admin_users={"teacher"},
        SharedPasswordAuthenticator__user_password=STUDENT,
        SharedPasswordAuthenticator__admin_password_file=str(tmp_path / "admin"),  # our trait, their section
    )
    a = ClassroomSharedPasswordAuthenticator(config=c)
    a.validate_config()
    assert (a.user_password, a.admin_password) == (STUDENT, ADMIN)


def test_errors_name_the_section_the_setting_was_written_in():
    c = Config()
    c.CognitoAuthenticator.update(COGNITO)
    c.Authenticator.allow_all = True  # where oauthenticator's docs put it
    with pytest.raises(ConfigError) as raised:
        CognitoAuthenticator(config=c).validate_config()
    assert raised.value.path == "Authenticator.allow_all"
    c.CognitoAuthenticator.allow_all = True  # the more specific section wins, in traitlets and in the message
    with pytest.raises(ConfigError) as raised:
        CognitoAuthenticator(config=c).validate_config()
    assert raised.value.path == "CognitoAuthenticator.allow_all"
