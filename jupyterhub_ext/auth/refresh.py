"""Refreshing an OpenID Connect login: fresh tokens from the provider every ``auth_refresh_age`` seconds.

oauthenticator's ``refresh_user`` re-reads the stored tokens, asks for new ones only once the old ones are
refused, and logs the user out whenever anything fails. Here:

* the refresh token (the normal case) is exchanged for new tokens at every refresh, so group changes made
  at the provider are seen, and a refresh after the ID token expired works (oauthenticator#793);
* a provider that cannot be reached keeps the session (the next refresh tries again);
* the provider refusing, a new ID token that does not verify, another username, or a user no longer
  allowed (blocked, or outside every allow rule) means a new login.

The new tokens become an auth model through the authenticator's usual path (``auth_model_from_tokens``:
oauthenticator's, with the ID token verified), so admin status and groups follow the provider both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from tornado import web
from tornado.httpclient import HTTPClientError

from .idtoken import IdTokenError, ProviderUnavailable

if TYPE_CHECKING:
    from .oidc import OIDCAuthenticator


class _Refused(Exception):
    """The provider refused to refresh the tokens (revoked, expired, user disabled)."""


async def refresh_auth_model(a: OIDCAuthenticator, user, auth_state: Mapping[str, Any], handler) -> dict | bool:
    """What ``refresh_user`` answers for ``user``, whose (non-empty) auth_state this is: the new auth model,
    True (keep the session as it is) or False (log in again)."""
    try:
        await a.resolve_endpoints()
        auth_model = await _from_fresh_tokens(a, auth_state, handler)
    except ProviderUnavailable as e:
        # Do not log everybody out while the provider has a hiccup: keep the session, retry later.
        a.log.warning("Could not refresh %s, keeping the session for now: %s", user.name, e)
        return True
    except _Refused as e:
        a.log.info("The provider refused to refresh %s (%s): a new login is required", user.name, e)
        return False
    except (IdTokenError, web.HTTPError) as e:
        a.log.warning("Refresh for %s failed (%s): a new login is required", user.name, e)
        return False
    if auth_model is None:
        return True
    if auth_model["name"] != user.name:
        a.log.warning(
            "Refresh for %s returned a different username (%s): a new login is required", user.name, auth_model["name"]
        )
        return False
    if not await _still_allowed(a, auth_model):
        a.log.info("%s is no longer allowed to use the hub: logged out", user.name)
        return False
    a.log.debug("Refreshed auth for %s", user.name)
    return auth_model


async def _from_fresh_tokens(a: OIDCAuthenticator, auth_state: Mapping[str, Any], handler) -> dict | None:
    """The auth model from fresh tokens; None when there is no refresh token and the ID token is still valid."""
    refresh_token = auth_state.get("refresh_token")
    if not refresh_token:
        # Nothing to ask the provider with: the session lasts as long as the ID token.
        await a.token_to_user(auth_state.get("token_response") or {})
        return None
    try:
        token_info = await a.get_token_info(handler, a.build_refresh_token_request_params(refresh_token))
    except HTTPClientError as e:
        if e.code is not None and 400 <= e.code < 500:
            raise _Refused(f"HTTP {e.code}") from None
        raise ProviderUnavailable(f"the token request failed: {e}") from e
    except OSError as e:  # connection refused, DNS, TLS: the provider is unreachable, not refusing
        raise ProviderUnavailable(f"the token request failed: {e}") from e
    except web.HTTPError as e:  # an error_description, or no access token
        raise _Refused(e.log_message) from None
    if not token_info.get("refresh_token"):
        token_info["refresh_token"] = refresh_token  # not rotated (Cognito's default): keep it
    return await a.auth_model_from_tokens(token_info, previous=auth_state)


async def _still_allowed(a: OIDCAuthenticator, auth_model: dict[str, Any]) -> bool:
    """JupyterHub's checks of a login (blocked users, then the allow rules), made again on the new model."""
    for check in (a.check_blocked_users, a.check_allowed):
        verdict = check(auth_model["name"], auth_model)
        if not (await verdict if isawaitable(verdict) else verdict):
            return False
    return True
