"""What the Cognito and Keycloak authenticators share: an OpenID Connect client on top of GenericOAuthenticator.

Differences from a plain ``GenericOAuthenticator`` (each one is a problem seen in real deployments):

* Claims come from the ID token, which is verified (JWKS signature, issuer, audience, expiry, nonce)
  instead of decoded blindly.
* ``refresh_user`` exchanges the refresh token for fresh tokens, so it works after the ID token expired
  (oauthenticator#793 raises a 500 there) and sees group changes made at the provider. A user who is no
  longer allowed is logged out; admin status follows ``admin_groups`` both ways.
* Logging out of the hub also ends the session at the provider.
* The hub refuses to start with a setup that would admit nobody, or everybody by accident.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable, Mapping
from inspect import isawaitable
from typing import Any
from urllib.parse import urlencode, urlparse

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Float, List, Unicode, default

from ..errors import ConfigError
from ..configkey import config_key
from .idtoken import (
    SUPPORTED_ALGORITHMS,
    IdTokenError,
    JWKSCache,
    ProviderUnavailable,
    nonce_for_state,
    verify_id_token,
)

#: Scopes every OpenID Connect login is granted: an ``allowed_scopes`` made only of these admits everybody.
STANDARD_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


def _decode_state(b64_state: str | bytes | None) -> dict[str, Any]:
    """Read OAuthenticator's state (urlsafe base64 of JSON). Tolerant: returns {} when unreadable."""
    if not b64_state:
        return {}
    try:
        if isinstance(b64_state, str):
            b64_state = b64_state.encode("ascii")
        value = json.loads(base64.urlsafe_b64decode(b64_state).decode("utf8"))
    except (ValueError, UnicodeError):
        return {}
    return value if isinstance(value, dict) else {}


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


class OIDCLoginHandler(OAuthLoginHandler):
    """Adds a nonce to the authorization request, and resolves endpoints before redirecting."""

    async def get(self):
        try:
            await self.authenticator.resolve_endpoints()
        except ProviderUnavailable as e:
            self.log.error("Cannot start a login: %s", e)
            raise web.HTTPError(503, "The identity provider cannot be reached. Please try again shortly.") from None
        result = super().get()
        if isawaitable(result):  # OAuthenticator may make get() async one day
            await result

    def authorize_redirect(self, *args, extra_params=None, **kwargs):
        extra_params = dict(extra_params or {})
        state_id = _decode_state(extra_params.get("state")).get("state_id")
        if state_id:
            extra_params["nonce"] = nonce_for_state(self.settings["cookie_secret"], state_id)
        return super().authorize_redirect(*args, extra_params=extra_params, **kwargs)


class OIDCLogoutHandler(OAuthLogoutHandler):
    """Logs out of the hub, then sends the browser to the provider to end the session there too."""

    _provider_logout_url: str | None = None

    async def handle_logout(self):
        await super().handle_logout()
        authenticator = self.authenticator
        if not authenticator.logout_from_provider or authenticator.logout_redirect_url:
            return
        # current_user is still the user being logged out: the cookie is cleared in the response only.
        user = self.current_user
        id_token = None
        if user is not None:
            auth_state = await user.get_auth_state()
            id_token = (auth_state or {}).get("id_token")
        try:
            await authenticator.resolve_endpoints()
            self._provider_logout_url = authenticator.provider_logout_url(self, id_token=id_token)
        except ProviderUnavailable as e:
            # The hub session is gone either way; say so rather than fail the logout.
            self.log.warning("Logged out of the hub only, the identity provider is unavailable: %s", e)

    async def render_logout_page(self):
        if self._provider_logout_url:
            self.redirect(self._provider_logout_url)
            return
        return await super().render_logout_page()


class OIDCAuthenticator(GenericOAuthenticator):
    """Base class: an OpenID Connect relying party with verified ID tokens. Not meant to be used directly."""

    login_handler = OIDCLoginHandler
    callback_handler = OAuthCallbackHandler
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
        # We never use OAuthenticator's unverified ID token decoding; see claims_from_tokens.
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
        try:
            self.validate_config()
        except ConfigError as e:
            self.log.error("Invalid configuration: %s", e)
            raise
        super().check_allow_config()
        self._start_endpoint_resolution()

    def validate_config(self) -> None:
        """Raise ConfigError for settings that would fail at login, admit nobody, or admit everybody."""
        key = self._key
        if not self.enable_auth_state:
            raise ConfigError(
                key("enable_auth_state"),
                "must be True: the refresh and ID tokens are kept in the encrypted auth_state "
                "(and JUPYTERHUB_CRYPT_KEY must be set)",
            )
        if not self.client_id:
            raise ConfigError(key("client_id"), "must be set to the client id registered with the identity provider")
        if "openid" not in self.scope:
            raise ConfigError(key("scope"), f"must include 'openid' (got {list(self.scope)}): no ID token otherwise")
        bad_algs = [a for a in self.id_token_signing_algorithms if a not in SUPPORTED_ALGORITHMS]
        if bad_algs or not self.id_token_signing_algorithms:
            raise ConfigError(
                key("id_token_signing_algorithms"),
                f"unsupported {bad_algs or 'empty list'}; "
                f"use asymmetric algorithms: {', '.join(sorted(SUPPORTED_ALGORITHMS))}",
            )
        if self.id_token_leeway < 0:
            raise ConfigError(key("id_token_leeway"), "must not be negative")
        if self.oauth_callback_url:
            check_url(key("oauth_callback_url"), self.oauth_callback_url)
            if not urlparse(self.oauth_callback_url).path.endswith("/oauth_callback"):
                raise ConfigError(
                    key("oauth_callback_url"),
                    f"{self.oauth_callback_url!r} must end with /oauth_callback (e.g. https://hub.example.com/hub/oauth_callback)",
                )
        check_url(key("post_logout_redirect_uri"), self.post_logout_redirect_uri, required=False)
        if (self.allowed_groups or self.admin_groups) and not self.manage_groups:
            raise ConfigError(key("manage_groups"), "must be True when allowed_groups or admin_groups is set")
        if self.manage_groups and not self.groups_claim:
            raise ConfigError(key("groups_claim"), "must name the claim holding the user's groups")
        self.validate_provider_config()
        self._validate_allow_rules()

    def _validate_allow_rules(self) -> None:
        key = self._key
        if self.allowed_scopes and set(self.allowed_scopes) <= STANDARD_SCOPES:
            raise ConfigError(
                key("allowed_scopes"),
                f"{sorted(self.allowed_scopes)} are granted to every login, so this would admit everybody; "
                "use allowed_groups, or allow_all = True if admitting everybody is intended",
            )
        restricting = {
            "allowed_users": self.allowed_users,
            "allowed_groups": self.allowed_groups,
            "allowed_scopes": self.allowed_scopes,
        }
        if self.allow_all:
            shadowed = [name for name, value in restricting.items() if value]
            if shadowed:
                raise ConfigError(
                    key("allow_all"),
                    f"is True, which admits every user the identity provider authenticates, so "
                    f"{' and '.join(shadowed)} would have no effect; remove one or the other",
                )
            return
        admits_someone = any(restricting.values()) or self.admin_users or self.admin_groups or self.allow_existing_users
        if not admits_someone:
            raise ConfigError(
                key("allowed_groups"),
                "no allow rule is set, so nobody could log in: set allowed_groups (members of these groups "
                "may log in) or allowed_users, or allow_all = True to admit every user the identity provider "
                "authenticates",
            )

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

    # ---- tokens to user model -------------------------------------------------------------------------

    async def claims_from_tokens(
        self, token_info: Mapping[str, Any], *, nonce: str | None = None, previous: Mapping | None = None
    ) -> dict[str, Any]:
        """Verified claims of the token response's ID token, plus userinfo claims if enabled.

        ``previous`` is the auth_state being refreshed: a refresh response without an ID token (allowed by
        OIDC) keeps the previously verified one.
        """
        await self.resolve_endpoints()
        id_token = token_info.get("id_token")
        verify_exp = True
        if not id_token and previous and previous.get("id_token"):
            id_token, verify_exp = previous["id_token"], False
        if not id_token:
            raise IdTokenError("missing", "the token response has no id_token (is 'openid' in the scope?)")
        claims = await verify_id_token(
            id_token,
            self.jwks(),
            issuer=self.issuer,
            client_id=self.client_id,
            algorithms=self.id_token_signing_algorithms,
            leeway=self.id_token_leeway,
            nonce=nonce,
            verify_exp=verify_exp,
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

    async def token_to_user(self, token_info):
        """OAuthenticator API: the user's claims, from the verified ID token."""
        try:
            return await self.claims_from_tokens(token_info)
        except IdTokenError as e:
            raise web.HTTPError(403, f"The identity provider's ID token was refused: {e.detail}") from None

    def user_info_to_username(self, user_info):
        claim = self.username_claim
        if callable(claim):
            username = claim(user_info)
        else:
            username = user_info.get(claim)
            if claim == "email" and self.require_verified_email:
                verified = user_info.get("email_verified")
                # Some providers (Cognito with federated users) send the string "true".
                if verified is not True and str(verified).lower() != "true":
                    raise web.HTTPError(403, "Your email address is not verified with the identity provider.")
        if not username or not isinstance(username, str):
            # Name the claim and what was there (keys only: values are personal data).
            self.log.error(
                "No usable %r claim to take the username from; claims present: %s",
                claim,
                ", ".join(sorted(user_info)),
            )
            raise web.HTTPError(
                500, f"The identity provider sent no {claim!r} claim; check {self._key('username_claim')}"
            )
        return username

    def _groups_from_auth_state(self, auth_state: Mapping[str, Any]) -> set[str]:
        return self.groups_from_claims(auth_state.get(self.user_auth_state_key) or {})

    async def auth_model_from_tokens(
        self, token_info: dict[str, Any], *, nonce: str | None = None, previous: Mapping | None = None
    ) -> dict[str, Any]:
        """The auth model (name, admin, groups, auth_state) for a token response.

        The same steps as OAuthenticator's private ``_token_to_auth_model``, through its public hooks
        (``build_auth_state_dict``, ``modify_auth_state_hook``, ``update_auth_model``, ``get_user_groups``).
        """
        claims = await self.claims_from_tokens(token_info, nonce=nonce, previous=previous)
        username = self.normalize_username(self.user_info_to_username(claims))
        if not token_info.get("id_token") and previous:
            token_info = {**token_info, "id_token": previous.get("id_token")}
        auth_state = self.build_auth_state_dict(token_info, claims)
        if isawaitable(auth_state):
            auth_state = await auth_state
        if self.modify_auth_state_hook is not None:
            auth_state = await self._call_modify_auth_state_hook(auth_state)
        auth_model = {
            "name": username,
            "admin": True if username in self.admin_users else None,
            "auth_state": auth_state,
        }
        auth_model = await self.update_auth_model(auth_model)
        if self.manage_groups:
            groups = self.get_user_groups(auth_model["auth_state"])
            if isawaitable(groups):
                groups = await groups
            groups = set(groups)
            auth_model["groups"] = sorted(groups)
            if self.admin_groups and not auth_model["admin"]:
                # False (not None) so that JupyterHub revokes admin when the admin group is dropped.
                auth_model["admin"] = bool(groups & self.admin_groups)
        return auth_model

    def _expected_nonce(self, handler) -> str | None:
        get_state = getattr(handler, "get_state_cookie", None)
        state_id = _decode_state(get_state() if get_state else None).get("state_id")
        if not state_id:
            return None
        return nonce_for_state(handler.settings["cookie_secret"], state_id)

    async def authenticate(self, handler, data=None, **kwargs):
        try:
            await self.resolve_endpoints()
        except ProviderUnavailable as e:
            self.log.error("Login failed: %s", e)
            raise web.HTTPError(503, "The identity provider cannot be reached. Please try again shortly.") from None
        params = self.build_access_tokens_request_params(handler, data)
        token_info = await self.get_token_info(handler, params)
        nonce = self._expected_nonce(handler)
        if nonce is None:
            raise web.HTTPError(400, "OAuth state missing: please start the login again")
        try:
            return await self.auth_model_from_tokens(token_info, nonce=nonce)
        except ProviderUnavailable as e:
            self.log.error("Login failed: %s", e)
            raise web.HTTPError(503, "The identity provider cannot be reached. Please try again shortly.") from None
        except IdTokenError as e:
            self.log.warning("Login refused, ID token rejected (%s): %s", e.kind, e.detail)
            raise web.HTTPError(
                403, f"Login refused: the identity provider's ID token was rejected ({e.detail})."
            ) from None

    # ---- refresh --------------------------------------------------------------------------------------

    async def refresh_user(self, user, handler=None, **kwargs):
        """Re-check the user with fresh tokens from the provider.

        With a refresh token (the normal case) it is exchanged for new tokens every ``auth_refresh_age``
        seconds, so the check sees group changes made at the provider, and works after the ID token
        expired. Returns False (log in again) when the provider refuses the refresh, the new ID token
        does not verify, or the user is no longer allowed; otherwise the new auth model, whose ``admin``
        and ``groups`` JupyterHub applies.
        """
        if self.refresh_user_hook is not None:
            auth_state = await user.get_auth_state()
            refreshed = await self._call_refresh_user_hook(user, auth_state)
            if refreshed is not None:
                return refreshed
        if not self.enable_auth_state:
            return True
        auth_state = await user.get_auth_state()
        if not auth_state:
            self.log.info("No auth_state for %s: a new login is required", user.name)
            return False
        try:
            await self.resolve_endpoints()
        except ProviderUnavailable as e:
            # Do not log everybody out while the provider has a hiccup: keep the session, retry later.
            self.log.warning("Could not refresh %s, keeping the session for now: %s", user.name, e)
            return True

        refresh_token = auth_state.get("refresh_token")
        if not refresh_token:
            # Nothing to ask the provider with: the session lasts as long as the ID token.
            try:
                await self.claims_from_tokens(auth_state.get("token_response") or {})
            except IdTokenError as e:
                self.log.info("Session of %s ended (%s) and there is no refresh token", user.name, e.detail)
                return False
            except ProviderUnavailable as e:
                self.log.warning("Could not check %s, keeping the session for now: %s", user.name, e)
            return True

        try:
            token_info = await self.get_token_info(handler, self.build_refresh_token_request_params(refresh_token))
        except HTTPClientError as e:
            if e.code is not None and 400 <= e.code < 500:
                self.log.info(
                    "The provider refused to refresh %s (HTTP %s): a new login is required", user.name, e.code
                )
                return False
            self.log.warning("Could not refresh %s, keeping the session for now: %s", user.name, e)
            return True
        except OSError as e:  # connection refused, DNS, TLS: the provider is unreachable, not refusing
            self.log.warning("Could not refresh %s, keeping the session for now: %s", user.name, e)
            return True
        except web.HTTPError as e:
            self.log.info("The provider refused to refresh %s (%s): a new login is required", user.name, e.log_message)
            return False
        if not token_info.get("refresh_token"):
            token_info["refresh_token"] = refresh_token  # not rotated (Cognito's default): keep it
        try:
            auth_model = await self.auth_model_from_tokens(token_info, previous=auth_state)
        except IdTokenError as e:
            self.log.warning("Refreshed ID token for %s rejected (%s): %s", user.name, e.kind, e.detail)
            return False
        except web.HTTPError as e:
            self.log.warning("Refresh for %s failed: %s", user.name, e.log_message)
            return False
        except ProviderUnavailable as e:
            self.log.warning("Could not verify the refreshed tokens of %s, keeping the session: %s", user.name, e)
            return True

        if auth_model["name"] != user.name:
            self.log.warning(
                "Refresh for %s returned a different username (%s): a new login is required",
                user.name,
                auth_model["name"],
            )
            return False
        if not await self._still_allowed(auth_model):
            self.log.info("%s is no longer allowed to use the hub: logged out", user.name)
            return False
        self.log.debug("Refreshed auth for %s", user.name)
        return auth_model

    async def _still_allowed(self, auth_model: dict[str, Any]) -> bool:
        name = auth_model["name"]
        not_blocked = self.check_blocked_users(name, auth_model)
        if isawaitable(not_blocked):
            not_blocked = await not_blocked
        if not not_blocked:
            return False
        allowed = self.check_allowed(name, auth_model)
        if isawaitable(allowed):
            allowed = await allowed
        return bool(allowed)

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


def provider_logout_query(url: str, params: Mapping[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{url}{'&' if '?' in url else '?'}{query}"


__all__ = [
    "IdTokenError",
    "OIDCAuthenticator",
    "ProviderUnavailable",
    "check_url",
    "provider_logout_query",
]
