"""A stream started on one replica is resumed on another: two gateways sharing a real redis-server."""

from __future__ import annotations

from contextlib import AsyncExitStack

import aiohttp

from tests.conftest import RedisServer
from tests.integration.resume.helpers import (
    KEY_B,
    auth,
    body,
    metric_value,
    resume,
    resume_config,
    start_and_leave,
    wait_until,
)
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

TOKENS = 30


async def test_a_stream_dropped_on_one_replica_resumes_on_another(redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(itl_ms=40.0))
        config = resume_config([sim], state=redis_server.url + "?timeout_ms=2000")
        owner = await stack.enter_async_context(running_gateway(config))
        other = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())

        got = await start_and_leave(session, owner.base_url, body(TOKENS), 3, auth())
        assert await resume(session, other.base_url, got, auth(KEY_B)) == 404  # never another tenant's
        got.error = None
        assert await resume(session, other.base_url, got, auth()) == 200
        assert got.done and got.error is None
        ids = [i for i, _ in got.events]
        assert ids == list(range(1, len(ids) + 1))
        assert got.content_events() == TOKENS
        stats = await sim.stats()
        assert stats["generated_tokens"] == TOKENS and stats["aborted_requests"] == 0  # generated once

        async def owner_counted_a_resume() -> bool:
            text = await (await session.get(owner.base_url + "/metrics")).text()
            return metric_value(text, "tokenyard_requests_total", outcome="client_resumed") == 1

        await wait_until(owner_counted_a_resume)
        text = await (await session.get(other.base_url + "/metrics")).text()
        assert metric_value(text, "tokenyard_stream_reconnects_total", result="resumed") == 1


async def test_after_the_window_no_replica_resumes_and_the_upstream_stopped(redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(itl_ms=20.0))
        config = resume_config([sim], window_ms=300, state=redis_server.url + "?timeout_ms=2000")
        owner = await stack.enter_async_context(running_gateway(config))
        other = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        got = await start_and_leave(session, owner.base_url, body(2000), 2, auth())

        async def aborted() -> bool:
            return int((await sim.stats())["aborted_requests"]) == 1

        await wait_until(aborted)

        async def gone_everywhere() -> bool:
            probe = type(got)(request_id=got.request_id, events=list(got.events))
            return await resume(session, other.base_url, probe, auth()) == 404

        await wait_until(gone_everywhere, timeout_s=5.0)  # the owner deletes the shared record as it expires
        assert await resume(session, owner.base_url, got, auth()) == 404
