"""RedisState beyond the contract: atomicity across clients, dead holders, outages and recovery."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import RedisServer, free_port
from tokenyard.state import BucketTake, StateUnavailable, open_state
from tokenyard.state.redis import RedisState

pytestmark = pytest.mark.redis

T0 = 1_800_000_000.0


async def test_three_clients_hammering_one_limit_admit_at_most_the_limit(flushed_redis: RedisServer) -> None:
    clients = [open_state(flushed_redis.url, timeout_s=5.0) for _ in range(3)]
    try:
        async def hammer_bucket(client: object, n: int) -> int:
            assert isinstance(client, RedisState)
            results = await asyncio.gather(*(client.take("global", 1, rate_per_s=0, burst=200) for _ in range(n)))
            return sum(r.allowed for r in results)

        async def hammer_window(client: object, n: int) -> int:
            assert isinstance(client, RedisState)
            results = await asyncio.gather(*(client.window_hit("rpm", 200, 60.0, now=T0) for _ in range(n)))
            return sum(r.allowed for r in results)

        admitted = await asyncio.gather(*(hammer_bucket(c, 150) for c in clients))
        assert sum(admitted) == 200  # 450 attempts, exactly the burst admitted
        admitted = await asyncio.gather(*(hammer_window(c, 150) for c in clients))
        assert sum(admitted) == 200
        pair = [BucketTake("rpm", 1, 0, 100), BucketTake("tpm", 10, 0, 1500)]
        multi = await asyncio.gather(*(c.take_all(pair) for c in clients for _ in range(60)))
        assert sum(r.allowed for r in multi) == 100  # rpm binds first; tpm charged only with it
        assert (await clients[1].take("tpm", 0, 0, 1500)).remaining == pytest.approx(500)
        granted = await asyncio.gather(*(c.acquire_lease("ep", f"h{i}-{n}", 10, 30)
                                         for i, c in enumerate(clients) for n in range(20)))
        assert sum(granted) == 10
        assert await clients[0].lease_count("ep") == 10
    finally:
        for client in clients:
            await client.aclose()


async def test_a_dead_holders_leases_expire_for_the_other_replicas(flushed_redis: RedisServer) -> None:
    doomed = open_state(flushed_redis.url, timeout_s=5.0)
    survivor = open_state(flushed_redis.url, timeout_s=5.0)
    try:
        assert all([await doomed.acquire_lease("ep", f"r{n}", 3, ttl_s=0.3) for n in range(3)])
        await doomed.aclose()  # the replica dies without releasing
        assert not await survivor.acquire_lease("ep", "s", 3, ttl_s=30)
        await asyncio.sleep(0.6)
        assert await survivor.lease_count("ep") == 0
        assert await survivor.acquire_lease("ep", "s", 3, ttl_s=30)
    finally:
        await survivor.aclose()


async def test_publish_on_one_client_reaches_subscribers_on_another(flushed_redis: RedisServer) -> None:
    a = open_state(flushed_redis.url, timeout_s=5.0)
    b = open_state(flushed_redis.url, timeout_s=5.0)
    try:
        subscription = await b.subscribe("abort")
        await a.publish("abort", b"req-42")
        async with asyncio.timeout(5):
            assert await anext(aiter(subscription)) == b"req-42"
    finally:
        await a.aclose()
        await b.aclose()


async def test_prefixes_isolate_deployments(flushed_redis: RedisServer) -> None:
    prod = open_state(flushed_redis.url + "?prefix=prod")
    staging = open_state(flushed_redis.url, prefix="staging")
    try:
        await prod.set("k", b"prod")
        assert await staging.get("k") is None
        assert (await prod.take("b", 1, 0, 1, now=T0)).allowed
        assert (await staging.take("b", 1, 0, 1, now=T0)).allowed
    finally:
        await prod.aclose()
        await staging.aclose()


async def test_unreachable_redis_raises_state_unavailable_quickly() -> None:
    state = open_state(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await state.take("k", 1, 1, 1)
        with pytest.raises(StateUnavailable):
            await state.subscribe("c")
        assert time.monotonic() - started < 10  # bounded, not hanging (generous: the machine is shared)
        assert not (await state.health()).ok
    finally:
        await state.aclose()


async def test_recovers_by_itself_after_redis_restarts(redis_server: RedisServer) -> None:
    state = open_state(redis_server.url, timeout_s=1.0)
    listener = open_state(redis_server.url, timeout_s=1.0)
    try:
        subscription = await listener.subscribe("revoke")
        assert (await state.take("k", 1, 1, 5)).allowed
        redis_server.stop()
        with pytest.raises(StateUnavailable):
            await state.take("k", 1, 1, 5)
        assert not (await state.health()).ok
        redis_server.start()
        assert (await state.health()).ok
        assert (await state.take("k", 1, 1, 5)).allowed  # scripts reload after the restart (NOSCRIPT)
        assert await state.acquire_lease("ep", "h", 1, 30)
        # The subscriber resubscribes in the background; publish until it hears one (at-most-once during outage).
        async with asyncio.timeout(15):
            reader = asyncio.ensure_future(anext(aiter(subscription)))
            while not reader.done():
                await state.publish("revoke", b"key-7")
                await asyncio.wait({reader}, timeout=0.1)
            assert reader.result() == b"key-7"
    finally:
        await state.aclose()
        await listener.aclose()


async def test_after_a_failure_calls_fail_fast_until_the_cooldown_ends(redis_server: RedisServer) -> None:
    state = open_state(redis_server.url + "?cooldown_ms=300", timeout_s=1.0)
    try:
        redis_server.stop()
        with pytest.raises(StateUnavailable):
            await state.get("k")
        redis_server.start()
        with pytest.raises(StateUnavailable, match="failed within"):
            await state.get("k")  # Redis is back, but the breaker is still open: no call was made
        await asyncio.sleep(0.4)
        assert await state.get("k") is None  # the first call after the cool-down reaches Redis again
    finally:
        await state.aclose()
