"""ID token verification, in-process: every check of OIDC Core 3.1.3.7 we rely on, and the JWKS cache."""

from __future__ import annotations

import base64
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jupyterhub_ext.auth.idtoken import IdTokenError, JWKSCache, ProviderUnavailable, nonce_for_state, verify_id_token

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
CLIENT = "hub-client"
RS256 = ["RS256"]


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid: str | None, **extra) -> dict:
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    if kid is not None:
        data["kid"] = kid
    return {**data, **extra}


class FakeProvider:
    """Serves a JWKS (which tests may change) and counts fetches."""

    def __init__(self, keys: list[dict]):
        self.keys = keys
        self.fetches = 0
        self.fail = False

    async def fetch(self, url: str):
        self.fetches += 1
        if self.fail:
            raise OSError("connection refused")
        return {"keys": self.keys}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def key():
    return rsa_key()


@pytest.fixture
def provider(key):
    return FakeProvider([public_jwk(key, "k1")])


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def jwks(provider, clock):
    return JWKSCache("https://idp/jwks", provider.fetch, clock=clock)


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"iss": ISSUER, "sub": "user-1", "aud": CLIENT, "iat": now, "exp": now + 300, "nonce": "n-1"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict, key, *, kid: str | None = "k1", alg: str = "RS256") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


async def verify(token, jwks, **kwargs):
    options = {"issuer": ISSUER, "client_id": CLIENT, "algorithms": RS256, "nonce": "n-1", **kwargs}
    return await verify_id_token(token, jwks, **options)


async def test_valid_token_gives_its_claims(key, jwks):
    token = sign(claims(email="a@example.com"), key)
    assert (await verify(token, jwks))["email"] == "a@example.com"


async def test_audience_list_with_us_and_azp(key, jwks):
    token = sign(claims(aud=[CLIENT, "other"], azp=CLIENT), key)
    assert (await verify(token, jwks))["sub"] == "user-1"


@pytest.mark.parametrize(
    "payload,kind",
    [
        (lambda: claims(exp=int(time.time()) - 60), "expired"),
        (lambda: claims(iat=int(time.time()) + 600, exp=int(time.time()) + 900), "not-yet-valid"),
        (lambda: claims(iss="https://evil.example.com"), "issuer"),
        (lambda: claims(iss=ISSUER + "/"), "issuer"),  # exact match, not prefix
        (lambda: claims(iss=ISSUER[:-1]), "issuer"),
        (lambda: claims(aud="other-client"), "audience"),
        (lambda: claims(aud=[CLIENT, "other"]), "audience"),  # several audiences need azp
        (lambda: claims(azp="other-client"), "audience"),
        (lambda: claims(sub=None), "missing-claim"),
        (lambda: claims(exp=None), "missing-claim"),
        (lambda: claims(iat=None), "missing-claim"),
        (lambda: claims(nonce="n-2"), "nonce"),
        (lambda: claims(nonce=None), "nonce"),
    ],
    ids=[
        "expired",
        "iat-in-future",
        "other-issuer",
        "issuer-with-slash",
        "issuer-prefix",
        "other-audience",
        "multi-audience-without-azp",
        "other-azp",
        "no-sub",
        "no-exp",
        "no-iat",
        "wrong-nonce",
        "no-nonce",
    ],
)
async def test_bad_claims_are_refused(key, jwks, payload, kind):
    # the claims are made when the test runs: made at collection, a long run outlives their 5 minutes
    with pytest.raises(IdTokenError) as e:
        await verify(sign(payload(), key), jwks)
    assert e.value.kind == kind


async def test_leeway_tolerates_small_clock_skew(key, jwks):
    token = sign(claims(exp=int(time.time()) - 5), key)
    assert await verify(token, jwks, leeway=30)
    with pytest.raises(IdTokenError, match="expired"):
        await verify(token, jwks, leeway=0)


async def test_expiry_can_be_skipped_only_when_asked(key, jwks):
    token = sign(claims(exp=int(time.time()) - 600), key)
    assert await verify(token, jwks, verify_exp=False)


async def test_signature_by_another_key_is_refused(jwks):
    with pytest.raises(IdTokenError) as e:
        await verify(sign(claims(), rsa_key(), kid="k1"), jwks)
    assert e.value.kind == "signature"


async def test_key_not_in_jwks_is_refused(jwks):
    with pytest.raises(IdTokenError) as e:
        await verify(sign(claims(), rsa_key(), kid="attacker"), jwks)
    assert e.value.kind == "unknown-key"


async def test_unsigned_token_is_refused(jwks):
    token = jwt.encode(claims(), key=None, algorithm="none")
    with pytest.raises(IdTokenError) as e:
        await verify(token, jwks)
    assert e.value.kind == "algorithm"


async def test_hmac_with_the_public_key_is_refused(key, jwks):
    """Algorithm confusion: HS256 'signed' with the provider's public key as the shared secret."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()) + "." + b64(json.dumps(claims()).encode())
    )
    forged = signing_input + "." + b64(hmac.new(pem, signing_input.encode(), "sha256").digest())
    with pytest.raises(IdTokenError) as e:
        await verify(forged, jwks)
    assert e.value.kind == "algorithm"


async def test_algorithm_outside_the_configured_list_is_refused(jwks, provider):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    provider.keys.append(public_jwk(ec_key, "e1"))
    token = sign(claims(), ec_key, kid="e1", alg="ES256")
    with pytest.raises(IdTokenError, match="algorithm"):
        await verify(token, jwks)
    assert (await verify(token, jwks, algorithms=["RS256", "ES256"]))["sub"] == "user-1"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "a.b.c.d"])
async def test_malformed_tokens_are_refused(jwks, token):
    with pytest.raises(IdTokenError) as e:
        await verify(token, jwks)
    assert e.value.kind == "malformed"


async def test_token_without_kid_is_accepted_only_with_a_single_key(key, jwks, provider):
    token = sign(claims(), key, kid=None)
    assert await verify(token, jwks)
    provider.keys.append(public_jwk(rsa_key(), "k2"))
    fresh = JWKSCache("https://idp/jwks", provider.fetch)
    with pytest.raises(IdTokenError, match="unknown-key"):
        await verify(token, fresh)


async def test_key_rotation_refetches_once_then_rate_limits(key, jwks, provider, clock):
    assert await verify(sign(claims(), key), jwks)
    assert provider.fetches == 1
    new_key = rsa_key()
    provider.keys = [public_jwk(key, "k1"), public_jwk(new_key, "k2")]
    # Right after a fetch, an unknown kid does not trigger another one (forged tokens cannot hammer the IdP).
    with pytest.raises(IdTokenError, match="unknown-key"):
        await verify(sign(claims(), new_key, kid="k2"), jwks)
    assert provider.fetches == 1
    clock.now += 61
    assert await verify(sign(claims(), new_key, kid="k2"), jwks)
    assert provider.fetches == 2
    # Known keys come from the cache until its TTL passes.
    for _ in range(3):
        await verify(sign(claims(), key), jwks)
    assert provider.fetches == 2
    clock.now += 3601
    await verify(sign(claims(), key), jwks)
    assert provider.fetches == 3


async def test_encryption_keys_and_junk_are_ignored(key, provider, clock):
    provider.keys = [
        public_jwk(rsa_key(), "k1", use="enc"),
        {"kty": "unknown", "kid": "x"},
        "not a key",
        public_jwk(key, "k1"),
    ]
    jwks = JWKSCache("https://idp/jwks", provider.fetch, clock=clock)
    assert await verify(sign(claims(), key), jwks)


async def test_unreachable_provider_is_not_a_token_error(key, provider, jwks):
    provider.fail = True
    with pytest.raises(ProviderUnavailable, match="connection refused"):
        await verify(sign(claims(), key), jwks)


def test_nonce_is_bound_to_the_state_and_the_secret():
    assert nonce_for_state(b"secret", "state-1") == nonce_for_state("secret", "state-1")
    assert nonce_for_state(b"secret", "state-1") != nonce_for_state(b"secret", "state-2")
    assert nonce_for_state(b"secret", "state-1") != nonce_for_state(b"other", "state-1")


async def test_errors_never_contain_the_token(key, jwks):
    token = sign(claims(aud="other-client"), key)
    with pytest.raises(IdTokenError) as e:
        await verify(token, jwks)
    assert token not in str(e.value) and token.split(".")[1] not in str(e.value)
