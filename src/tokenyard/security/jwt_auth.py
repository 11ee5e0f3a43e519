"""Service identity from JSON Web Tokens, for east-west callers.

Signatures are checked against a JWKS (a file, or a URL fetched and cached), and ``iss``, ``aud``, ``exp`` and
``nbf`` with a bounded clock skew. Only asymmetric algorithms are accepted, and the algorithm comes from the key,
never from the token's header alone: that closes the classic ``alg: none`` and RS256->HS256 confusion attacks.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")


class AuthError(Exception):
    """A credential was presented but is not acceptable; ``reason`` is safe to log and to return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# What loading a JWKS can raise: an unreachable or broken URL (OSError, HTTPException), an unreadable file,
# JSON or key set (ValueError, AuthError).
JWKS_LOAD_ERRORS: tuple[type[Exception], ...] = (AuthError, OSError, ValueError, http.client.HTTPException)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: ``kind`` is ``key``, ``jwt`` or ``mtls``; ``subject`` the tenant, ``sub`` or SAN URI."""

    kind: str
    subject: str
    tenant: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JwtSettings:
    issuer: str
    audience: str
    jwks_file: str | None = None
    jwks_url: str | None = None
    leeway_s: float = 30.0
    jwks_ttl_s: float = 300.0
    tenant_claim: str = "tenant"


class JwksSource:
    """Holds the JWKS; reloads it after ``ttl_s``, or when a token names an unknown key id (key rotation).

    On-demand reloads are throttled to one attempt per ``min_reload_s``, successful or not: otherwise every
    token with a made-up ``kid`` would make the gateway fetch the JWKS URL again (a cheap amplification attack
    on the identity provider and on the gateway itself), and every token would while the provider is down.
    A reload that fails keeps the keys already loaded (an identity provider outage must not turn every token
    into an error); with none loaded yet, the token is refused (``AuthError``, a 401), never an exception.
    """

    def __init__(
        self,
        settings: JwtSettings,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_reload_s: float = 10.0,
        inline_reload: bool = True,
    ) -> None:
        """``inline_reload=False``: ``key`` never loads; the owner calls ``refresh`` off the event loop when
        ``reload_due`` says so (the gateway, for a URL: a fetch must not stall every other request)."""
        if (settings.jwks_file is None) == (settings.jwks_url is None):
            raise ValueError("exactly one of jwks_file and jwks_url must be set")
        self._settings = settings
        self._fetch = fetch
        self._clock = clock
        self._min_reload_s = min_reload_s
        self._keys: dict[str, PyJWK] = {}
        self._loaded_at = float("-inf")
        self._attempted_at = float("-inf")  # the last load tried, failed or not (the throttle)
        self._inline_reload = inline_reload

    def _load(self) -> None:
        self._attempted_at = self._clock()
        if self._settings.jwks_file is not None:
            raw = Path(self._settings.jwks_file).read_bytes()
        else:
            if self._fetch is None:
                raise AuthError("no JWKS fetcher configured")
            raw = self._fetch(str(self._settings.jwks_url))
        try:
            document = json.loads(raw)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            keyset = PyJWKSet.from_dict(document)
        except (ValueError, jwt.PyJWTError) as exc:
            raise AuthError(f"JWKS unreadable: {exc}") from exc
        self._keys = {str(k.key_id): k for k in keyset.keys if k.key_id}
        self._loaded_at = self._clock()

    def refresh(self) -> None:
        """Load the JWKS now (the gateway calls this off the event loop, at start and every ``ttl_s / 2``)."""
        self._load()

    def reload_due(self, kid: str | None) -> bool:
        """Whether a token naming ``kid`` should make the JWKS load again first (stale, or an unknown key id)."""
        now = self._clock()
        stale = now - self._loaded_at > self._settings.jwks_ttl_s
        return (stale or kid not in self._keys) and now - self._attempted_at > self._min_reload_s

    def key(self, kid: str) -> PyJWK:
        if self._inline_reload and self.reload_due(kid):
            try:
                self._load()
            except JWKS_LOAD_ERRORS as exc:
                if not self._keys:
                    raise AuthError("signing keys unavailable") from exc
        found = self._keys.get(kid)
        if found is None:
            raise AuthError("token signed by an unknown key" if self._keys else "signing keys unavailable")
        return found


class JwtVerifier:
    """Validates bearer JWTs into an :class:`Identity`."""

    def __init__(self, settings: JwtSettings, source: JwksSource) -> None:
        self._settings = settings
        self._source = source

    def verify(self, token: str) -> Identity:
        if not token.isascii():  # a compact JWS is base64url and dots; PyJWT would raise UnicodeEncodeError (500)
            raise AuthError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("token has no key id")
        key = self._source.key(kid)
        algorithm = key.algorithm_name
        if algorithm not in ALLOWED_ALGORITHMS or header.get("alg") != algorithm:
            raise AuthError("token algorithm not allowed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token audience not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token issuer not accepted") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("token invalid") from exc
        tenant = claims.get(self._settings.tenant_claim)
        return Identity(
            kind="jwt",
            subject=str(claims["sub"]),
            tenant=tenant if isinstance(tenant, str) else None,
            claims=claims,
        )
