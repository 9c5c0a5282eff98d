"""A real OpenID Connect provider (oidc-provider-mock) on loopback, dressed as Cognito and as Keycloak.

``oidc-provider-mock`` implements authorization code + refresh token grants, signs RS256 ID tokens with a
key published at ``/jwks``, and lets tests set a user's claims (``PUT /users/<sub>``). Its paths are its own,
so a small WSGI layer in front of it maps:

* Cognito:  ``/oauth2/authorize``, ``/oauth2/token``, ``/oauth2/userInfo``, ``/logout`` (emulated: checks
  ``client_id`` and that ``logout_uri`` is an allowed sign-out URL, then redirects), and the issuer's
  ``/.well-known/jwks.json``;
* Keycloak: ``/realms/<realm>/protocol/openid-connect/{auth,token,userinfo,certs,logout}`` and
  ``/realms/<realm>/.well-known/openid-configuration`` (the mock's own document, endpoints rewritten to the
  Keycloak paths). Logout with a valid ``id_token_hint`` and a registered ``post_logout_redirect_uri``
  redirects at once, as Keycloak does; without a hint the mock's confirmation page is shown.
* The mock's native API under ``/_mock/...`` (for the tests, never configured in a hub).

The same layer can *tamper* with one login, to produce each kind of bad ID token from a real exchange:
``foreign-key`` (signed by a key not in the JWKS), ``forged-kid`` (another key claiming the provider's kid),
``alg-none`` (unsigned), ``issuer`` (the provider signs it under another host name), ``audience`` (issued to
another registered client), ``nonce`` (another login's nonce), ``expired`` (the token response arrives after
the ID token expired).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlparse

import jwt
import oidc_provider_mock
import requests
import werkzeug.serving
from cryptography.hazmat.primitives.asymmetric import rsa

TAMPER_MODES = ("foreign-key", "forged-kid", "alg-none", "issuer", "audience", "nonce", "expired")

#: tamper mode -> what a hub must say when refusing that ID token: the kind in its log ("ID token rejected
#: (<kind>)") and words on the page the user sees. The same for Cognito and Keycloak: one verifier.
BAD_TOKENS = {
    "foreign-key": ("unknown-key", "not in the provider"),
    "forged-kid": ("signature", "signature does not verify"),
    "alg-none": ("algorithm", "signed with"),
    "issuer": ("issuer", "issued by"),
    "audience": ("audience", "not issued to this client"),
    "nonce": ("nonce", "nonce does not match"),
    "expired": ("expired", "has expired"),
}
assert set(BAD_TOKENS) == set(TAMPER_MODES)


def _attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Provider:
    """The provider and its alias layer, served on 127.0.0.1 from a background thread."""

    def __init__(self, *, token_lifetime: float, realm: str = "hub"):
        self.token_lifetime = token_lifetime
        self.realm = realm
        self._mock = oidc_provider_mock.app(
            require_client_registration=True,
            access_token_max_age=timedelta(seconds=token_lifetime),
        )
        self._mode: str | None = None
        self._lock = threading.Lock()
        self._clients: dict[str, dict[str, Any]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.logout_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []
        #: client id of each userinfo request (from its access token), to see which hubs call userinfo
        self.userinfo_requests: list[str | None] = []
        self._token_clients: dict[str, str] = {}
        self._attacker = _attacker_key()
        self._server = werkzeug.serving.make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # ---- what hubs are configured with -----------------------------------------------------------------

    @property
    def issuer(self) -> str:
        # The mock signs with its host URL as issuer (Cognito's would be cognito-idp.<region>...).
        return self.base_url

    @property
    def realm_url(self) -> str:
        return f"{self.base_url}/realms/{self.realm}"

    # ---- test controls ---------------------------------------------------------------------------------

    def register_client(self, redirect_uri: str, *, auth_method: str, logout_uris: list[str] = ()) -> tuple[str, str]:
        """A confidential client that may only use ``redirect_uri``; returns (client_id, client_secret)."""
        r = requests.post(
            f"{self.base_url}/_mock/oauth2/clients",
            json={"redirect_uris": [redirect_uri], "token_endpoint_auth_method": auth_method},
            timeout=10,
        )
        r.raise_for_status()
        body = r.json()
        self._clients[body["client_id"]] = {
            "secret": body["client_secret"],
            "auth_method": auth_method,
            "redirect_uri": redirect_uri,
            "logout_uris": list(logout_uris),
        }
        return body["client_id"], body["client_secret"]

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Create or replace a user: the claims go into ID tokens (and userinfo) issued from now on."""
        requests.put(f"{self.base_url}/_mock/users/{sub}", json=claims, timeout=10).raise_for_status()

    def revoke(self, sub: str) -> None:
        """Revoke all the user's tokens (refresh fails from now on), like disabling them at the provider."""
        requests.post(f"{self.base_url}/_mock/users/{sub}/revoke-tokens", timeout=10).raise_for_status()

    def jwks(self) -> dict[str, Any]:
        return requests.get(f"{self.base_url}/_mock/jwks", timeout=10).json()

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """Verify a token as issued by this provider (used by tests to check what the hub holds/sends)."""
        return _verify(token, self.jwks(), issuer=self.issuer, audience=audience)

    @contextmanager
    def tamper(self, mode: str) -> Iterator[None]:
        assert mode in TAMPER_MODES, mode
        with self._lock:
            assert self._mode is None, "tamper modes do not nest"
            self._mode = mode
        try:
            yield
        finally:
            with self._lock:
                self._mode = None

    def grants_for(self, client_id: str) -> list[str]:
        return [t["grant_type"] for t in self.token_requests if t.get("client_id") == client_id]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # ---- the alias layer (WSGI) ------------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        kc = f"/realms/{self.realm}"
        oidc = f"{kc}/protocol/openid-connect"
        if path.startswith("/_mock/"):
            return self._forward(environ, start_response, path[len("/_mock") :])
        routes = {
            "/oauth2/authorize": self._authorize,
            f"{oidc}/auth": self._authorize,
            "/oauth2/token": self._token,
            f"{oidc}/token": self._token,
            "/oauth2/userInfo": self._userinfo,
            f"{oidc}/userinfo": self._userinfo,
            "/.well-known/jwks.json": lambda e, s: self._forward(e, s, "/jwks"),
            f"{oidc}/certs": lambda e, s: self._forward(e, s, "/jwks"),
            f"{kc}/.well-known/openid-configuration": self._keycloak_discovery,
            "/logout": self._cognito_logout,
            f"{oidc}/logout": self._keycloak_logout,
        }
        handler = routes.get(path)
        if handler is None:
            return _respond(start_response, "404 Not Found", b"no such endpoint here", "text/plain")
        return handler(environ, start_response)

    def _call_mock(self, environ, path: str) -> tuple[str, list[tuple[str, str]], bytes]:
        environ = dict(environ)
        environ["PATH_INFO"] = path
        captured: dict[str, Any] = {}

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self._mock(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return captured["status"], captured["headers"], body

    def _forward(self, environ, start_response, path: str):
        status, headers, body = self._call_mock(environ, path)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def _userinfo(self, environ, start_response):
        auth = environ.get("HTTP_AUTHORIZATION", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        self.userinfo_requests.append(self._token_clients.get(token))
        return self._forward(environ, start_response, "/userinfo")

    def _other_client(self, client_id: str) -> str:
        # Another client of the same application (same redirect URI), so the provider lets the login through.
        mine = self._clients[client_id]
        others = [
            c
            for c, info in self._clients.items()
            if c != client_id
            and info["redirect_uri"] == mine["redirect_uri"]
            and info["auth_method"] == mine["auth_method"]
        ]
        assert others, "the 'audience' tamper mode needs a second client registered for the same redirect URI"
        return others[0]

    def _authorize(self, environ, start_response):
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        self.authorize_requests.append(dict(query))
        mode = self._mode
        if mode == "audience" and query.get("client_id") in self._clients:
            query["client_id"] = self._other_client(query["client_id"])
        if mode == "nonce":
            query["nonce"] = "nonce-of-another-login"
        environ = dict(environ)
        environ["QUERY_STRING"] = urlencode(query)
        return self._forward(environ, start_response, "/oauth2/authorize")

    def _token(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        auth = environ.get("HTTP_AUTHORIZATION", "")
        client_id = form.get("client_id")
        if auth.startswith("Basic "):
            client_id = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        self.token_requests.append({"grant_type": form.get("grant_type", ""), "client_id": client_id or ""})
        mode = self._mode
        environ = dict(environ)
        issued_to = client_id
        if mode == "audience" and client_id in self._clients:
            other = issued_to = self._other_client(client_id)
            secret = self._clients[other]["secret"]
            if auth.startswith("Basic "):
                environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{other}:{secret}".encode()).decode()
            else:
                form["client_id"], form["client_secret"] = other, secret
        if mode == "issuer":
            # The provider then signs (with its real key) as https://issuer.invalid: another issuer.
            environ["HTTP_X_FORWARDED_HOST"] = "issuer.invalid"
            environ["HTTP_X_FORWARDED_PROTO"] = "https"
        body = urlencode(form).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, payload = self._call_mock(environ, "/oauth2/token")
        if status.startswith("200"):
            access_token = json.loads(payload).get("access_token")
            if access_token:
                self._token_clients[access_token] = issued_to or ""
        if status.startswith("200") and mode in ("foreign-key", "forged-kid", "alg-none"):
            data = json.loads(payload)
            data["id_token"] = self._reforge(data["id_token"], mode)
            payload = json.dumps(data).encode()
        if mode == "expired":
            # The response is held back until the ID token in it has expired (and the hub's leeway, 1 s).
            time.sleep(self.token_lifetime + 1.5)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(payload)))])
        return [payload]

    def _reforge(self, id_token: str, mode: str) -> str:
        claims = jwt.decode(id_token, options={"verify_signature": False})
        real_kid = jwt.get_unverified_header(id_token).get("kid")
        if mode == "alg-none":
            return jwt.encode(claims, key=None, algorithm="none")
        kid = "attacker-key" if mode == "foreign-key" else real_kid
        return jwt.encode(claims, self._attacker, algorithm="RS256", headers={"kid": kid})

    def _keycloak_discovery(self, environ, start_response):
        status, headers, body = self._call_mock(environ, "/.well-known/openid-configuration")
        doc = json.loads(body)
        oidc = f"{self.realm_url}/protocol/openid-connect"
        doc.update(
            authorization_endpoint=f"{oidc}/auth",
            token_endpoint=f"{oidc}/token",
            userinfo_endpoint=f"{oidc}/userinfo",
            jwks_uri=f"{oidc}/certs",
            end_session_endpoint=f"{oidc}/logout",
        )
        doc.pop("registration_endpoint", None)
        return _respond(start_response, "200 OK", json.dumps(doc).encode(), "application/json")

    def _cognito_logout(self, environ, start_response):
        # https://docs.aws.amazon.com/cognito/latest/developerguide/logout-endpoint.html
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        self.logout_requests.append({"style": "cognito", **query})
        client = self._clients.get(query.get("client_id", ""))
        if client is None:
            return _respond(start_response, "400 Bad Request", b"error=invalid_client", "text/plain")
        if query.get("logout_uri") not in client["logout_uris"]:
            return _respond(start_response, "400 Bad Request", b"error=redirect_mismatch", "text/plain")
        start_response("302 Found", [("Location", query["logout_uri"]), ("Content-Length", "0")])
        return [b""]

    def _keycloak_logout(self, environ, start_response):
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        self.logout_requests.append({"style": "keycloak", **query})
        hint = query.get("id_token_hint")
        redirect = query.get("post_logout_redirect_uri")
        client = self._clients.get(query.get("client_id", ""))
        if hint:
            try:
                # Keycloak accepts an expired hint, but not a forged one or one issued to another client.
                claims = _verify(
                    hint, self.jwks(), issuer=self.issuer, audience=query.get("client_id"), expired_ok=True
                )
            except jwt.PyJWTError as e:
                return _respond(start_response, "400 Bad Request", f"invalid id_token_hint: {e}".encode(), "text/plain")
            client = self._clients.get(claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][0])
        if redirect:
            if client is None or redirect not in client["logout_uris"]:
                return _respond(start_response, "400 Bad Request", b"Invalid redirect uri", "text/plain")
            if hint:
                start_response("302 Found", [("Location", redirect), ("Content-Length", "0")])
                return [b""]
        return self._forward(environ, start_response, "/oauth2/end_session")


class _QuietHandler(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # one line per request would drown pytest's output
        pass


def _verify(token: str, jwks: dict[str, Any], *, issuer: str, audience: str | None, expired_ok: bool = False):
    kid = jwt.get_unverified_header(token).get("kid")
    keys = {k.get("kid"): k for k in jwks["keys"]}
    if kid not in keys:
        raise jwt.InvalidSignatureError(f"unknown kid {kid!r}")
    return jwt.decode(
        token,
        jwt.PyJWK(keys[kid]).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"verify_exp": not expired_ok},
    )


def _respond(start_response, status: str, body: bytes, content_type: str):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


# ---- the browser side of a login -------------------------------------------------------------------------


class Login:
    """The result of driving one login: the session (cookies), the callback response and the authorize URL."""

    def __init__(self, session: requests.Session, response: requests.Response, authorize_url: str):
        self.session = session
        self.response = response
        self.authorize_url = authorize_url

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def authorize_params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlparse(self.authorize_url).query).items()}


def login(hub, sub: str, session: requests.Session | None = None) -> Login:
    """Log ``sub`` in as a browser would: hub login -> provider (pick the user) -> hub callback.

    Stops at the callback's answer (302 into the hub on success, 403 refused, ...) so no server is spawned.
    """
    session = session or requests.Session()
    r = session.get(hub.url("hub/oauth_login"), allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    authorize_url = r.headers["Location"]
    r = session.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, (r.status_code, r.text[:500])
    callback = r.headers["Location"]
    assert callback.startswith(hub.url("hub/oauth_callback")), callback
    r = session.get(callback, allow_redirects=False, timeout=30)
    return Login(session, r, authorize_url)


def whoami(hub, session: requests.Session) -> dict[str, Any] | None:
    """The hub's model of the user this browser is logged in as, or None when it is not logged in.

    A cookie-authenticated request, so it goes through JupyterHub's auth refresh like any page load.
    """
    r = session.get(hub.url("hub/api/user"), timeout=30)
    if r.status_code == 403:
        return None
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()
