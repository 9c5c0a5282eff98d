"""What the Cognito and Keycloak authenticators share: an OpenID Connect client on top of GenericOAuthenticator.

Login and the auth model are oauthenticator's own flow. What differs from a plain ``GenericOAuthenticator``
(each one is a problem seen in real deployments):

* Claims come from the ID token, which is verified (JWKS signature, issuer, audience, expiry, nonce)
  instead of decoded blindly. This happens in one place, ``token_to_user``: the hook oauthenticator calls
  to turn a token response into the user's information, at login and at refresh alike.
* ``refresh_user`` exchanges the refresh token for fresh tokens, so it works after the ID token expired
  (oauthenticator#793 raises a 500 there) and sees group changes made at the provider. A user who is no
  longer allowed is logged out; admin status follows ``admin_groups`` both ways. A provider that cannot be
  reached keeps sessions (upstream logs everybody out).
* Logging out of the hub also ends the session at the provider.
* The hub refuses to start with a setup that would admit nobody, or everybody by accident.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Float, List, Unicode, default

from ..configkey import config_key
from .checks import check_allow_rules, check_oidc_settings, refuse_invalid_config
from .handlers import OIDCLoginHandler, OIDCLogoutHandler, login_nonce, unavailable_as_503
from .idtoken import IdTokenError, JWKSCache, ProviderUnavailable, verify_id_token
from .refresh import refresh_auth_model


@dataclass(frozen=True)
class _Expected:
    """What the ID token read by ``token_to_user`` must match, beyond what every ID token must."""

    nonce: str | None = None  # a login: the nonce sent with its authorization request
    known_id_token: str | None = None  # a refresh: the token verified before, whose expiry no longer matters


# Set around oauthenticator's flow, which calls token_to_user with the token response only.
_expected: ContextVar[_Expected] = ContextVar("jupyterhub_ext_oidc_expected", default=_Expected())


@contextmanager
def _expecting(**expected: str | None) -> Iterator[None]:
    reset = _expected.set(_Expected(**expected))
    try:
        yield
    finally:
        _expected.reset(reset)


class OIDCAuthenticator(GenericOAuthenticator):
    """Base class: an OpenID Connect relying party with verified ID tokens. Not meant to be used directly."""

    login_handler = OIDCLoginHandler
    logout_handler = OIDCLogoutHandler

    # ---- settings -------------------------------------------------------------------------------------

    issuer = Unicode(
        config=True,
        help="""
        The issuer (``iss`` claim) ID tokens must carry, exactly. Derived from the provider settings when
        empty; set it only when the provider's issuer differs from what is derived.
        """,
    )

    jwks_url = Unicode(
        config=True,
        help="""
        URL of the provider's JSON Web Key Set, used to check ID token signatures. Derived from the
        provider settings when empty.
        """,
    )

    id_token_signing_algorithms = List(
        Unicode(),
        default_value=["RS256"],
        config=True,
        help="""
        Signature algorithms accepted on ID tokens. Asymmetric algorithms only (RS*, PS*, ES*, EdDSA):
        keys come from the provider's JWKS.
        """,
    )

    id_token_leeway = Float(
        10.0,
        config=True,
        help="""
        Seconds of clock skew tolerated between the hub and the provider when checking the ID token's
        ``exp``, ``iat`` and ``nbf`` claims.
        """,
    )

    jwks_cache_seconds = Float(
        3600.0,
        config=True,
        help="""
        How long the provider's signing keys are cached. A token signed with an unknown key id triggers
        an early re-fetch (at most once a minute), so key rotation needs no hub restart.
        """,
    )

    groups_claim = Unicode(
        config=True,
        help="""
        The ID token claim holding the user's groups, a list of strings. Used for ``allowed_groups`` and
        ``admin_groups``, and synced to JupyterHub groups (``manage_groups`` is on by default).
        """,
    )

    fetch_userinfo = Bool(
        False,
        config=True,
        help="""
        Also call the provider's userinfo endpoint at login and refresh, and add its claims to those of
        the ID token (ID token claims win on conflicts; ``sub`` must match). Only needed when a claim you
        use (username, groups) is released to userinfo but not to the ID token.
        """,
    )

    require_verified_email = Bool(
        True,
        config=True,
        help="""
        When the username comes from the ``email`` claim, refuse logins whose ``email_verified`` claim is
        not true. Without this, anyone able to sign up with someone else's (unverified) address would log
        in as them.
        """,
    )

    logout_from_provider = Bool(
        True,
        config=True,
        help="""
        Logging out of the hub also ends the session at the identity provider (otherwise the next login
        goes through silently as the same person, which is wrong on shared computers). Ignored when
        ``logout_redirect_url`` is set: that static URL wins.
        """,
    )

    post_logout_redirect_uri = Unicode(
        config=True,
        help="""
        Where the provider sends the browser after logging out. Must be registered with the provider
        (Cognito: "Allowed sign-out URLs"; Keycloak: "Valid post logout redirect URIs"). Default: the
        hub's own root URL, e.g. ``https://hub.example.com/``, taken from ``oauth_callback_url`` when set,
        else from the request.
        """,
    )

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        # Refresh and provider logout need the refresh and ID tokens, kept encrypted in auth_state.
        return True

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        return self._groups_from_auth_state

    @default("scope")
    def _scope_default(self):
        return ["openid", "email", "profile"]

    @default("userdata_from_id_token")
    def _userdata_from_id_token_default(self):
        # We never use OAuthenticator's unverified ID token decoding; see token_to_user.
        return False

    # ---- hooks for subclasses -------------------------------------------------------------------------

    async def resolve_endpoints(self) -> None:
        """Make sure authorize/token/userinfo/JWKS/issuer are known (Keycloak fetches its discovery document)."""

    def provider_logout_url(self, handler: web.RequestHandler, id_token: str | None) -> str | None:
        """The URL that ends the provider session, or None when the provider has none."""
        return None

    def groups_from_claims(self, claims: Mapping[str, Any]) -> set[str]:
        """The user's group names from their (verified) claims."""
        return set(_string_list(claims.get(self.groups_claim)))

    def validate_provider_config(self) -> None:
        """Subclass checks; raise ConfigError naming the key."""

    # ---- start-up validation --------------------------------------------------------------------------

    def _key(self, trait: str) -> str:
        return config_key(self, trait)

    def check_allow_config(self):
        """Called by JupyterHub (5.0+) while starting: refuse to start with a setup that cannot work."""
        refuse_invalid_config(self)
        super().check_allow_config()
        self._start_endpoint_resolution()

    def validate_config(self) -> None:
        """Raise ConfigError for settings that would fail at login, admit nobody, or admit everybody."""
        check_oidc_settings(self)
        self.validate_provider_config()
        check_allow_rules(self)

    def _start_endpoint_resolution(self) -> None:
        """Resolve endpoints in the background at start-up: a provider that is down must not stop the hub."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def resolve():
            try:
                await self.resolve_endpoints()
            except ProviderUnavailable as e:
                self.log.warning("Identity provider not reachable at start-up (will retry at login): %s", e)

        self._startup_resolution = loop.create_task(resolve())

    # ---- HTTP -----------------------------------------------------------------------------------------

    async def fetch_json(self, url: str) -> Any:
        try:
            return await self.httpfetch(
                url,
                label="fetching from the identity provider",
                method="GET",
                headers={"Accept": "application/json", "User-Agent": "JupyterHub"},
                validate_cert=self.validate_server_cert,
            )
        except (HTTPClientError, OSError, ValueError) as e:
            raise ProviderUnavailable(f"GET {url} failed: {e}") from e

    _jwks: JWKSCache | None = None

    def jwks(self) -> JWKSCache:
        if self._jwks is None or self._jwks.url != self.jwks_url:
            self._jwks = JWKSCache(self.jwks_url, self.fetch_json, ttl=self.jwks_cache_seconds)
        return self._jwks

    # ---- the one place claims come from ---------------------------------------------------------------

    async def token_to_user(self, token_info):
        """OAuthenticator's hook from a token response to the user's information: the claims of its ID
        token, verified (plus the userinfo response's with ``fetch_userinfo``).

        Raises IdTokenError (the token must not be accepted) or ProviderUnavailable.
        """
        await self.resolve_endpoints()
        expected = _expected.get()
        id_token = token_info.get("id_token")
        if not id_token:
            raise IdTokenError("missing", "the token response has no id_token (is 'openid' in the scope?)")
        claims = await verify_id_token(
            id_token,
            self.jwks(),
            issuer=self.issuer,
            client_id=self.client_id,
            algorithms=self.id_token_signing_algorithms,
            leeway=self.id_token_leeway,
            nonce=expected.nonce,
            verify_exp=id_token != expected.known_id_token,
        )
        if self.fetch_userinfo:
            try:
                userinfo = await super().token_to_user(token_info)
            except (HTTPClientError, OSError) as e:
                raise ProviderUnavailable(f"the userinfo request failed: {e}") from e
            if not isinstance(userinfo, Mapping) or userinfo.get("sub") != claims.get("sub"):
                raise IdTokenError("userinfo", "the userinfo response is about a different subject")
            claims = {**userinfo, **claims}
        return claims

    def user_info_to_username(self, user_info):
        claim = self.username_claim
        if claim == "email" and self.require_verified_email:
            verified = user_info.get("email_verified")
            # Some providers (Cognito with federated users) send the string "true".
            if verified is not True and str(verified).lower() != "true":
                raise web.HTTPError(403, "Your email address is not verified with the identity provider.")
        username = claim(user_info) if callable(claim) else user_info.get(claim)
        if not username or not isinstance(username, str):
            # Name the claim and what was there: keys only, values are personal data (upstream logs them).
            claims = ", ".join(sorted(user_info))
            self.log.error("No usable %r claim to take the username from; claims present: %s", claim, claims)
            key = self._key("username_claim")
            raise web.HTTPError(500, f"The identity provider sent no {claim!r} claim; check {key}")
        return username

    def _groups_from_auth_state(self, auth_state: Mapping[str, Any]) -> set[str]:
        return self.groups_from_claims(auth_state.get(self.user_auth_state_key) or {})

    async def auth_model_from_tokens(
        self, token_info: dict[str, Any], *, nonce: str | None = None, previous: Mapping | None = None
    ) -> dict[str, Any]:
        """OAuthenticator's auth model (name, admin, groups, auth_state) for a token response.

        ``nonce``: the one the login's ID token must carry. ``previous``: the auth_state being refreshed; a
        refresh response without an ID token (allowed by OIDC) keeps the previously verified one.
        """
        known = (previous or {}).get("id_token")
        if known and not token_info.get("id_token"):
            token_info = {**token_info, "id_token": known}
        with _expecting(nonce=nonce, known_id_token=known):
            return await self._token_to_auth_model(token_info)

    # ---- login ----------------------------------------------------------------------------------------

    async def authenticate(self, handler, data=None, **kwargs):
        """OAuthenticator's login, its ID token bound to this login's nonce; refusals explained."""
        state = handler.get_argument("state", None) if handler is not None else None
        if not state:
            raise web.HTTPError(400, "OAuth state missing: please start the login again")
        try:
            with unavailable_as_503(self.log, "Login failed"):
                await self.resolve_endpoints()
                with _expecting(nonce=login_nonce(handler, state)):
                    return await super().authenticate(handler, data, **kwargs)
        except IdTokenError as e:
            self.log.warning("Login refused, ID token rejected (%s): %s", e.kind, e.detail)
            message = f"Login refused: the identity provider's ID token was rejected ({e.detail})."
            raise web.HTTPError(403, message) from None

    # ---- refresh --------------------------------------------------------------------------------------

    async def refresh_user(self, user, handler=None, **kwargs):
        """Re-check the user with fresh tokens from the provider (see refresh.py for what is decided how).

        ``refresh_user_hook`` still comes first. Returns True, False or a new auth model, as JupyterHub expects.
        """
        if not self.enable_auth_state:
            return True
        auth_state = await user.get_auth_state()
        if self.refresh_user_hook is not None:
            refreshed = await self._call_refresh_user_hook(user, auth_state)
            if refreshed is not None:
                return refreshed
        if not auth_state:
            self.log.info("No auth_state for %s: a new login is required", user.name)
            return False
        return await refresh_auth_model(self, user, auth_state, handler)

    # ---- logout ---------------------------------------------------------------------------------------

    def post_logout_url(self, handler: web.RequestHandler) -> str:
        if self.post_logout_redirect_uri:
            return self.post_logout_redirect_uri
        if self.oauth_callback_url:
            parsed = urlparse(self.oauth_callback_url)
            origin = f"{parsed.scheme}://{parsed.netloc}"
        else:
            origin = f"{handler.request.protocol}://{handler.request.host}"
        return origin + handler.base_url


def _string_list(value: Any) -> list[str]:
    """A claim that should be a list of strings; tolerate a single string, ignore anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        return [v for v in value if isinstance(v, str) and v]
    return []


__all__ = ["IdTokenError", "OIDCAuthenticator", "ProviderUnavailable"]
