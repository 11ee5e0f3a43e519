"""The shared pieces on their own: the global limiter's all-or-nothing charge, fail open/closed, the semantic
index shared through Redis between two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tests.conftest import RedisServer
from tokenyard.cache.semantic import SemanticCache
from tokenyard.state import BucketTake, MemoryState, StateUnavailable, TakeAllResult, open_state
from tokenyard.traffic.distributed import STATE_DOWN, GlobalLimiter, LeaseKeeper
from tokenyard.traffic.ratelimit import CONCURRENCY, TOKENS_PER_MINUTE, RateLimit, RateTicket


def ticket(tokens: int = 10, request: str = "r1") -> RateTicket:
    return RateTicket(request, "k", "acme", "standard", tokens)


async def test_a_refusal_by_one_scope_charges_none() -> None:
    state = MemoryState()
    limits = {"tenant:acme": RateLimit(rpm=100, tpm=50), "class:standard": RateLimit(rpm=3)}
    limiter = GlobalLimiter(state, limits, LeaseKeeper(state, 5.0), fail_open=True)
    assert (await limiter.check(ticket(40), "h1")).allowed
    refused = await limiter.check(ticket(40), "h2")
    assert not refused.allowed and refused.reason == TOKENS_PER_MINUTE and refused.scope == "tenant:acme"
    assert refused.headers["x-ratelimit-limit-tokens"] == "50"
    assert (await limiter.check(ticket(5), "h3")).allowed  # the refusal charged nothing
    await limiter.settle(ticket(40), "h1", 0)  # full refund of the first request's estimate
    assert (await limiter.check(ticket(40), "h4")).allowed


async def test_concurrency_is_a_lease_given_back_on_release() -> None:
    state = MemoryState()
    limiter = GlobalLimiter(state, {"tenant:acme": RateLimit(max_concurrency=1)}, LeaseKeeper(state, 5.0), True)
    assert (await limiter.check(ticket(), "h1")).allowed
    refused = await limiter.check(ticket(request="r2"), "h2")
    assert not refused.allowed and refused.reason == CONCURRENCY
    await limiter.release(ticket(), "h1")
    assert (await limiter.check(ticket(request="r2"), "h2")).allowed


class _Down(MemoryState):
    async def take_all(self, takes: Sequence[BucketTake], now: float | None = None) -> TakeAllResult:
        raise StateUnavailable("down")


async def test_redis_down_admits_or_refuses_as_configured() -> None:
    limits = {"tenant:acme": RateLimit(rpm=1)}
    state = _Down()
    assert (await GlobalLimiter(state, limits, LeaseKeeper(state, 5.0), fail_open=True).check(ticket(), "h")).allowed
    closed = await GlobalLimiter(state, limits, LeaseKeeper(state, 5.0), fail_open=False).check(ticket(), "h")
    assert not closed.allowed and closed.reason == STATE_DOWN


class _Axes:
    """A toy embedder: the text's first word picks an axis (no model needed for the sharing mechanics)."""

    WORDS = ("apple", "river", "music")

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, self.WORDS.index(text.split()[0])] = 1.0
        return out


async def test_a_semantic_entry_written_on_one_replica_is_found_on_another(redis_server: RedisServer) -> None:
    one, two = open_state(redis_server.url), open_state(redis_server.url)
    try:
        writer = SemanticCache(_Axes(), 0.9, 100, 60.0, state=one, refresh_s=0.0)
        reader = SemanticCache(_Axes(), 0.9, 100, 60.0, state=two, refresh_s=0.0)
        vector = await writer.embed("apple pie")
        await writer.add("acme|chat|w|x", vector, "exact-key-1")
        found = await reader.find("acme|chat|w|x", await reader.embed("apple tart"))
        assert found is not None and found[0] == "exact-key-1"
        assert await reader.find("other|chat|w|x", vector) is None  # another tenant's namespace
        assert await reader.find("acme|chat|w|x", await reader.embed("river bank")) is None
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_held_lease_that_redis_forgot_is_registered_again(redis_server: RedisServer) -> None:
    state = open_state(redis_server.url)
    keeper = LeaseKeeper(state, ttl_s=0.6)
    keeper.start()
    try:
        assert await keeper.acquire("budget:chat", "r1", 1)
        await asyncio.to_thread(redis_server.restart)  # an empty Redis: the lease is gone
        assert await state.lease_count("budget:chat") == 0
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await state.lease_count("budget:chat") == 1:
                break
        assert await state.lease_count("budget:chat") == 1  # the running request counts again
        await keeper.release("budget:chat", "r1")
        assert await state.lease_count("budget:chat") == 0
    finally:
        await keeper.close()
        await state.aclose()
