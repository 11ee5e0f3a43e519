"""A live worker keeps the events it holds: while it waits (a pause, a fan-out slot) longer than claim_idle_ms,
other workers do not claim them (no second inference) and their delivery count does not go up."""

from __future__ import annotations

import asyncio

from tests.integration.pipeline.helpers import produce, results, spec_for, wait_until
from tokenyard.pipeline.control import send_control
from tokenyard.pipeline.eventlog import open_event_log as open_log
from tokenyard.pipeline.service import running_pipeline
from tokenyard.sim.testing import running_sim

EVENTS = 8


async def test_a_pause_longer_than_claim_idle_causes_no_second_inference(log_url: str) -> None:
    async with running_sim("fast", seed=12, ttft_ms=20.0, itl_ms=50.0) as sim:
        spec = spec_for(log_url, sim.base_url, inference={"max_tokens": 10}, lifecycle={"per_tenant": 1},
                        delivery={"max_attempts": 3, "claim_idle_ms": 1000},
                        worker={"max_inflight": 4, "batch": 4, "block_ms": 50, "claim_every_ms": 100})
        log = open_log(log_url)
        try:
            await produce(log, EVENTS)
            async with running_pipeline(spec, consumer="a") as a, running_pipeline(spec, consumer="b") as b:
                async def both_hold() -> bool:
                    assert a.worker is not None and b.worker is not None
                    return len(a.worker._active) + len(b.worker._active) == EVENTS
                await wait_until(both_hold)  # each waits for its one tenant slot with the rest
                await send_control(log, spec, action="pause")
                await asyncio.sleep(2.0)  # twice claim_idle_ms
                await send_control(log, spec, action="resume")

                async def done() -> bool:
                    return len(await results(log)) >= EVENTS
                await wait_until(done)
                await asyncio.sleep(0.3)  # a claim round after the last result: nothing left to take
                assert a.metrics.redeliveries._value.get() == b.metrics.redeliveries._value.get() == 0
            found = await results(log)
            assert sorted(r.event_id for r in found) == sorted(f"e{i}" for i in range(EVENTS))
            assert {(r.status, r.attempts) for r in found} == {("completed", 1)}
            assert int((await sim.stats())["completed_requests"]) == EVENTS  # none inferred twice
        finally:
            await log.aclose()
