"""Start-up checks: settings that would fail at login, admit nobody, or admit everybody by accident stop the
hub with one line naming the key as the operator wrote it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..configkey import config_key
from ..errors import ConfigError
from .idtoken import SUPPORTED_ALGORITHMS

if TYPE_CHECKING:
    from .oidc import OIDCAuthenticator


#: Scopes every OpenID Connect login is granted: an ``allowed_scopes`` made only of these admits everybody.
STANDARD_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


def refuse_invalid_config(authenticator: Any) -> None:
    """For ``check_allow_config`` (JupyterHub 5+ calls it while starting): ``validate_config()``, and a
    ConfigError it raises logged as the one line that says what to fix, then raised to stop the hub."""
    try:
        authenticator.validate_config()
    except ConfigError as e:
        authenticator.log.error("Invalid configuration: %s", e)
        raise


def is_private_http_ok(url: str) -> bool:
    """Plain http is acceptable only for traffic that stays on the machine or inside the cluster:
    loopback (local runs, tests) and Kubernetes service names (``keycloak``, ``keycloak.sso.svc``,
    ``keycloak.sso.svc.cluster.local``)."""
    host = (urlparse(url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        return True
    return bool(host) and ("." not in host or host.endswith((".svc", ".svc.cluster.local")))


def check_url(key: str, url: str, *, required: bool = True) -> None:
    """An absolute https URL (http only on loopback or to an in-cluster service name)."""
    if not url:
        if required:
            raise ConfigError(key, "must be set")
        return
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise ConfigError(key, f"{url!r} is not an absolute http(s) URL")
    if parsed.scheme == "http" and not is_private_http_ok(url):
        raise ConfigError(
            key,
            f"{url!r} must use https (plain http is only accepted on loopback addresses and to in-cluster "
            "service names such as http://keycloak.sso.svc:8080)",
        )


def check_oidc_settings(a: OIDCAuthenticator) -> None:
    """What every OpenID Connect setup needs (tokens kept, an ID token, verifiable signatures, URLs)."""
    key = partial(config_key, a)
    if not a.enable_auth_state:
        why = "the refresh and ID tokens are kept in the encrypted auth_state (and JUPYTERHUB_CRYPT_KEY must be set)"
        raise ConfigError(key("enable_auth_state"), f"must be True: {why}")
    if not a.client_id:
        raise ConfigError(key("client_id"), "must be set to the client id registered with the identity provider")
    if "openid" not in a.scope:
        raise ConfigError(key("scope"), f"must include 'openid' (got {list(a.scope)}): no ID token otherwise")
    bad_algs = [alg for alg in a.id_token_signing_algorithms if alg not in SUPPORTED_ALGORITHMS]
    if bad_algs or not a.id_token_signing_algorithms:
        raise ConfigError(
            key("id_token_signing_algorithms"),
            f"unsupported {bad_algs or 'empty list'}; "
            f"use asymmetric algorithms: {', '.join(sorted(SUPPORTED_ALGORITHMS))}",
        )
    if a.id_token_leeway < 0:
        raise ConfigError(key("id_token_leeway"), "must not be negative")
    if a.oauth_callback_url:
        check_url(key("oauth_callback_url"), a.oauth_callback_url)
        if not urlparse(a.oauth_callback_url).path.endswith("/oauth_callback"):
            raise ConfigError(
                key("oauth_callback_url"),
                f"{a.oauth_callback_url!r} must end with /oauth_callback (e.g. https://hub.example.com/hub/oauth_callback)",
            )
    check_url(key("post_logout_redirect_uri"), a.post_logout_redirect_uri, required=False)
    if (a.allowed_groups or a.admin_groups) and not a.manage_groups:
        raise ConfigError(key("manage_groups"), "must be True when allowed_groups or admin_groups is set")
    if a.manage_groups and not a.groups_claim:
        raise ConfigError(key("groups_claim"), "must name the claim holding the user's groups")


def check_allow_rules(a: OIDCAuthenticator) -> None:
    """Somebody can log in, and a restriction the operator wrote is not silently overridden."""
    key = partial(config_key, a)
    if a.allowed_scopes and set(a.allowed_scopes) <= STANDARD_SCOPES:
        raise ConfigError(
            key("allowed_scopes"),
            f"{sorted(a.allowed_scopes)} are granted to every login, so this would admit everybody; "
            "use allowed_groups, or allow_all = True if admitting everybody is intended",
        )
    restricting = {
        "allowed_users": a.allowed_users,
        "allowed_groups": a.allowed_groups,
        "allowed_scopes": a.allowed_scopes,
    }
    if a.allow_all:
        shadowed = [name for name, value in restricting.items() if value]
        if shadowed:
            raise ConfigError(
                key("allow_all"),
                f"is True, which admits every user the identity provider authenticates, so "
                f"{' and '.join(shadowed)} would have no effect; remove one or the other",
            )
        return
    if not (any(restricting.values()) or a.admin_users or a.admin_groups or a.allow_existing_users):
        raise ConfigError(
            key("allowed_groups"),
            "no allow rule is set, so nobody could log in: set allowed_groups (members of these groups "
            "may log in) or allowed_users, or allow_all = True to admit every user the identity provider "
            "authenticates",
        )
