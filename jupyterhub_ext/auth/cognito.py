"""Amazon Cognito user pools, configured from what the Cognito console shows.

Endpoints (https://docs.aws.amazon.com/cognito/latest/developerguide/federation-endpoints.html) live on the
user pool's *domain* (``/oauth2/authorize``, ``/oauth2/token``, ``/oauth2/userInfo``, ``/logout``); ID tokens
are issued and signed by ``https://cognito-idp.<region>.amazonaws.com/<user pool id>``, whose keys are at
``.../.well-known/jwks.json``.
"""

from __future__ import annotations

import re
from typing import Any

from tornado import web
from traitlets import Unicode, default

from ..errors import ConfigError
from .idtoken import IdTokenError
from .checks import check_url
from .handlers import provider_logout_query
from .oidc import OIDCAuthenticator

_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$")
_POOL_ID = re.compile(r"^([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d)_[0-9A-Za-z]+$")
_DOMAIN_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$")

#: Claims that are never in a Cognito ID token: what some guides use, and why logins then fail.
_NOT_IN_ID_TOKEN = {
    "login": "Cognito never sends a 'login' claim",
    "username": "'username' is only in Cognito's userInfo response; the ID token has 'cognito:username'",
}


class CognitoAuthenticator(OIDCAuthenticator):
    """Log in with an Amazon Cognito user pool (hosted UI / managed login).

    Minimal settings: ``domain``, ``user_pool_id``, ``client_id``, ``client_secret`` and an allow rule
    (``allowed_groups``, ``allowed_users`` or ``allow_all``).
    """

    domain = Unicode(
        config=True,
        help="""
        The user pool's domain, as shown under "App integration > Domain": either the Cognito domain
        prefix (``my-hub``, combined with ``region`` into ``my-hub.auth.<region>.amazoncognito.com``), a
        full host name (``my-hub.auth.eu-west-1.amazoncognito.com`` or a custom domain such as
        ``auth.example.com``), or a URL (``https://auth.example.com``).
        """,
    )

    user_pool_id = Unicode(
        config=True,
        help="""
        The user pool id, e.g. ``eu-west-1_AbCdEf123``. Determines the issuer and signing keys of ID
        tokens (and the region, when ``region`` is not set).
        """,
    )

    region = Unicode(
        config=True,
        help="""
        AWS region of the user pool, e.g. ``eu-west-1``. Default: taken from ``user_pool_id``.
        """,
    )

    @default("region")
    def _region_default(self):
        match = _POOL_ID.match(self.user_pool_id or "")
        return match.group(1) if match else ""

    @default("login_service")
    def _login_service_default(self):
        return "Amazon Cognito"

    @default("username_claim")
    def _username_claim_default(self):
        # Users sign in with their email address in most pools, and there cognito:username is an opaque
        # UUID; email is readable in the admin panel, allowed_users and home directory names. Pools where
        # people have usernames should set username_claim = "cognito:username" (immutable). See docs/auth.md.
        return "email"

    @default("groups_claim")
    def _groups_claim_default(self):
        return "cognito:groups"

    @default("scope")
    def _scope_default(self):
        # "profile" is often not enabled on Cognito app clients; email is needed for the default username.
        return ["openid", "email"]

    @default("basic_auth")
    def _basic_auth_default(self):
        # Cognito documents HTTP Basic client authentication at its token endpoint.
        return True

    def domain_url(self) -> str:
        value = (self.domain or "").strip().rstrip("/")
        if not value:
            return ""
        if "://" in value:
            return value
        if "." in value:
            return f"https://{value}"
        return f"https://{value}.auth.{self.region}.amazoncognito.com"

    @default("authorize_url")
    def _authorize_url_default(self):
        return f"{self.domain_url()}/oauth2/authorize" if self.domain else ""

    @default("token_url")
    def _token_url_default(self):
        return f"{self.domain_url()}/oauth2/token" if self.domain else ""

    @default("userdata_url")
    def _userdata_url_default(self):
        return f"{self.domain_url()}/oauth2/userInfo" if self.domain else ""

    @default("issuer")
    def _issuer_default(self):
        if not (self.user_pool_id and self.region):
            return ""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @default("jwks_url")
    def _jwks_url_default(self):
        return f"{self.issuer}/.well-known/jwks.json" if self.issuer else ""

    def validate_provider_config(self) -> None:
        key = self._key
        domain = (self.domain or "").strip().rstrip("/")
        if not domain:
            raise ConfigError(
                key("domain"),
                "must be set to the user pool's domain (prefix like 'my-hub', host name, or https:// URL)",
            )
        if "://" in domain:
            check_url(key("domain"), domain)
        elif "." in domain:
            if not _HOSTNAME.match(domain):
                raise ConfigError(key("domain"), f"{domain!r} is not a valid host name")
        elif not _DOMAIN_PREFIX.match(domain):
            raise ConfigError(key("domain"), f"{domain!r} is not a valid Cognito domain prefix")
        if self.user_pool_id and not _POOL_ID.match(self.user_pool_id):
            raise ConfigError(
                key("user_pool_id"), f"{self.user_pool_id!r} is not a user pool id like 'eu-west-1_AbCdEf123'"
            )
        if self.region and not _REGION.match(self.region):
            raise ConfigError(key("region"), f"{self.region!r} is not an AWS region like 'eu-west-1'")
        if not self.user_pool_id and not self.issuer:
            raise ConfigError(
                key("user_pool_id"),
                "must be set (e.g. 'eu-west-1_AbCdEf123'): ID tokens are verified against the pool's keys",
            )
        if not self.region and "." not in domain and "://" not in domain:
            raise ConfigError(key("region"), "must be set when domain is a prefix and user_pool_id is not set")
        check_url(key("issuer"), self.issuer)
        check_url(key("jwks_url"), self.jwks_url)
        claim = self.username_claim
        if isinstance(claim, str):
            if claim == "login" or (claim == "username" and not self.fetch_userinfo):
                raise ConfigError(
                    key("username_claim"),
                    f"{_NOT_IN_ID_TOKEN[claim]}: use 'email' (the default) or 'cognito:username'",
                )

    async def token_to_user(self, token_info) -> dict[str, Any]:
        claims = await super().token_to_user(token_info)
        # Cognito marks its tokens; an access token must never pass for an ID token.
        if claims.get("token_use", "id") != "id":
            raise IdTokenError(
                "token-use", f"the token is a Cognito {claims.get('token_use')!r} token, not an ID token"
            )
        return claims

    def provider_logout_url(self, handler: web.RequestHandler, id_token: str | None) -> str | None:
        # https://docs.aws.amazon.com/cognito/latest/developerguide/logout-endpoint.html
        return provider_logout_query(
            f"{self.domain_url()}/logout",
            {"client_id": self.client_id, "logout_uri": self.post_logout_url(handler)},
        )
