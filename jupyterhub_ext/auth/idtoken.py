"""Verifying OpenID Connect ID tokens: signature against the provider's JWKS, issuer, audience, expiry.

OAuthenticator decodes ID tokens without checking the signature (it trusts the TLS channel to the token
endpoint). We check everything OpenID Connect Core 1.0 section 3.1.3.7 asks of a client, because the ID
token is what decides who a user is and which groups (so which hardware) they get.

Nothing here logs or returns a token: errors carry a short reason that is safe to log and to show.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import jwt

#: Asymmetric algorithms only: a JWKS holds public keys, and accepting HS* with a public key as the
#: HMAC secret is the classic algorithm-confusion attack. "none" is never acceptable.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

#: Claims every ID token must carry (OIDC Core 2).
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat")


class IdTokenError(Exception):
    """The ID token must not be accepted.

    ``kind`` is a stable short word for tests and metrics (``signature``, ``unknown-key``, ``issuer``,
    ``audience``, ``expired``, ...); ``detail`` is a human sentence. Neither contains the token.
    """

    def __init__(self, kind: str, detail: str):
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered nonsense (a fetch failed)."""


class JWKSCache:
    """The provider's signing keys, fetched lazily and kept for ``ttl`` seconds.

    A token signed with a key id we do not know triggers one re-fetch (the provider may have rotated its
    keys), at most once every ``min_refetch_interval`` seconds so that a stream of forged tokens cannot make
    the hub hammer the provider.
    """

    def __init__(
        self,
        url: str,
        fetch_json: Callable[[str], Awaitable[Any]],
        *,
        ttl: float = 3600.0,
        min_refetch_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self._fetch_json = fetch_json
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _refetch(self) -> None:
        try:
            data = await self._fetch_json(self.url)
        except Exception as e:  # network errors, HTTP errors, bad JSON
            raise ProviderUnavailable(f"could not fetch the provider's JWKS from {self.url}: {e}") from e
        if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
            raise ProviderUnavailable(f"the JWKS at {self.url} is not a JSON object with a 'keys' list")
        keys = []
        for entry in data["keys"]:
            if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
                continue
            try:
                keys.append(jwt.PyJWK(dict(entry)))
            except jwt.PyJWTError:
                # A key type PyJWT cannot use (or a malformed entry) must not hide the usable ones.
                continue
        self._keys = keys
        self._fetched_at = self._clock()

    def _find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is not None:
            for key in self._keys:
                if key.key_id == kid:
                    return key
            return None
        # No kid: acceptable only when exactly one key could have made this signature.
        candidates = [k for k in self._keys if str(k.key_type) == _key_type_of(alg)]
        return candidates[0] if len(candidates) == 1 else None

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at > self.ttl:
                await self._refetch()
            key = self._find(kid, alg)
            if key is None and self._fetched_at is not None and now - self._fetched_at >= self.min_refetch_interval:
                await self._refetch()
                key = self._find(kid, alg)
        if key is None:
            shown = "without a key id" if kid is None else f"with key id {kid!r}"
            raise IdTokenError("unknown-key", f"the token is signed {shown}, which is not in the provider's JWKS")
        return key


def _key_type_of(alg: str) -> str:
    if alg.startswith(("RS", "PS")):
        return "RSA"
    if alg.startswith("ES"):
        return "EC"
    return "OKP"


def nonce_for_state(secret: bytes | str, state: str) -> str:
    """The nonce sent with an authorization request, derived from its OAuth ``state`` parameter.

    Deriving it (HMAC with the hub's cookie secret) rather than storing it means nothing new has to be
    kept in the state cookie, and it survives a hub restart between redirect and callback.
    """
    if isinstance(secret, str):
        secret = secret.encode()
    return hmac.new(secret, b"oidc-nonce:" + state.encode(), "sha256").hexdigest()


async def verify_id_token(
    token: str,
    jwks: JWKSCache,
    *,
    issuer: str,
    client_id: str,
    algorithms: Collection[str],
    leeway: float = 0.0,
    nonce: str | None = None,
    verify_exp: bool = True,
) -> dict[str, Any]:
    """Return the claims of ``token`` if it is an ID token the provider issued to us, else raise IdTokenError.

    ``verify_exp=False`` is only for re-reading a token we verified before (e.g. to keep claims when a
    refresh response carries no new ID token); a token arriving from the network is always checked.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise IdTokenError("malformed", "the ID token is not a signed JWT (JWS compact serialization)")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise IdTokenError("malformed", f"the ID token header cannot be read ({e})") from None
    alg = header.get("alg")
    if alg not in algorithms or alg not in SUPPORTED_ALGORITHMS:
        raise IdTokenError(
            "algorithm", f"the ID token is signed with {alg!r}; accepted: {', '.join(sorted(algorithms))}"
        )
    key = await jwks.key_for(header.get("kid"), alg)
    claims = _decode(token, key, alg, client_id=client_id, leeway=leeway, verify_exp=verify_exp)
    if claims.get("iss") != issuer:
        raise IdTokenError("issuer", f"the ID token was issued by {claims.get('iss')!r}, expected {issuer!r}")
    aud = claims.get("aud")
    azp = claims.get("azp")
    # OIDC Core 3.1.3.7 (4, 5): with several audiences, azp must be present and be us; if present, be us.
    if isinstance(aud, list) and len(aud) > 1 and azp is None:
        raise IdTokenError("audience", "the ID token has several audiences and no authorized party (azp)")
    if azp is not None and azp != client_id:
        raise IdTokenError("audience", f"the ID token's authorized party is {azp!r}, not this client")
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
            raise IdTokenError("nonce", "the ID token's nonce does not match this login (replayed token?)")
    return claims


def _decode(token: str, key: jwt.PyJWK, alg: str, *, client_id: str, leeway: float, verify_exp: bool) -> dict[str, Any]:
    """The claims, once PyJWT has checked the signature, audience and times; its errors as IdTokenError."""
    options: dict[str, Any] = {
        "require": list(REQUIRED_CLAIMS),
        "verify_signature": True,
        "verify_aud": True,
        "verify_iss": False,  # verify_id_token compares it, for an exact match with a clear message
        "verify_exp": verify_exp,
        "verify_iat": True,
        "verify_nbf": True,
    }
    try:
        return jwt.decode(token, key=key.key, algorithms=[alg], audience=client_id, leeway=leeway, options=options)
    except jwt.InvalidSignatureError:
        raise IdTokenError("signature", "the ID token's signature does not verify with the provider's key") from None
    except jwt.ExpiredSignatureError:
        raise IdTokenError("expired", "the ID token has expired") from None
    except jwt.InvalidAudienceError:
        raise IdTokenError("audience", f"the ID token was not issued to this client ({client_id!r})") from None
    except jwt.ImmatureSignatureError:
        raise IdTokenError("not-yet-valid", "the ID token is not valid yet (iat/nbf in the future)") from None
    except jwt.MissingRequiredClaimError as e:
        raise IdTokenError("missing-claim", f"the ID token has no {e.claim!r} claim") from None
    except jwt.PyJWTError as e:
        raise IdTokenError("invalid", f"the ID token is invalid ({type(e).__name__}: {e})") from None
