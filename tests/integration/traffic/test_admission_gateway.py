"""Admission through the real gateway in front of a simulator: shedding order, early deadline rejection,
queue TTL expiry (the simulator never sees expired requests), and a queued client leaving frees its place."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

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
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import running_sim

pytestmark = pytest.mark.timeout(60)


async def post(session: aiohttp.ClientSession, gw: RunningGateway, body: dict[str, object], klass: str,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict[str, object]]:
    """Send one request as ``klass``; read it to the end; (status, headers, JSON error or {})."""
    all_headers = {"x-tokenyard-class": klass, **(headers or {})}
    async with session.post(gw.base_url + "/v1/chat/completions", json=body, headers=all_headers) as resp:
        raw = await resp.read()
        document = await resp.json(content_type=None) if resp.status != 200 else {}
        del raw
        return resp.status, dict(resp.headers), document


def metric(gw: RunningGateway, klass: str, outcome: str) -> float:
    """``tokenyard_requests_total`` of ``klass`` and ``outcome``, summed over models."""
    total = 0.0
    for family in gw.gateway.metrics.registry.collect():
        for sample in family.samples:
            if (sample.name == "tokenyard_requests_total" and sample.labels["class"] == klass
                    and sample.labels["outcome"] == outcome):
                total += sample.value
    return total


async def test_shedding_order_batch_then_standard_premium_last() -> None:
    # One endpoint that counts as full at 4 requests in flight (the instant saturation signal).
    async with running_sim("fast", seed=1, itl_ms=25.0) as sim:
        config = traffic_config([sim_url(sim)], admission=fixed_limit(4, endpoint_request_capacity=4))
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            model = sim.model
            held = [asyncio.create_task(post(session, gw, chat(model, 60, stream=True), "premium")) for _ in range(2)]
            await until(lambda: inflight(gw) == 2)
            # saturation 0.5: batch is shed (p = min(0.5^5 * 300, 1) = 1), standard still gets in
            status, headers, error = await post(session, gw, chat(model), "batch")
            assert status == 429 and error["error"]["code"] == "saturation_probabilistic"  # type: ignore[index]
            assert int(headers["Retry-After"]) >= 1
            held.append(asyncio.create_task(post(session, gw, chat(model, 60, stream=True), "standard")))
            held.append(asyncio.create_task(post(session, gw, chat(model, 60, stream=True), "premium")))
            await until(lambda: inflight(gw) == 4)
            # saturation 1.0: standard is shed too; premium is queued and served once a slot frees
            status, _, error = await post(session, gw, chat(model), "standard")
            assert status == 429 and error["error"]["code"] == "saturation_threshold"  # type: ignore[index]
            status, _, _ = await post(session, gw, chat(model), "batch")
            assert status == 429
            status, headers, _ = await post(session, gw, chat(model), "premium")
            assert status == 200 and int(headers["x-tokenyard-queue-ms"]) > 0
            assert all(result[0] == 200 for result in await asyncio.gather(*held))
            assert metric(gw, "batch", "shed") == 2 and metric(gw, "standard", "shed") == 1
            assert metric(gw, "premium", "shed") == 0 and metric(gw, "premium", "completed") == 4
            await until(lambda: inflight(gw) == 0)


async def test_unmeetable_deadline_is_rejected_at_once_without_backend_work() -> None:
    async with running_sim("fast", seed=2, ttft_ms=300.0, itl_ms=20.0) as sim:
        config = traffic_config([sim_url(sim)], admission=fixed_limit(1))
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            model = sim.model
            # teach the predictor the backend's TTFT (about 0.3 s)
            assert (await post(session, gw, chat(model, 2, stream=True), "standard"))[0] == 200
            holder = asyncio.create_task(post(session, gw, chat(model, 50, stream=True), "premium"))
            await until(lambda: inflight(gw) == 1)
            seen = sim_requests(await sim.stats())
            started = asyncio.get_running_loop().time()
            status, headers, error = await post(session, gw, chat(model), "premium",
                                                {"x-tokenyard-deadline-ms": "100"})
            elapsed = asyncio.get_running_loop().time() - started
            assert status == 429 and error["error"]["code"] == "deadline_unmeetable"  # type: ignore[index]
            assert "Retry-After" in headers
            assert elapsed < 0.1  # refused on arrival, not after waiting out its deadline
            assert sim_requests(await sim.stats()) == seen
            assert (await holder)[0] == 200
            assert metric(gw, "premium", "shed") == 1


async def test_a_deadline_below_the_pools_ttft_is_refused_even_with_a_free_slot() -> None:
    classes = {
        "premium": {"priority": 0, "ttft_slo_ms": 500, "queue_timeout_ms": 2000},
        "standard": {"priority": 1, "ttft_slo_ms": 100, "queue_timeout_ms": 10000},
    }
    async with running_sim("fast", seed=4, ttft_ms=300.0, itl_ms=5.0) as sim:
        config = traffic_config([sim_url(sim)], admission=fixed_limit(4), classes=classes)
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            model = sim.model
            # no TTFT learned yet: a tight deadline is not refused on priors (it runs, and misses it upstream)
            status, _, error = await post(session, gw, chat(model, 2), "premium", {"x-tokenyard-deadline-ms": "50"})
            assert status == 504 and error["error"]["code"] == "deadline"  # type: ignore[index]
            # teach the predictor the backend's TTFT (about 0.3 s; streams measure it)
            assert (await post(session, gw, chat(model, 2, stream=True), "premium"))[0] == 200
            seen = sim_requests(await sim.stats())
            status, headers, error = await post(session, gw, chat(model, 2), "premium",
                                                {"x-tokenyard-deadline-ms": "100"})
            assert status == 429 and error["error"]["code"] == "deadline_unmeetable"  # type: ignore[index]
            assert "Retry-After" in headers
            assert sim_requests(await sim.stats()) == seen  # refused before any upstream work
            # the class SLO alone (standard: 100 ms, below the pool's TTFT) never refuses a free slot
            assert (await post(session, gw, chat(model, 2), "standard"))[0] == 200
            # a deadline the pool can meet runs
            assert (await post(session, gw, chat(model, 2), "premium", {"x-tokenyard-deadline-ms": "5000"}))[0] == 200
            assert inflight(gw) == 0


async def test_queue_ttl_expiry_never_reaches_the_backend() -> None:
    classes = {
        "premium": {"priority": 0, "ttft_slo_ms": 500, "queue_timeout_ms": 2000},
        "standard": {"priority": 1, "ttft_slo_ms": 2000, "queue_timeout_ms": 10000},
        "batch": {"priority": 2, "queue_timeout_ms": 300},
    }
    async with running_sim("fast", seed=3, itl_ms=20.0) as sim:
        config = traffic_config([sim_url(sim)], admission=fixed_limit(1), classes=classes)
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            model = sim.model
            holder = asyncio.create_task(post(session, gw, chat(model, 75, stream=True), "premium"))
            await until(lambda: inflight(gw) == 1)
            batch = asyncio.create_task(post(session, gw, chat(model), "batch"))
            client_deadline = asyncio.create_task(
                post(session, gw, chat(model), "premium", {"x-tokenyard-deadline-ms": "400"}))
            status, headers, error = await batch
            assert status == 503 and error["error"]["code"] == "queue_timeout"  # type: ignore[index]
            assert "Retry-After" in headers
            status, _, error = await client_deadline
            assert status == 504 and error["error"]["code"] == "deadline_exceeded"  # type: ignore[index]
            assert (await holder)[0] == 200
            stats = await sim.stats()
            assert sim_requests(stats) == 1 and stats["completed_requests"] == 1
            assert metric(gw, "batch", "expired") == 1 and metric(gw, "premium", "expired") == 1
            waits = gw.gateway.metrics.registry.get_sample_value("tokenyard_queue_wait_seconds_count",
                                                                 {"class": "batch"})
            assert waits == 1


async def test_queued_client_that_leaves_frees_its_place() -> None:
    async with running_sim("fast", seed=4, itl_ms=20.0) as sim:
        config = traffic_config([sim_url(sim)], admission=fixed_limit(1))
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            model = sim.model
            admission = gw.gateway.traffic.admission
            assert admission is not None
            holder = asyncio.create_task(post(session, gw, chat(model, 50, stream=True), "standard"))
            await until(lambda: inflight(gw) == 1)
            leaver = asyncio.create_task(post(session, gw, chat(model), "standard"))
            await until(lambda: admission.depth("standard") == 1)
            async with session.get(gw.base_url + "/admin/queues", headers=ADMIN) as resp:
                assert resp.status == 200
                snapshot = await resp.json()
                assert snapshot["depth"] == {"standard": 1} and snapshot["pools"]["*"]["inflight"] == 1
            leaver.cancel()  # the client disconnects while queued
            await until(lambda: admission.depth("standard") == 0, timeout=5)
            assert (await holder)[0] == 200
            await until(lambda: inflight(gw) == 0)
            # the place was given back: the next request is served at once, and the leaver never ran
            status, headers, _ = await post(session, gw, chat(model), "standard")
            assert status == 200 and int(headers["x-tokenyard-queue-ms"]) < 1000
            assert sim_requests(await sim.stats()) == 2
            await until(lambda: metric(gw, "standard", "client_aborted") == 1)
            assert admission.endpoint_inflight("*", next(iter(gw.gateway.traffic.signal.endpoints["*"]))) == (0, 0)


async def test_a_server_queue_is_moved_into_the_gateway_so_premium_overtakes_it() -> None:
    """Default limits (64) in front of a server that runs 2: the server queues first come, first served. Once
    two scrapes show its queue, the gateway's limit is cut to what the server runs, and later requests wait in
    the gateway, where premium goes ahead of the bulk work that arrived before it."""
    classes = {"premium": {"priority": 0, "queue_timeout_ms": 30_000},
               "bulk": {"priority": 1, "queue_timeout_ms": 30_000, "sheddable": False}}
    async with running_sim("fast", seed=3, max_num_seqs=2, ttft_ms=10.0, itl_ms=10.0) as sim:
        config = traffic_config([sim_url(sim)], classes=classes, default_class="bulk", degradation={"enabled": False},
                                admission={"scrape": True, "scrape_interval_ms": 100})
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            admission = gw.gateway.traffic.admission
            assert admission is not None
            loop = asyncio.get_running_loop()
            first_token: dict[str, float] = {}

            async def stream(name: str, klass: str) -> int:
                headers = {"x-tokenyard-class": klass}
                body = chat(sim.model, 40, stream=True)
                async with session.post(gw.base_url + "/v1/chat/completions", json=body, headers=headers) as resp:
                    async for _ in resp.content.iter_any():
                        first_token.setdefault(name, loop.time())
                    return resp.status

            def capacity() -> int:
                return int(admission.snapshot()["pools"]["*"]["capacity"])

            early = [asyncio.create_task(stream(f"early{i}", "bulk")) for i in range(10)]
            await until(lambda: inflight(gw) == 10)
            assert capacity() == 64  # everything went straight to the server: 2 run, 8 wait there
            await until(lambda: capacity() == 2, timeout=5)  # two scrapes saw the queue: 10 x 2 / (2 + 8)
            late = [asyncio.create_task(stream(f"late{i}", "bulk")) for i in range(4)]
            await asyncio.sleep(0.05)
            late += [asyncio.create_task(stream(f"premium{i}", "premium")) for i in range(2)]
            statuses = await asyncio.wait_for(asyncio.gather(*early, *late), 30)
            assert statuses == [200] * 16
            premium = max(first_token[f"premium{i}"] for i in range(2))
            assert premium < min(first_token[f"late{i}"] for i in range(4))
