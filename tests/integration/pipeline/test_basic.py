"""End to end on both logs: events -> template -> inference on the simulator -> one result per event."""

from __future__ import annotations

from tests.integration.pipeline.helpers import produce, results, spec_for, wait_until
from tokenyard.pipeline.eventlog import open_event_log as open_log
from tokenyard.pipeline.logs import lag
from tokenyard.pipeline.service import running_pipeline
from tokenyard.sim.testing import running_sim


async def test_each_event_yields_one_completed_result(log_url: str) -> None:
    async with running_sim("fast", seed=1) as sim:
        spec = spec_for(log_url, sim.base_url)
        log = open_log(log_url)
        try:
            await produce(log, 40)
            async with running_pipeline(spec) as service:
                async def done() -> bool:
                    return await lag(log, "events", "g") == 0 and await log.length("results") >= 40
                await wait_until(done)
                assert service.metrics.events["completed"]._value.get() == 40
            found = await results(log)
            assert sorted(r.event_id for r in found) == sorted(f"e{i}" for i in range(40))
            assert all(r.status == "completed" and r.output and r.request_id for r in found)
            stats = await sim.stats()
            assert stats["completed_requests"] == 40
        finally:
            await log.aclose()
