"""``SecurityService``: who is calling, what they may do and what they may spend, for one gateway.

Built once from the config (nothing at import time) and shared by the auth and policy stages and the HTTP guard.
A caller is authenticated by exactly one credential, tried in this order:

1. ``Authorization: Bearer ...`` shaped like a JWT (three base64url segments, ``eyJ...``) with ``jwt``
   configured: a service identity (``sub``), checked against the JWKS;
2. any other bearer value: an API key, from the config's ``keys`` or the ``key_store`` (revoked and expired
   store keys are told apart from unknown ones, for the caller and the audit log);
3. no bearer value, on an mTLS listener: the client certificate's URI SAN (SPIFFE ID) as service identity.

The key store is polled every ``key_store.poll_ms`` (a single-row read of its generation counter) and, with a
shared ``state``, reloaded at once when a revocation is broadcast on ``KEYS_CHANNEL``; both keep revocation
under a second on every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

import jwt
from aiohttp import web

from tokenyard.config import GatewayConfig, KeyConfig, KeyLookup
from tokenyard.security.audit import AuditLog
from tokenyard.security.budgets import Budget, BudgetGuard, budgets_for
from tokenyard.security.eastwest import Decision, EastWestPolicy, PolicyRule
from tokenyard.security.jwt_auth import JWKS_LOAD_ERRORS, AuthError, Identity, JwksSource, JwtSettings, JwtVerifier
from tokenyard.security.keystore import KeyRecord, KeyStoreCache, SqliteKeyStore
from tokenyard.security.mtls import identity_from_peercert
from tokenyard.state import SharedState, StateUnavailable, open_state
from tokenyard.traffic.ratelimit import RateLimit, RateLimiter

log = logging.getLogger("tokenyard.security")

KEYS_CHANNEL = "tokenyard:keys"  # a message here means "the key store changed: reload now"
JWKS_FETCH_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its ``identity`` and the scope the other stages apply (``key``)."""

    identity: Identity
    key: KeyConfig
    from_store: bool = False  # a key-store key: its rpm/tpm/concurrency are applied by ``store_key_limiter``

    @property
    def is_service(self) -> bool:
        """JWT and mTLS callers are service identities, subject to the east-west policy."""
        return self.identity.kind in ("jwt", "mtls")


# Where the authenticated caller is kept on the aiohttp request.
PRINCIPAL = web.RequestKey("tokenyard_principal", Principal)


class AuthFailure(Exception):
    """No acceptable credential: always 401; ``reason`` is safe to log and to return (never the secret)."""

    def __init__(self, message: str, code: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


def looks_like_jwt(token: str) -> bool:
    """A compact JWS: ``header.payload.signature`` with a JSON header (base64url ``eyJ``)."""
    return token.startswith("eyJ") and token.count(".") == 2


def key_from_record(record: KeyRecord, taken: frozenset[str] = frozenset()) -> KeyConfig:
    """A key-store key in the shape the gateway's stages apply (tenant, models, classes, routes, limits, budgets).

    Rate limits and budgets are counted per key *name*: a store key named like a config key (``taken``) is
    named ``NAME@KEY_ID`` instead, so it neither spends the config key's rpm, tpm and budgets nor is held to them.
    """
    name = f"{record.name}@{record.key_id}" if record.name in taken else record.name
    return KeyConfig(key_sha256=record.key_sha256, tenant=record.tenant, name=name,
                     models=record.models, classes=record.classes, routes=record.routes, rpm=record.rpm,
                     tpm=record.tpm, max_concurrency=record.max_concurrency,
                     tokens_per_day=record.daily_token_budget, tokens_per_month=record.monthly_token_budget)


def route_allowed(routes: tuple[str, ...] | None, path: str) -> bool:
    """Whether a key whose ``routes`` are these glob patterns may call ``path`` (None: every route)."""
    return routes is None or any(fnmatchcase(path, pattern) for pattern in routes)


def _fetch_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=JWKS_FETCH_TIMEOUT_S) as answer:
        data: bytes = answer.read(1024 * 1024)
        return data


class SecurityService:
    """Authentication, the east-west policy, token budgets and the audit log of one gateway."""

    def __init__(self, config: GatewayConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.enabled = config.auth_enabled
        self._clock = clock
        self._keys: KeyLookup[KeyConfig] = KeyLookup((k.key_sha256, k) for k in config.keys if k.key_sha256)
        self._config_key_names = frozenset(k.name for k in config.keys)
        self.store = SqliteKeyStore(config.key_store.path) if config.key_store is not None else None
        self.cache = KeyStoreCache(self.store, clock) if self.store is not None else None
        self._poll_s = config.key_store.poll_ms / 1000 if config.key_store is not None else 0.5
        self.jwt: JwtVerifier | None = None
        self._jwks: JwksSource | None = None
        self._jwks_refresh_s = 150.0
        if config.jwt is not None:
            j = config.jwt
            settings = JwtSettings(issuer=j.issuer, audience=j.audience, jwks_file=j.jwks_file,
                                   jwks_url=j.jwks_url, leeway_s=j.leeway_ms / 1000, jwks_ttl_s=j.jwks_ttl_ms / 1000,
                                   tenant_claim=j.tenant_claim)
            # A URL is fetched only off the event loop (``refresh_signing_keys``); a file is read in place.
            self._jwks = JwksSource(settings, fetch=_fetch_url, inline_reload=j.jwks_url is None)
            self.jwt = JwtVerifier(settings, self._jwks)
            self._jwks_refresh_s = settings.jwks_ttl_s / 2
        rules = config.eastwest.rules if config.eastwest is not None else ()
        self.policy = EastWestPolicy(
            PolicyRule(name=r.name or f"rule-{i}", identities=r.identities, models=r.models, routes=r.routes,
                       tools=r.tools, selector=dict(r.selector))
            for i, r in enumerate(rules)
        )
        self.audit = AuditLog(config.audit_log.path)
        self.state: SharedState | None = None
        self.budgets: BudgetGuard | None = None
        self.admin_port: int | None = None  # set when the admin API has its own listener
        self._tasks: list[asyncio.Task[None]] = []
        self._jwks_reload: asyncio.Task[None] | None = None  # the one on-demand JWKS fetch in flight
        self._store_limiters: dict[str, tuple[RateLimit, RateLimiter]] = {}

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the key store, start polling it, open the budget state and listen for revocations."""
        self.state = open_state(self.config.state)
        self.budgets = BudgetGuard(self.state)
        if self._jwks is not None and self.config.jwt is not None and self.config.jwt.jwks_url is not None:
            # A JWKS URL is fetched off the event loop, ahead of its TTL, so requests rarely wait on it.
            await self._refresh_jwks()
            self._tasks.append(asyncio.create_task(self._keep_jwks_fresh(), name="tokenyard-jwks-refresh"))
        if self.cache is not None:
            await asyncio.to_thread(self.cache.refresh)
            self._tasks.append(asyncio.create_task(self._poll_store(), name="tokenyard-keystore-poll"))
            self._tasks.append(asyncio.create_task(self._follow_revocations(), name="tokenyard-keystore-follow"))

    async def close(self) -> None:
        if self._jwks_reload is not None:
            self._tasks.append(self._jwks_reload)
            self._jwks_reload = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.state is not None:
            await self.state.aclose()
            self.state = None
        self.audit.close()

    async def reload_keys(self) -> None:
        if self.cache is None:
            return
        try:
            await asyncio.to_thread(self.cache.refresh)
        except Exception as exc:  # a locked or vanished store must not stop the gateway: keep the last index
            log.warning("key store refresh failed: %s", exc)

    async def _refresh_jwks(self) -> None:
        assert self._jwks is not None
        try:
            await asyncio.to_thread(self._jwks.refresh)
        except JWKS_LOAD_ERRORS as exc:
            log.warning("JWKS refresh failed: %s", exc)

    async def _keep_jwks_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._jwks_refresh_s)
            await self._refresh_jwks()

    async def _poll_store(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            await self.reload_keys()

    async def _follow_revocations(self) -> None:
        """Reload at once on a broadcast; the poll still covers a backend that is down (retry every 5 s)."""
        assert self.state is not None
        while True:
            try:
                subscription = await self.state.subscribe(KEYS_CHANNEL)
            except (StateUnavailable, OSError) as exc:
                log.warning("cannot follow key revocations: %s", exc)
                await asyncio.sleep(5.0)
                continue
            try:
                async for _ in subscription:
                    await self.reload_keys()
            except (StateUnavailable, OSError):
                pass
            finally:
                await subscription.aclose()
            await asyncio.sleep(1.0)

    async def announce_key_change(self) -> None:
        """Tell every replica sharing ``state`` to reload the key store now."""
        if self.state is not None:
            await self.state.publish(KEYS_CHANNEL, b"reload")

    # -- authentication -----------------------------------------------------------------------------------------
    async def refresh_signing_keys(self, request: web.BaseRequest) -> None:
        """Before ``authenticate``: fetch a JWKS URL again, off the event loop, when this request's token needs it.

        A token naming an unknown key id (a rotation) or a JWKS past its TTL needs a fetch; it runs in a thread,
        at most one at a time (concurrent requests wait on the same one) and at most once per 10 s, so neither a
        slow identity provider nor made-up key ids can stall the event loop.
        """
        if self._jwks is None or self.config.jwt is None or self.config.jwt.jwks_url is None:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not looks_like_jwt(token) or not token.isascii():
            return
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return  # malformed: authenticate refuses it
        if not self._jwks.reload_due(kid if isinstance(kid, str) else None):
            return
        if self._jwks_reload is None or self._jwks_reload.done():
            self._jwks_reload = asyncio.create_task(self._refresh_jwks(), name="tokenyard-jwks-reload")
        await asyncio.shield(self._jwks_reload)

    def authenticate(self, request: web.BaseRequest) -> Principal:
        """The caller of ``request``, or ``AuthFailure`` (401)."""
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AuthFailure("malformed Authorization header: send 'Authorization: Bearer KEY'",
                                  "invalid_api_key", "malformed authorization header")
            if self.jwt is not None and looks_like_jwt(token):
                return self._service(self._verify_jwt(token))
            return self._api_key(token)
        peercert = request.transport.get_extra_info("peercert") if request.transport is not None else None
        if peercert:
            try:
                return self._service(identity_from_peercert(peercert))
            except AuthError as exc:
                raise AuthFailure(f"client certificate not accepted: {exc.reason}", "invalid_client_certificate",
                                  exc.reason) from exc
        raise AuthFailure("missing credential: send 'Authorization: Bearer KEY'", "missing_api_key",
                          "missing credential")

    def _verify_jwt(self, token: str) -> Identity:
        assert self.jwt is not None
        try:
            return self.jwt.verify(token)
        except AuthError as exc:
            code = "expired_token" if exc.reason == "token expired" else "invalid_token"
            raise AuthFailure(f"invalid token: {exc.reason}", code, exc.reason) from exc

    def _api_key(self, token: str) -> Principal:
        key = self._keys.find(token)
        from_store = False
        if key is None and self.cache is not None:
            record, status = self.cache.lookup(token)
            if status in ("revoked", "expired"):
                raise AuthFailure(f"API key {status}", f"{status}_api_key", f"key {status}")
            if record is not None:
                key, from_store = key_from_record(record, self._config_key_names), True
        if key is None:
            raise AuthFailure("invalid API key", "invalid_api_key", "unknown key")
        return Principal(Identity(kind="key", subject=key.name, tenant=key.tenant), key, from_store)

    def _service(self, identity: Identity) -> Principal:
        """A service identity's scope: its tenant (when it names a configured one); models by east-west policy."""
        tenant = identity.tenant if identity.tenant in self.config.tenants else ""
        return Principal(identity, KeyConfig(tenant=tenant or "", name=f"{identity.kind}:{identity.subject}"))

    def audit_failure(self, request: web.BaseRequest, failure: AuthFailure, request_id: str) -> None:
        self.audit.auth_failure(failure.reason, request.remote, request.path, request_id)

    # -- authorisation ------------------------------------------------------------------------------------------
    def route_refusal(self, request: web.BaseRequest, principal: Principal, request_id: str) -> str | None:
        """None when an API key's ``routes`` allow the request's path; else the 403 message (and an audit event).

        Service identities have no ``routes`` of their own (the east-west policy scopes them), so they pass here.
        """
        path = request.path
        if principal.is_service or route_allowed(principal.key.routes, path):
            return None
        self.audit.access_denied("route not allowed for key", principal.identity.subject, request.remote, path,
                                 request_id)
        return f"API key {principal.key.name} may not call route {path!r} (not among the key's routes)"

    def decide(self, principal: Principal, kind: str, name: str) -> Decision | None:
        """The east-west decision for a service identity; None for API keys (scoped by the key itself)."""
        if not principal.is_service:
            return None
        return self.policy.decide(principal.identity.subject, kind, name)

    def store_key_limiter(self, principal: Principal) -> RateLimiter | None:
        """The rpm/tpm/concurrency limiter of a key-store key (config keys' are in the gateway's own limiter).

        One small limiter per key name, kept while the key's limits stay the same, so buckets survive reloads.
        """
        key = principal.key
        if not principal.from_store or not (key.rpm or key.tpm or key.max_concurrency):
            return None
        limit = RateLimit(rpm=key.rpm, tpm=key.tpm, max_concurrency=key.max_concurrency)
        found = self._store_limiters.get(key.name)
        if found is None or found[0] != limit:
            found = (limit, RateLimiter(keys={key.name: limit}))
            self._store_limiters[key.name] = found
        return found[1]

    def budgets_of(self, key: KeyConfig | None) -> list[Budget]:
        if key is None:
            return []
        tenant = self.config.tenants.get(key.tenant)
        return budgets_for(key.name, key.tokens_per_day, key.tokens_per_month, key.tenant,
                           tenant.tokens_per_day if tenant is not None else None,
                           tenant.tokens_per_month if tenant is not None else None)
