"""Rate limiter engine: scopes, all-or-nothing charging, reconciliation, concurrency and headers."""

from __future__ import annotations

import pytest

from tokenyard.traffic.ratelimit import (
    CONCURRENCY,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    RateLimit,
    RateLimiter,
    RateTicket,
    format_reset,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def t(tokens: int = 100, key: str = "k1", tenant: str = "acme", klass: str = "standard") -> RateTicket:
    return RateTicket(request_id="r", key=key, tenant=tenant, klass=klass, estimated_tokens=tokens)


def test_requests_per_minute_refill_and_headers() -> None:
    clock = Clock()
    rl = RateLimiter(tenants={"acme": RateLimit(rpm=2)}, clock=clock)
    first = rl.check(t())
    assert first.allowed
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert rl.check(t()).allowed
    refused = rl.check(t())
    assert (refused.allowed, refused.reason, refused.scope, refused.status) == (
        False, REQUESTS_PER_MINUTE, "tenant:acme", 429)
    assert refused.retry_after_s == 30 and refused.headers["retry-after"] == "30"
    clock.now = 30.0
    assert rl.check(t()).allowed
    assert rl.check(t(tenant="other")).allowed  # unlimited tenant


def test_tokens_charged_by_estimate_then_reconciled() -> None:
    clock = Clock()
    rl = RateLimiter(tenants={"acme": RateLimit(tpm=1000)}, clock=clock)
    big = t(tokens=800)
    assert rl.check(big).allowed
    assert rl.check(t(tokens=300)).reason == TOKENS_PER_MINUTE
    rl.reconcile(big, actual_tokens=200)  # refund 600
    ok = rl.check(t(tokens=300))
    assert ok.allowed and ok.headers["x-ratelimit-remaining-tokens"] == "500"
    under = t(tokens=100)
    assert rl.check(under).allowed
    rl.reconcile(under, actual_tokens=1500)  # extra debit: the bucket goes negative
    refused = rl.check(t(tokens=1))
    assert not refused.allowed and refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert refused.retry_after_s is not None and refused.retry_after_s > 60


def test_all_or_nothing_across_scopes() -> None:
    rl = RateLimiter(keys={"k1": RateLimit(rpm=100)}, tenants={"acme": RateLimit(tpm=150)},
                     classes={"standard": RateLimit(rpm=1000)}, clock=Clock())
    assert rl.check(t(tokens=100)).allowed
    refused = rl.check(t(tokens=100))
    assert refused.scope == "tenant:acme"
    allowed = rl.check(t(tokens=50))
    # the refused request charged nothing: 100 - 2 requests remain on the key
    assert allowed.headers["x-ratelimit-remaining-requests"] == "98"


def test_concurrency_release() -> None:
    rl = RateLimiter(keys={"k1": RateLimit(max_concurrency=1)}, clock=Clock())
    a = t()
    assert rl.check(a).allowed
    refused = rl.check(t())
    assert refused.reason == CONCURRENCY and refused.retry_after_s == 1
    rl.release(a)
    assert rl.check(t()).allowed


def test_tightest_scope_is_reported() -> None:
    rl = RateLimiter(keys={"k1": RateLimit(rpm=10)}, tenants={"acme": RateLimit(rpm=1000)}, clock=Clock())
    headers = rl.check(t()).headers
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-reset-requests"] == "6s"


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "250ms"), (6.0, "6s"), (90.0, "1m30s"), (59.5, "1m0s")])
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
