"""The bench against tokenyard's own simulator: counts agree and abandoning users abort the server's work."""

from __future__ import annotations

import asyncio
import time

import pytest

from tokenyard.bench import run_workload
from tokenyard.bench.workload import parse_workload

sim_testing = pytest.importorskip("tokenyard.sim.testing")


async def test_bench_against_the_simulator_matches_its_counters() -> None:
    async with sim_testing.running_sim(profile="fast", seed=0) as sim:
        wl = parse_workload({"concurrency": 3, "output_tokens": 12, "prompt_tokens": 40,
                             "classes": {"premium": {}, "standard": {}}})
        report = await run_workload(sim.base_url, wl, duration_s=20, max_requests=12)
        stats = await sim.stats()
    totals = report.summary["totals"]
    assert totals["completed"] == 12 == stats["completed_requests"]
    assert report.summary["tokens"]["completion_delivered"] == stats["delivered_tokens"] > 0
    assert report.summary["model"] == sim.model
    assert totals["ttft_ms"]["p50"] is not None and totals["itl_ms"]["p50"] is not None


async def test_abandoning_users_make_the_simulator_abort() -> None:
    async with sim_testing.running_sim(profile="fast", seed=0, itl_ms=20.0) as sim:
        wl = parse_workload({"concurrency": 3, "output_tokens": 200,
                             "abandonment": {"probability": 1.0, "after_tokens": 4}})
        report = await run_workload(sim.base_url, wl, duration_s=20, max_requests=6)
        deadline = time.monotonic() + 10
        while (await sim.stats())["aborted_requests"] < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stats = await sim.stats()
    assert report.summary["totals"]["client_aborted"] == 6
    assert stats["aborted_requests"] == 6 and stats["completed_requests"] == 0
