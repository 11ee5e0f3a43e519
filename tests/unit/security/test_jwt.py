"""JWT validation: issuer, audience, expiry with skew, key ids, and algorithm-confusion attacks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tokenyard.security.jwt_auth import AuthError, JwksSource, JwtSettings, JwtVerifier

ISS, AUD = "https://issuer.test", "tokenyard"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def verifier(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> JwtVerifier:
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    settings = JwtSettings(issuer=ISS, audience=AUD, jwks_file=str(path), leeway_s=30)
    return JwtVerifier(settings, JwksSource(settings))


def make(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "spiffe://prod/ns/rag/sa/worker", "exp": now + 60,
              "tenant": "acme"}
    headers = {"kid": overrides.pop("kid", "k1")}
    algorithm = overrides.pop("alg", "RS256")
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def test_valid_token(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    identity = verifier.verify(make(rsa_key))
    assert identity.kind == "jwt" and identity.tenant == "acme"
    assert identity.subject == "spiffe://prod/ns/rag/sa/worker"


def test_clock_skew_is_tolerated_within_leeway(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    assert verifier.verify(make(rsa_key, exp=int(time.time()) - 10)).tenant == "acme"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "token expired"),
        ({"aud": "someone-else"}, "token audience not accepted"),
        ({"iss": "https://evil.test"}, "token issuer not accepted"),
        ({"sub": None}, "token invalid"),
        ({"kid": "k2"}, "token signed by an unknown key"),
    ],
)
def test_rejections(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey, overrides: dict[str, Any],
                    reason: str) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(make(rsa_key, **overrides))
    assert info.value.reason == reason


def test_token_signed_by_another_key(verifier: JwtVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthError, match="token invalid"):
        verifier.verify(make(other))


def test_alg_none_and_hmac_confusion_are_refused(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    unsigned = jwt.encode({"iss": ISS, "aud": AUD, "sub": "x", "exp": int(time.time()) + 60}, None,
                          algorithm="none", headers={"kid": "k1"})
    with pytest.raises(AuthError):
        verifier.verify(unsigned)
    with pytest.raises(AuthError):
        verifier.verify("not.a.jwt")
    with pytest.raises(AuthError):
        verifier.verify("")


def test_hs256_signed_with_the_public_key_is_refused(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    import base64
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    public_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps({"iss": ISS, "aud": AUD, "sub": "x", "exp": int(time.time()) + 60}).encode())
    signature = b64(hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest())
    forged = (header + b"." + payload + b"." + signature).decode()
    with pytest.raises(AuthError, match="algorithm not allowed"):
        verifier.verify(forged)


def test_a_jwks_url_that_goes_down_keeps_the_keys_it_had(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256"})
    answers: list[bytes | Exception] = [json.dumps({"keys": [jwk]}).encode()]
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    now = [0.0]
    settings = JwtSettings(issuer=ISS, audience=AUD, jwks_url="http://idp.invalid/jwks", jwks_ttl_s=60)
    verifier = JwtVerifier(settings, JwksSource(settings, fetch=fetch, clock=lambda: now[0]))
    assert verifier.verify(make(rsa_key)).tenant == "acme"
    answers.append(OSError("connection refused"))  # the identity provider goes down
    now[0] = 600.0  # long past the TTL
    for _ in range(5):  # the keys already loaded still verify; one refetch attempt, not one per token
        assert verifier.verify(make(rsa_key)).tenant == "acme"
    with pytest.raises(AuthError, match="unknown key"):
        verifier.verify(make(rsa_key, kid="k2"))
    assert len(fetched) == 2
    for broken in (OSError("refused"), b"[1, 2]", b"not json", b'{"keys": []}'):
        answers[:] = [broken]
        fresh = JwtVerifier(settings, JwksSource(settings, fetch=fetch, clock=lambda: now[0]))
        with pytest.raises(AuthError, match="signing keys unavailable"):  # never loaded: a 401, not a 500
            fresh.verify(make(rsa_key))


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521"])
def test_every_es_curve_the_docs_name_is_accepted(curve: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    named = {"P-256": (ec.SECP256R1(), "ES256"), "P-384": (ec.SECP384R1(), "ES384"),
             "P-521": (ec.SECP521R1(), "ES512")}
    curve_obj, algorithm = named[curve]
    key = ec.generate_private_key(curve_obj)
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "k1"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    settings = JwtSettings(issuer=ISS, audience=AUD, jwks_file=str(path))
    verifier = JwtVerifier(settings, JwksSource(settings))
    assert verifier.verify(make(key, alg=algorithm)).tenant == "acme"
