"""Lifecycle against the simulator: expired and aborted events cost no inference, an abort mid-generation stops
the engine within a step, latest-wins supersession, fan-out limits, dead letters after N attempts."""

from __future__ import annotations

import asyncio

from tests.integration.pipeline.helpers import produce, results, spec_for, wait_until
from tokenyard.pipeline.control import send_control
from tokenyard.pipeline.event import encode_event, now_ms
from tokenyard.pipeline.eventlog import open_event_log as open_log
from tokenyard.pipeline.logs import lag
from tokenyard.pipeline.service import running_pipeline
from tokenyard.sim.testing import running_sim


async def _count(log_url: str, n: int, stream: str = "results") -> None:
    log = open_log(log_url)
    try:
        async def enough() -> bool:
            return await log.length(stream) >= n
        await wait_until(enough)
    finally:
        await log.aclose()


async def test_expired_and_aborted_events_cause_no_inference(log_url: str) -> None:
    async with running_sim("fast", seed=2) as sim:
        spec = spec_for(log_url, sim.base_url)
        log = open_log(log_url)
        try:
            past = now_ms() - 1000
            await produce(log, 3, prefix="old", deadline_ms=past)
            await produce(log, 2, prefix="short", ttl_ms=0)
            await produce(log, 2, prefix="byid")
            await produce(log, 3, prefix="bykey", key="user-9")
            await produce(log, 2, prefix="ok")
            await send_control(log, spec, action="abort", event_id="byid0")
            await send_control(log, spec, action="abort", event_id="byid1")
            await send_control(log, spec, action="abort", key="user-9")
            async with running_pipeline(spec):
                await _count(log_url, 12)
            status = {r.event_id: r.status for r in await results(log)}
            assert [status[f"old{i}"] for i in range(3)] == ["expired"] * 3
            assert [status[f"short{i}"] for i in range(2)] == ["expired"] * 2
            assert [status[f"byid{i}"] for i in range(2)] == ["aborted"] * 2
            assert [status[f"bykey{i}"] for i in range(3)] == ["aborted"] * 3
            assert [status[f"ok{i}"] for i in range(2)] == ["completed"] * 2
            stats = await sim.stats()
            assert stats["completed_requests"] == 2 and stats["aborted_requests"] == 0
            assert stats["generated_tokens"] == 2 * 8
        finally:
            await log.aclose()


async def test_abort_mid_generation_stops_the_engine_within_a_step(log_url: str) -> None:
    async with running_sim("fast", seed=3, ttft_ms=100.0, itl_ms=100.0) as sim:
        spec = spec_for(log_url, sim.base_url, inference={"max_tokens": 500})
        log = open_log(log_url)
        try:
            async with running_pipeline(spec) as service:
                await produce(log, 1, prefix="long")

                async def generating() -> bool:
                    return int((await sim.stats())["generated_tokens"]) >= 3
                await wait_until(generating)
                before = int((await sim.stats())["generated_tokens"])
                await send_control(log, spec, action="abort", event_id="long0")

                async def stopped() -> bool:
                    s = await sim.stats()
                    return int(s["aborted_requests"]) == 1 and int(s["running"]) == 0
                await wait_until(stopped, timeout=10)
                after = int((await sim.stats())["generated_tokens"])
                await asyncio.sleep(0.3)
                assert int((await sim.stats())["generated_tokens"]) == after  # nothing keeps generating
                assert after - before <= 2  # the step in progress, at most one more
                await _count(log_url, 1)
                assert service.metrics.wasted["aborted"]._value.get() >= 1  # tokens received, then thrown away
            [result] = await results(log)
            assert result.status == "aborted" and result.request_id
        finally:
            await log.aclose()


async def test_latest_event_of_a_key_wins(log_url: str) -> None:
    async with running_sim("fast", seed=4, ttft_ms=20.0, itl_ms=20.0) as sim:
        spec = spec_for(log_url, sim.base_url, lifecycle={"supersede": True}, inference={"max_tokens": 50})
        log = open_log(log_url)
        try:
            t = now_ms()
            for i in range(3):  # queued together: only the newest is inferred
                await log.append("events", encode_event({"text": f"v{i}"}, event_id=f"batch{i}", key="doc-1",
                                                        created_ms=t + i))
            async with running_pipeline(spec):
                await _count(log_url, 3)
                await produce(log, 1, prefix="old", key="doc-2")

                async def generating() -> bool:
                    return int((await sim.stats())["running"]) == 1
                await wait_until(generating)
                await produce(log, 1, prefix="new", key="doc-2")  # supersedes the one generating
                await _count(log_url, 5)
            status = {r.event_id: r.status for r in await results(log)}
            assert status == {"batch0": "superseded", "batch1": "superseded", "batch2": "completed",
                              "old0": "superseded", "new0": "completed"}
            stats = await sim.stats()
            assert stats["completed_requests"] == 2
            assert stats["aborted_requests"] == 1  # the superseded generation was cancelled upstream
        finally:
            await log.aclose()


async def test_fan_out_limits_per_key_and_tenant(log_url: str) -> None:
    async with running_sim("fast", seed=5, ttft_ms=20.0, itl_ms=20.0) as sim:
        spec = spec_for(log_url, sim.base_url, lifecycle={"per_key": 1, "per_tenant": 2},
                        inference={"max_tokens": 10})
        log = open_log(log_url)
        try:
            for i in range(4):  # one key: one at a time
                await log.append("events", encode_event({"text": "k"}, event_id=f"same{i}", key="k", tenant="a"))
            for i in range(4):  # tenant b: two at a time
                await log.append("events", encode_event({"text": "t"}, event_id=f"b{i}", key=f"b{i}", tenant="b"))
            peak = 0
            async with running_pipeline(spec) as service:
                assert service.worker is not None
                fanout = service.worker.fanout
                check = open_log(log_url)
                try:
                    while await check.length("results") < 8:
                        peak = max(peak, int((await sim.stats())["running"]))
                        assert fanout.keys.get("k", 0) <= 1 and fanout.tenants.get("b", 0) <= 2
                        await asyncio.sleep(0.01)
                finally:
                    await check.aclose()
            assert 2 <= peak <= 3  # key k (tenant a) + two of tenant b
            assert [(r.status, r.error) for r in await results(log) if r.status != "completed"] == []
        finally:
            await log.aclose()


async def test_dead_letter_after_max_attempts_and_poison_at_once(log_url: str) -> None:
    async with running_sim("fast", seed=6, faults={"error_rate": 1.0, "error_status": 500}) as sim:
        spec = spec_for(log_url, sim.base_url)
        log = open_log(log_url)
        try:
            await produce(log, 2, prefix="fails")
            await log.append("events", encode_event({"no_text": 1}, event_id="poison"))  # template can't render
            await log.append("events", {"data": "not json", "id": "garbled"})
            async with running_pipeline(spec) as service:
                await _count(log_url, 4, stream="events:dead")
                assert service.metrics.events["dead_lettered"]._value.get() == 4
            dead = {e.fields.get("id"): e.fields for e in await log.read_range("events:dead")}
            assert dead["fails0"]["dead_letter.deliveries"] == "2" == dead["fails1"]["dead_letter.deliveries"]
            assert dead["poison"]["dead_letter.deliveries"] == "1" and "missing" in dead["poison"]["dead_letter.reason"]
            assert dead["garbled"]["dead_letter.deliveries"] == "1"
            found = await results(log)
            assert {r.status for r in found} == {"dead_lettered"}
            assert "garbled" in {r.event_id for r in found}  # the producer's id, even of an unreadable entry
            assert await lag(log, "events", "g") == 0
            assert int((await sim.stats())["completed_requests"]) == 0
        finally:
            await log.aclose()


async def test_an_inference_past_timeout_ms_is_a_failed_attempt_not_an_expiry(log_url: str) -> None:
    # An event without a deadline cannot expire: an inference longer than inference.timeout_ms was ended as
    # "expired" (acked, never retried); it is a failed attempt, retried and dead-lettered after max_attempts.
    async with running_sim("fast", seed=9, ttft_ms=20.0, itl_ms=100.0) as sim:
        spec = spec_for(log_url, sim.base_url, inference={"max_tokens": 8, "timeout_ms": 300},
                        delivery={"max_attempts": 2, "claim_idle_ms": 800})
        log = open_log(log_url)
        try:
            await produce(log, 1, prefix="slow")
            await produce(log, 1, prefix="due", ttl_ms=60_000)  # a deadline: its own budget, not timeout_ms
            async with running_pipeline(spec) as service:
                await _count(log_url, 2)
                assert service.metrics.events["expired"]._value.get() == 0
                assert service.metrics.retries._value.get() >= 1
            dead = {e.fields.get("id"): e.fields for e in await log.read_range("events:dead")}
            assert list(dead) == ["slow0"] and "timeout_ms" in dead["slow0"]["dead_letter.reason"]
            assert dead["slow0"]["dead_letter.deliveries"] == "2"
            assert {r.event_id: r.status for r in await results(log)} == {"slow0": "dead_lettered",
                                                                          "due0": "completed"}
        finally:
            await log.aclose()


async def test_an_abort_by_key_without_at_ms_covers_events_up_to_its_entry(log_url: str) -> None:
    # A control entry appended by hand (no at_ms) was dated when a worker applied it: a worker starting later
    # aborted the key's events created after the abort too.
    async with running_sim("fast", seed=10) as sim:
        spec = spec_for(log_url, sim.base_url)
        log = open_log(log_url)
        try:
            t = now_ms()
            await log.append("events", encode_event({"text": "a"}, event_id="before", key="k", created_ms=t - 5000))
            await log.append(spec.control_stream, {"action": "abort", "key": "k"})
            await asyncio.sleep(0.01)
            await log.append("events", encode_event({"text": "b"}, event_id="after", key="k",
                                                    created_ms=now_ms() + 1))
            async with running_pipeline(spec):
                await _count(log_url, 2)
            status = {r.event_id: r.status for r in await results(log)}
            assert status == {"before": "aborted", "after": "completed"}
        finally:
            await log.aclose()


async def test_a_ttl_without_created_ms_counts_from_the_append(log_url: str) -> None:
    # An event XADDed with ttl_ms and no created_ms was dated when a worker read it: a stale backlog ran.
    async with running_sim("fast", seed=11) as sim:
        spec = spec_for(log_url, sim.base_url)
        log = open_log(log_url)
        try:
            await log.append("events", {"id": "stale", "data": '{"text": "x"}', "ttl_ms": "200"})
            await asyncio.sleep(0.4)
            async with running_pipeline(spec):
                await _count(log_url, 1)
            assert [(r.event_id, r.status) for r in await results(log)] == [("stale", "expired")]
            assert int((await sim.stats())["completed_requests"]) == 0
        finally:
            await log.aclose()
