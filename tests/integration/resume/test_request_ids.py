"""Request ids cannot be used to reach another request: a reused id is refused, generated ids are unguessable,
a stream the gateway closes under a connected client ends with an error event, and two tenants with the same
id on two replicas keep separate resume records."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from tests.conftest import RedisServer
from tests.integration.resume.helpers import (
    KEY_B,
    Received,
    auth,
    body,
    read_sse,
    resume,
    resume_config,
    start_and_leave,
)
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

TOKENS = 60
ADMIN = {"Authorization": "Bearer admin-secret"}


async def _refused(session: aiohttp.ClientSession, base_url: str, request_id: str,
                   headers: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    async with session.post(base_url + "/v1/chat/completions", json=body(5),
                            headers={**headers, "x-request-id": request_id}) as resp:
        return resp.status, await resp.json(), resp.headers.get("x-request-id", "")


async def test_another_tenant_reusing_a_live_stream_id_is_refused_and_the_stream_goes_on() -> None:
    async with running_sim(itl_ms=15.0) as sim, \
            running_gateway(resume_config([sim], admin={"key": "admin-secret"})) as gw, \
            aiohttp.ClientSession() as session:
        got = Received()
        async with session.post(gw.base_url + "/v1/chat/completions", json=body(TOKENS), headers=auth()) as resp:
            got.request_id = resp.headers["x-request-id"]
            await read_sse(resp, got, leave_after_content=3)  # A is streaming

            status, error, echoed = await _refused(session, gw.base_url, got.request_id, auth(KEY_B))
            assert status == 409, error
            assert error["error"]["code"] == "request_id_in_use" and error["error"]["param"] == "x-request-id"
            assert error["error"]["type"] == "invalid_request_error"
            assert echoed and echoed != got.request_id  # the refused request has an id of its own
            # Without a credential the answer is 401: anonymous callers cannot probe which ids are in use.
            async with session.post(gw.base_url + "/v1/chat/completions", json=body(5),
                                    headers={"x-request-id": got.request_id}) as anonymous:
                assert anonymous.status == 401

            async with session.get(gw.base_url + "/admin/requests", headers=ADMIN) as listing:
                rows = [row for row in (await listing.json())["requests"] if row["id"] == got.request_id]
            assert [row["tenant"] for row in rows] == ["a"]  # the admin API still sees A's request, once

            await read_sse(resp, got)  # A's stream is whole: every token, then [DONE]
        assert got.done and got.error is None
        assert got.content_events() == TOKENS

        # After it ended, its resume window is open: the id stays reserved, and A can still resume it.
        status, error, _ = await _refused(session, gw.base_url, got.request_id, auth(KEY_B))
        assert status == 409 and error["error"]["code"] == "request_id_in_use"
        again = Received(request_id=got.request_id)
        assert await resume(session, gw.base_url, again, auth()) == 200
        assert again.done and again.content_events() == TOKENS


async def test_generated_ids_are_random_and_a_free_client_id_is_kept() -> None:
    async with running_sim(itl_ms=1.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        ids = []
        for _ in range(3):
            async with session.post(gw.base_url + "/v1/chat/completions", json=body(2), headers=auth()) as resp:
                assert resp.status == 200
                ids.append(resp.headers["x-request-id"])
                await resp.read()
        assert all(re.fullmatch(r"req-[0-9a-f]{24}", i) for i in ids), ids
        assert len(set(ids)) == 3
        async with session.post(gw.base_url + "/v1/chat/completions", json=body(2),
                                headers={**auth(), "x-request-id": "my-own-id"}) as resp:
            assert resp.status == 200 and resp.headers["x-request-id"] == "my-own-id"
            await resp.read()


async def test_a_stream_closed_by_the_gateway_under_its_client_ends_with_an_error_event() -> None:
    async with running_sim(itl_ms=15.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        got = Received()
        async with session.post(gw.base_url + "/v1/chat/completions", json=body(2000), headers=auth()) as resp:
            await read_sse(resp, got, leave_after_content=2)
            await gw.gateway.resume.close()  # what shutdown does to every stream still running
            await asyncio.wait_for(read_sse(resp, got), 10)
        assert not got.done
        assert got.error is not None and got.error["code"] == "stream_closed"


async def test_two_tenants_with_one_id_on_two_replicas_keep_their_own_streams(redis_server: RedisServer) -> None:
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(itl_ms=20.0))
        config = resume_config([sim], state=redis_server.url + "?timeout_ms=2000")
        first = await stack.enter_async_context(running_gateway(config))
        second = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        same = {"x-request-id": "same-id"}
        got_a = await start_and_leave(session, first.base_url, body(TOKENS), 3, {**auth(), **same})
        got_b = await start_and_leave(session, second.base_url, body(TOKENS, "another story"), 3,
                                      {**auth(KEY_B), **same})
        assert got_a.request_id == got_b.request_id == "same-id"
        # Each tenant resumes its own stream on the replica that does not own it (the shared records).
        assert await resume(session, second.base_url, got_a, auth()) == 200
        assert await resume(session, first.base_url, got_b, auth(KEY_B)) == 200
        for got in (got_a, got_b):
            assert got.done and got.error is None
            assert got.content_events() == TOKENS
            assert [i for i, _ in got.events] == list(range(1, len(got.events) + 1))
