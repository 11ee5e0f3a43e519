"""Rate limits per API key, tenant and class: requests/minute, tokens/minute, concurrent requests.

``check(ticket)`` looks at every scope the request belongs to (key, tenant, class) and charges all of them
only if all allow: one request, its estimated tokens, one concurrency slot. The refusal names the scope and
limit that refused and a Retry-After. After the response, ``reconcile(ticket, actual_tokens)`` refunds an
over-estimate or debits an under-estimate (the bucket may go negative: the next requests wait it off), and
``release(ticket)`` gives the concurrency slot back; call it on every exit path.

Headers follow OpenAI's ``x-ratelimit-*`` convention; with several scopes the tightest (least remaining)
is reported. Buckets live in this process (one gateway replica); a shared-state backend can replace it later
behind the same methods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tokenyard.policy.token_bucket import ConcurrencyCounter, TokenBucket

REQUESTS_PER_MINUTE = "requests_per_minute"
TOKENS_PER_MINUTE = "tokens_per_minute"
CONCURRENCY = "concurrency"
ALLOWED = "allowed"


@dataclass(frozen=True)
class RateLimit:
    """Limits of one scope; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True)
class RateTicket:
    """Who is asking and how many tokens the request is estimated to use (prompt + max output)."""

    request_id: str
    key: str
    tenant: str
    klass: str
    estimated_tokens: int


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    reason: str
    scope: str | None = None  # "key:NAME", "tenant:NAME" or "class:NAME" that refused
    retry_after_s: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return 200 if self.allowed else 429


@dataclass
class _Scope:
    name: str
    requests: TokenBucket | None
    tokens: TokenBucket | None
    concurrency: ConcurrencyCounter


def merge_headers(into: dict[str, str], headers: Mapping[str, str]) -> None:
    """Add one limiter's ``x-ratelimit-*`` headers to a response's, keeping the tightest scope per kind.

    A request can pass several limiters (a key-store key's own, the config's, the shared one); for requests
    and for tokens, the limit/remaining/reset trio with the least remaining wins, so a client is never told
    it has the tenant's 599 left when its key has 2. ``retry-after`` is not copied (refusals set it).
    """
    for label in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{label}")
        if remaining is None:
            continue
        current = into.get(f"x-ratelimit-remaining-{label}")
        if current is not None and int(current) <= int(remaining):
            continue
        for field_name in ("limit", "remaining", "reset"):
            name = f"x-ratelimit-{field_name}-{label}"
            if name in headers:
                into[name] = headers[name]


def format_reset(seconds: float) -> str:
    """OpenAI-style duration: ``250ms``, ``6s``, ``1m30s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class RateLimiter:
    """In-memory limiter over three scope kinds. Limits are looked up by name in the given mappings."""

    def __init__(
        self,
        *,
        keys: Mapping[str, RateLimit] | None = None,
        tenants: Mapping[str, RateLimit] | None = None,
        classes: Mapping[str, RateLimit] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"key": dict(keys or {}), "tenant": dict(tenants or {}), "class": dict(classes or {})}
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured (without one, every check allows and sets no header)."""
        return any(self._limits.values())

    def _scopes_for(self, ticket: RateTicket, now: float) -> list[_Scope]:
        out = []
        for kind, name in (("key", ticket.key), ("tenant", ticket.tenant), ("class", ticket.klass)):
            limit = self._limits[kind].get(name)
            if limit is None:
                continue
            scope_name = f"{kind}:{name}"
            scope = self._scopes.get(scope_name)
            if scope is None:
                scope = _Scope(
                    scope_name,
                    TokenBucket.per_minute(limit.rpm, now) if limit.rpm else None,
                    TokenBucket.per_minute(limit.tpm, now) if limit.tpm else None,
                    ConcurrencyCounter(limit.max_concurrency),
                )
                self._scopes[scope_name] = scope
            out.append(scope)
        return out

    def check(self, ticket: RateTicket) -> RateDecision:
        """Allow and charge every scope, or refuse without charging any."""
        now = self._clock()
        scopes = self._scopes_for(ticket, now)
        for scope in scopes:
            if scope.requests is not None and not scope.requests.can_take(1, now):
                return self._refuse(REQUESTS_PER_MINUTE, scope, scope.requests.wait_for(1, now), scopes, now)
            if scope.tokens is not None and not scope.tokens.can_take(ticket.estimated_tokens, now):
                wait = scope.tokens.wait_for(ticket.estimated_tokens, now)
                return self._refuse(TOKENS_PER_MINUTE, scope, wait, scopes, now)
            if not scope.concurrency.can_acquire():
                return self._refuse(CONCURRENCY, scope, 1.0, scopes, now)
        for scope in scopes:
            if scope.requests is not None:
                scope.requests.take(1, now)
            if scope.tokens is not None:
                scope.tokens.take(ticket.estimated_tokens, now)
            scope.concurrency.try_acquire()
        return RateDecision(True, ALLOWED, headers=self._headers(scopes, now))

    def reconcile(self, ticket: RateTicket, actual_tokens: int) -> None:
        """Settle the token estimate against what the request really used."""
        now = self._clock()
        for scope in self._scopes_for(ticket, now):
            if scope.tokens is not None:
                scope.tokens.adjust(ticket.estimated_tokens - actual_tokens, now)

    def release(self, ticket: RateTicket) -> None:
        """Give back the concurrency slot ``check`` took (only after an allowed decision)."""
        for scope in self._scopes_for(ticket, self._clock()):
            scope.concurrency.release()

    def _refuse(self, reason: str, scope: _Scope, wait_s: float, scopes: list[_Scope], now: float) -> RateDecision:
        retry = max(1, math.ceil(wait_s))
        headers = self._headers(scopes, now)
        headers["retry-after"] = str(retry)
        return RateDecision(False, reason, scope.name, retry, headers)

    @staticmethod
    def _headers(scopes: list[_Scope], now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        req = [s.requests for s in scopes if s.requests is not None]
        tok = [s.tokens for s in scopes if s.tokens is not None]
        for label, buckets in (("requests", req), ("tokens", tok)):
            if not buckets:
                continue
            tightest = min(buckets, key=lambda b: b.remaining(now))
            headers[f"x-ratelimit-limit-{label}"] = str(int(tightest.capacity))
            headers[f"x-ratelimit-remaining-{label}"] = str(tightest.remaining(now))
            headers[f"x-ratelimit-reset-{label}"] = format_reset(tightest.reset_after(now))
        return headers
