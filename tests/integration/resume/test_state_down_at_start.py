"""A gateway whose Redis is down when it starts: it starts, serves, and its cross-replica features (resume
attach/detach, admin abort) come back by themselves once Redis is up (docs/operations.md, "Failure modes")."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import aiohttp
import pytest

from tests.conftest import RedisServer
from tests.integration.resume.helpers import (
    auth,
    body,
    resume,
    resume_config,
    start_and_leave,
    wait_until,
)
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

TOKENS = 60
ADMIN = {"Authorization": "Bearer admin-secret"}


async def test_the_gateway_starts_with_redis_down_and_recovers_when_it_comes_up(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    redis_server.stop()  # the port stays reserved for this test's redis-server: nothing else listens there
    caplog.set_level(logging.WARNING)
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(itl_ms=40.0))
        # A window shorter than the stream: the owner closes it unless it hears the remote reader attach.
        config = resume_config([sim], window_ms=1000, admin={"key": "admin-secret"},
                               state=redis_server.url + "?timeout_ms=200&cooldown_ms=100")
        owner = await stack.enter_async_context(running_gateway(config))
        other = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())

        # Degraded, not dead: it answers, and says why in its log.
        async with session.post(owner.base_url + "/v1/chat/completions", json=body(3, "hi"), headers=auth()) as r:
            assert r.status == 200
            await r.read()
        assert not owner.gateway.resume.following
        assert any("cross-replica resume degraded" in m for m in caplog.messages)

        redis_server.start()

        async def recovered() -> bool:
            aborts = owner.gateway.scaleout.aborts
            return all(gw.gateway.resume.following and aborts is not None and aborts.subscribed == 2
                       for gw in (owner, other))

        await wait_until(recovered)
        assert any("cross-replica resume restored" in m for m in caplog.messages)

        # Resume on the other replica: the owner hears the attach, so its 1 s window does not close the stream.
        got = await start_and_leave(session, owner.base_url, body(TOKENS), 2, auth())
        assert await resume(session, other.base_url, got, auth()) == 200
        assert got.done and got.error is None and got.content_events() == TOKENS

        # And an admin abort sent to the other replica reaches the owner's request.
        async with session.post(owner.base_url + "/v1/chat/completions", json=body(2000), headers=auth()) as resp:
            request_id = resp.headers["x-request-id"]
            await resp.content.readline()
            async with session.post(f"{other.base_url}/admin/requests/{request_id}/abort", headers=ADMIN) as ab:
                assert ab.status == 200 and (await ab.json())["aborted"] is True
            text = (await asyncio.wait_for(resp.read(), 10)).decode()
        assert "event: error" in text and "[DONE]" not in text
