"""Resumable streams end to end: a real gateway in front of the simulator, a client that drops and comes back."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.resume.helpers import (
    KEY_B,
    Received,
    auth,
    body,
    metric_value,
    read_sse,
    resume,
    resume_config,
    start_and_leave,
    wait_until,
)
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

TOKENS = 30


def assert_whole(got_ids: list[int], content: int) -> None:
    assert got_ids == list(range(1, len(got_ids) + 1)), got_ids  # every id once, in order: no gap, no repeat
    assert content == TOKENS


async def test_resume_mid_stream_gets_the_rest_without_a_new_generation() -> None:
    async with running_sim(itl_ms=40.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(TOKENS), 3, auth())
        assert got.content_events() == 3
        assert await resume(session, gw.base_url, got, auth()) == 200
        assert got.done and got.error is None
        assert_whole([i for i, _ in got.events], got.content_events())
        stats = await sim.stats()
        assert stats["generated_tokens"] == TOKENS and stats["aborted_requests"] == 0
        text = (await (await session.get(gw.base_url + "/metrics")).text())
        assert metric_value(text, "tokenyard_requests_total", outcome="client_resumed") == 1
        assert metric_value(text, "tokenyard_requests_total", outcome="client_aborted") == 0
        assert metric_value(text, "tokenyard_stream_resumes_total", **{"class": "live"}) == 1
        assert metric_value(text, "tokenyard_stream_reconnects_total", result="resumed") == 1
        assert metric_value(text, "tokenyard_resume_gap_seconds_count", **{"class": "live"}) == 1
        assert metric_value(text, "tokenyard_upstream_aborts_total", reason="client_disconnect") == 0
        assert metric_value(text, "tokenyard_client_requests_total", protocol="HTTP/1.1", tls="none") == 1


async def test_resume_before_the_first_token() -> None:
    async with running_sim(ttft_ms=1500.0, itl_ms=10.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(TOKENS), 0, auth())  # only the response head
        assert got.events == []
        assert await resume(session, gw.base_url, got, auth()) == 200
        assert got.done
        assert_whole([i for i, _ in got.events], got.content_events())
        assert (await sim.stats())["generated_tokens"] == TOKENS


async def test_resume_after_the_upstream_finished_but_before_the_client_read_it() -> None:
    async with running_sim(itl_ms=10.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(TOKENS), 1, auth())

        async def finished() -> bool:
            return int((await sim.stats())["completed_requests"]) == 1

        await wait_until(finished)
        await asyncio.sleep(0.1)
        assert await resume(session, gw.base_url, got, auth()) == 200
        assert got.done
        assert_whole([i for i, _ in got.events], got.content_events())
        assert (await sim.stats())["generated_tokens"] == TOKENS


async def test_an_expired_window_aborts_the_upstream_and_the_stream_is_gone() -> None:
    async with running_sim(itl_ms=20.0) as sim, running_gateway(resume_config([sim], window_ms=400)) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(2000), 2, auth())

        async def aborted() -> bool:
            return int((await sim.stats())["aborted_requests"]) == 1

        await wait_until(aborted)
        generated = (await sim.stats())["generated_tokens"]
        assert 2 <= generated < 2000
        await asyncio.sleep(0.3)
        assert (await sim.stats())["generated_tokens"] == generated  # no zombie beyond the window
        assert await resume(session, gw.base_url, got, auth()) == 404
        assert got.error is not None and got.error["code"] == "stream_not_found"
        text = await (await session.get(gw.base_url + "/metrics")).text()
        assert metric_value(text, "tokenyard_upstream_aborts_total", reason="client_disconnect") == 1
        assert metric_value(text, "tokenyard_requests_total", outcome="client_aborted") == 1
        assert metric_value(text, "tokenyard_resume_window_tokens_total", **{"class": "live"}) > 0
        assert metric_value(text, "tokenyard_stream_disconnects_total", resumable="true") == 1


async def test_buffer_overflow_is_a_clear_error_never_a_gap() -> None:
    async with running_sim(itl_ms=5.0) as sim, running_gateway(resume_config([sim], buffer_events=5)) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(TOKENS), 1, auth())

        async def finished() -> bool:
            return int((await sim.stats())["completed_requests"]) == 1

        await wait_until(finished)
        await asyncio.sleep(0.1)
        assert await resume(session, gw.base_url, got, auth()) == 410
        assert got.error is not None and got.error["code"] == "resume_buffer_overflow"
        assert "overflow" in got.error["message"]
        text = await (await session.get(gw.base_url + "/metrics")).text()
        assert metric_value(text, "tokenyard_stream_reconnects_total", result="overflow") == 1


async def test_another_tenant_cannot_resume_a_stream() -> None:
    async with running_sim(itl_ms=40.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(TOKENS), 2, auth())
        assert await resume(session, gw.base_url, got, auth(KEY_B)) == 404
        assert got.error is not None and got.error["code"] == "stream_not_found"
        got.error = None
        async with session.get(f"{gw.base_url}/v1/streams/{got.request_id}") as resp:
            assert resp.status == 401  # no credential at all
        assert await resume(session, gw.base_url, got, auth()) == 200  # the owner still can
        assert got.done
        assert_whole([i for i, _ in got.events], got.content_events())


async def test_a_class_without_window_aborts_at_once_and_cannot_resume() -> None:
    async with running_sim(itl_ms=20.0) as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        got = await start_and_leave(session, gw.base_url, body(2000), 2, auth("sk-plain"))

        async def aborted() -> bool:
            return int((await sim.stats())["aborted_requests"]) == 1

        await wait_until(aborted, timeout_s=10.0)
        assert await resume(session, gw.base_url, got, auth("sk-plain")) == 404
        text = await (await session.get(gw.base_url + "/metrics")).text()
        assert metric_value(text, "tokenyard_requests_total", outcome="client_aborted") == 1
        assert metric_value(text, "tokenyard_upstream_aborts_total", reason="client_disconnect") == 1
        assert metric_value(text, "tokenyard_stream_disconnects_total", resumable="false") == 1


async def test_bad_last_event_id_is_a_400() -> None:
    async with running_sim() as sim, running_gateway(resume_config([sim])) as gw, \
            aiohttp.ClientSession() as session:
        resp = await session.get(gw.base_url + "/v1/streams/x", headers={"Last-Event-ID": "-3", **auth()})
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_last_event_id"
        resp.release()


async def test_heartbeats_during_a_long_prefill_on_both_paths() -> None:
    async with running_sim(ttft_ms=1200.0, itl_ms=5.0) as sim, \
            running_gateway(resume_config([sim], heartbeat_s=0.2, admission={"scrape": False})) as gw, \
            aiohttp.ClientSession() as session:
        # No scraped load signal: the simulator lists a request in its 1.2 s prefill as waiting, and the plain
        # class (the lowest priority: the sheddable tier) was then shed with probability 0.2^5 x 300 ~ 10 % right
        # after the first request (a 429, no stream; seen in a CI rehearsal). Shedding has its own tests; this
        # one is about heartbeats.
        for key in ("sk-tenant-a", "sk-plain"):  # resumable class, and the plain relay
            got = Received()
            async with session.post(gw.base_url + "/v1/chat/completions", json=body(5), headers=auth(key)) as resp:
                assert resp.status == 200, (key, resp.status, await resp.text())
                await read_sse(resp, got)
            assert got.done and got.content_events() == 5, (key, got)
            assert got.comments >= 2, key  # ~1.2 s of silence at 0.2 s intervals
