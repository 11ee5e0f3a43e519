"""Heartbeats while a streaming request waits in the gateway's admission queue (docs/admission.md, docs/resume.md).

A real gateway with one admission slot in front of the simulator: a long stream holds the slot, so the next
streaming request queues. Still queued after ``heartbeat_s``, it is answered 200 with SSE headers and kept alive
with ``: keep-alive`` comments; admitted later it gets its tokens on the same stream, refused later an SSE
``error`` event. Refusals before ``heartbeat_s`` keep their status codes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.resume.helpers import Received, read_sse
from tests.integration.traffic.admission_helpers import (
    ADMIN,
    chat,
    fixed_limit,
    inflight,
    sim_requests,
    sim_url,
    traffic_config,
    until,
)
from tokenyard.config import GatewayConfig
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import RunningSim, running_sim

pytestmark = pytest.mark.timeout(60)

HEARTBEAT_S = 0.2
CLASSES = {
    "premium": {"priority": 0, "queue_timeout_ms": 30_000},
    "standard": {"priority": 1, "queue_timeout_ms": 30_000},
    "batch": {"priority": 2, "queue_timeout_ms": 1_000},  # refused while queued, after some heartbeats
    "quick": {"priority": 3, "queue_timeout_ms": 50},  # refused before its first heartbeat
}


def queued_config(sim: RunningSim, log_path: Path) -> GatewayConfig:
    return traffic_config([sim_url(sim)], admission=fixed_limit(1), classes=CLASSES,
                          streams={"heartbeat_s": HEARTBEAT_S},
                          access_log={"enabled": True, "path": str(log_path)})


def requests_total(gw: RunningGateway, klass: str, outcome: str) -> float:
    total = 0.0
    for family in gw.gateway.metrics.registry.collect():
        for sample in family.samples:
            if (sample.name == "tokenyard_requests_total" and sample.labels["class"] == klass
                    and sample.labels["outcome"] == outcome):
                total += sample.value
    return total


def access_line(log_path: Path, request_id: str) -> dict[str, Any]:
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record["request_id"] == request_id:
            return dict(record)
    raise AssertionError(f"no access line for {request_id}")


async def hold_the_slot(session: aiohttp.ClientSession, gw: RunningGateway, sim: RunningSim,
                        tokens: int = 150) -> asyncio.Task[int]:
    """A long stream (premium) that holds the only admission slot; the task returns its status."""

    async def run() -> int:
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, tokens, stream=True),
                                headers={"x-tokenyard-class": "premium"}) as resp:
            await resp.read()
            return resp.status

    holder = asyncio.create_task(run())
    await until(lambda: inflight(gw) == 1)
    return holder


async def test_queued_stream_gets_heartbeats_then_its_tokens_on_the_same_response(tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    async with running_sim("fast", seed=11, itl_ms=20.0) as sim, \
            running_gateway(queued_config(sim, log_path)) as gw, aiohttp.ClientSession() as session:
        admission = gw.gateway.traffic.admission
        assert admission is not None
        holder = await hold_the_slot(session, gw, sim)
        got = Received()
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, 12, stream=True),
                                headers={"x-tokenyard-class": "standard"}) as resp:
            # The head arrives while the request is still queued (the holder streams for seconds).
            assert admission.depth("standard") == 1
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            assert resp.headers["x-tokenyard-class"] == "standard"
            got.request_id = resp.headers["x-request-id"]
            await read_sse(resp, got)
        assert got.comments >= 2  # heartbeats while it waited
        assert got.done and got.error is None
        assert [i for i, _ in got.events] == list(range(1, len(got.events) + 1))  # ids from 1, no gap
        assert got.content_events() == 12
        assert await holder == 200
        assert requests_total(gw, "standard", "completed") == 1
        line = access_line(log_path, got.request_id)
        assert line["status"] == 200 and line["outcome"] == "completed" and line["completion_tokens"] == 12


async def test_queued_stream_refused_later_ends_with_an_error_event(tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    async with running_sim("fast", seed=12, itl_ms=20.0) as sim, \
            running_gateway(queued_config(sim, log_path)) as gw, aiohttp.ClientSession() as session:
        holder = await hold_the_slot(session, gw, sim)
        seen = sim_requests(await sim.stats())
        got = Received()
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, 12, stream=True),
                                headers={"x-tokenyard-class": "batch"}) as resp:
            assert resp.status == 200
            got.request_id = resp.headers["x-request-id"]
            await read_sse(resp, got)
        assert got.comments >= 2
        assert not got.done  # no [DONE]: the answer never started
        assert got.event_names == ["error"]
        assert got.error is not None
        assert got.error["code"] == "queue_timeout" and got.error["type"] == "overloaded_error"
        assert got.error["message"]
        assert sim_requests(await sim.stats()) == seen  # it never reached the backend
        assert requests_total(gw, "batch", "expired") == 1
        line = access_line(log_path, got.request_id)
        assert line["status"] == 200 and line["outcome"] == "expired" and line["abort_reason"] == "queue_timeout"
        assert await holder == 200


async def test_refused_before_the_first_heartbeat_keeps_its_status(tmp_path: Path) -> None:
    async with running_sim("fast", seed=13, itl_ms=20.0) as sim, \
            running_gateway(queued_config(sim, tmp_path / "access.log")) as gw, aiohttp.ClientSession() as session:
        holder = await hold_the_slot(session, gw, sim)
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, 12, stream=True),
                                headers={"x-tokenyard-class": "quick"}) as resp:
            assert resp.status == 503
            assert "Retry-After" in resp.headers
            assert (await resp.json())["error"]["code"] == "queue_timeout"
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, 12, stream=True),
                                headers={"x-tokenyard-class": "standard", "x-tokenyard-deadline-ms": "60"}) as resp:
            assert resp.status == 504
            assert (await resp.json())["error"]["code"] == "deadline_exceeded"
        assert requests_total(gw, "quick", "expired") == 1
        assert await holder == 200


async def test_client_leaving_a_committed_queued_stream_frees_its_place(tmp_path: Path) -> None:
    async with running_sim("fast", seed=14, itl_ms=20.0) as sim, \
            running_gateway(queued_config(sim, tmp_path / "access.log")) as gw, aiohttp.ClientSession() as session:
        admission = gw.gateway.traffic.admission
        assert admission is not None
        holder = await hold_the_slot(session, gw, sim)
        resp = await session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, 12, stream=True),
                                  headers={"x-tokenyard-class": "standard"})
        try:
            assert resp.status == 200
            assert await resp.content.readline() == b": keep-alive\n"  # committed and kept alive
            assert admission.depth("standard") == 1
        finally:
            resp.close()  # the client leaves while still queued
        await until(lambda: admission.depth("standard") == 0, timeout=5)
        assert not holder.done()  # it left the queue at once, not when the slot came free
        await until(lambda: requests_total(gw, "standard", "client_aborted") == 1)
        assert await holder == 200
        await until(lambda: inflight(gw) == 0)
        assert sim_requests(await sim.stats()) == 1  # only the holder ever ran


async def test_admin_abort_of_a_committed_queued_stream_is_an_error_event(tmp_path: Path) -> None:
    async with running_sim("fast", seed=15, itl_ms=20.0) as sim, \
            running_gateway(queued_config(sim, tmp_path / "access.log")) as gw, aiohttp.ClientSession() as session:
        admission = gw.gateway.traffic.admission
        assert admission is not None
        holder = await hold_the_slot(session, gw, sim)
        got = Received()
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat(sim.model, 12, stream=True),
                                headers={"x-tokenyard-class": "standard"}) as resp:
            assert resp.status == 200
            assert await resp.content.readline() == b": keep-alive\n"
            request_id = resp.headers["x-request-id"]
            async with session.post(f"{gw.base_url}/admin/requests/{request_id}/abort", headers=ADMIN) as aborted:
                assert aborted.status == 200 and (await aborted.json())["aborted"]
            await read_sse(resp, got)
        assert not got.done and got.event_names == ["error"]
        assert got.error is not None and got.error["code"] == "admin"
        assert admission.depth("standard") == 0
        assert requests_total(gw, "standard", "error") == 1
        assert await holder == 200
        assert sim_requests(await sim.stats()) == 1
