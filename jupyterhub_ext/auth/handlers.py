"""The login and logout pages of the OpenID Connect authenticators, on top of oauthenticator's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from inspect import isawaitable
from logging import Logger
from urllib.parse import urlencode

from oauthenticator.oauth2 import OAuthLoginHandler, OAuthLogoutHandler
from tornado import web

from .idtoken import ProviderUnavailable, nonce_for_state

#: What a user sees when the provider is down at login: nothing they did wrong, and nothing to fix but wait.
PROVIDER_UNAVAILABLE = "The identity provider cannot be reached. Please try again shortly."


@contextmanager
def unavailable_as_503(log: Logger, doing: str) -> Iterator[None]:
    """Answer ``ProviderUnavailable`` with a 503 page, logging why (``doing``: what could not be done)."""
    try:
        yield
    except ProviderUnavailable as e:
        log.error("%s: %s", doing, e)
        raise web.HTTPError(503, PROVIDER_UNAVAILABLE) from None


def login_nonce(handler: web.RequestHandler, state: str) -> str:
    """The nonce of the login whose OAuth ``state`` this is.

    Derived from the state and the hub's cookie secret: the callback carries the same state (which
    oauthenticator matches with the browser's state cookie), so nothing needs to be stored, and a hub restart
    between redirect and callback does not break the login.
    """
    return nonce_for_state(handler.settings["cookie_secret"], state)


class OIDCLoginHandler(OAuthLoginHandler):
    """Adds a nonce to the authorization request, and resolves endpoints before redirecting."""

    async def get(self):
        with unavailable_as_503(self.log, "Cannot start a login"):
            await self.authenticator.resolve_endpoints()
        result = super().get()
        if isawaitable(result):  # OAuthenticator may make get() async one day
            await result

    def authorize_redirect(self, *args, extra_params=None, **kwargs):
        extra_params = dict(extra_params or {})
        if extra_params.get("state"):
            extra_params["nonce"] = login_nonce(self, extra_params["state"])
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


def provider_logout_query(url: str, params: Mapping[str, str | None]) -> str:
    """``url`` with the (non-empty) ``params`` added to its query."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{url}{'&' if '?' in url else '?'}{query}"
