"""The inference step skips the rate limiter when the config has no limit, and still waits out a configured
one (here a tenant's ``max_concurrency: 1``: its events reach the simulator one at a time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.integration.pipeline.helpers import produce, spec_for, wait_until
from tokenyard.pipeline.eventlog import open_event_log
from tokenyard.pipeline.service import running_pipeline
from tokenyard.sim.testing import running_sim


async def _peak_running(tmp_path: Path, tenants: dict[str, Any]) -> int:
    """Run 6 events of tenant t1 through a simulator that takes ~0.3 s a request; the most it ran at once."""
    async with running_sim("fast", seed=0, itl_ms=40.0) as sim:
        gateway = {"listen": {"host": "127.0.0.1", "port": 0},
                   "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}}, "tenants": tenants}
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        spec = spec_for(log_url, sim.base_url, inference={"upstream": None, "gateway": gateway})
        log = open_event_log(log_url)
        peak = 0
        try:
            await produce(log, 6, tenant="t1")
            async with running_pipeline(spec) as service:
                async def sample() -> None:
                    nonlocal peak
                    while True:
                        peak = max(peak, int((await sim.stats())["running"]))
                        await asyncio.sleep(0.02)

                sampler = asyncio.create_task(sample())
                try:
                    await wait_until(lambda: _completed(service, 6), timeout=30)
                finally:
                    sampler.cancel()
        finally:
            await log.aclose()
        return peak


async def _completed(service: Any, n: int) -> bool:
    return bool(service.metrics.events["completed"]._value.get() >= n)


async def test_without_limits_events_run_together(tmp_path: Path) -> None:
    assert await _peak_running(tmp_path, {"t1": {}}) > 1


async def test_a_tenant_concurrency_limit_is_waited_out(tmp_path: Path) -> None:
    assert await _peak_running(tmp_path, {"t1": {"max_concurrency": 1}}) == 1
