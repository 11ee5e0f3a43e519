"""The planner's promise, checked on real servers: a fleet of the planned size of in-process simulators behind the
gateway meets every class's p95 SLO under the planned load, and one replica fewer does not.

Scaled down so it runs in seconds: a ``large``-like profile with 4 sequences per replica and 16-token answers
(one replica holds ~6 req/s), 8 req/s. The planned fleet is judged on 24 s of load: premium is a quarter of the
traffic, and with the 8 s this test once used its p95 was the largest of ~19 samples, so one request that met a
burst (942 ms in one CI run; the planner's own p99 is ~380 ms) failed the plan. One fewer replica misses by 3x, so
8 s tells. A run in which a simulator fell behind its step clock (the host stalled the process, see
``step_lag_events``) measured the host, not the plan: it is run once more before it is judged.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

from tokenyard.bench import run_workload
from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.plan import make_plan, parse_plan
from tokenyard.plan.spec import PlanSpec
from tokenyard.plan.validate import bench_workload, slo_misses
from tokenyard.sim.testing import running_sim

RATE = 8.0
PLANNED_DURATION_S = 24.0
FEWER_DURATION_S = 8.0
SMALL: dict[str, Any] = {"max_num_seqs": 4, "ttft_ms": 60.0, "itl_ms": 20.0, "jitter": 0.0}
PLAN: dict[str, Any] = {
    "classes": {"premium": {"share": 1, "ttft_p95_ms": 600, "itl_p95_ms": 80},
                "standard": {"share": 3, "ttft_p95_ms": 1500, "itl_p95_ms": 120}},
    "workflows": {"chat": {"hops": [{"model": "chat", "prompt_tokens": 64, "output_tokens": 16}]}},
    "forecast": {"peak_actions_per_s": RATE},
    "models": {"chat": {"profile": "large", "overrides": SMALL}},
    "simulation": {"duration_s": 30, "min_requests": 300, "warmup_s": 2, "seed": 0},
}


async def run_fleet(spec: PlanSpec, replicas: int, duration_s: float) -> tuple[list[str], int]:
    """Start ``replicas`` simulators behind a gateway, send the planned load for ``duration_s``; return the SLO
    misses and how many times a simulator's step clock fell behind (a stalled host)."""
    async with AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim(profile="large", seed=i, **SMALL))
                for i in range(replicas)]
        config = parse_config({"models": {"*": {"endpoints": [{"url": s.base_url + "/v1"} for s in sims]}}},
                              env={})
        gateway = await stack.enter_async_context(running_gateway(config))
        workload = bench_workload(spec, "chat", RATE, duration_s, seed=1, model_name=sims[0].model)
        report = await run_workload(gateway.base_url, workload)
        assert report.summary["totals"]["completed"] > RATE * duration_s * 0.5
        stalls = sum([(await sim.stats())["step_lag_events"] for sim in sims])
        print(replicas, {k: (v["ttft_ms"]["p95"], v["itl_ms"]["p95"]) for k, v in report.summary["classes"].items()},
              "stalls", stalls)
        return slo_misses(report.summary, spec), stalls


async def judged_run(spec: PlanSpec, replicas: int, duration_s: float) -> list[str]:
    misses, stalls = await run_fleet(spec, replicas, duration_s)
    if stalls:
        misses, stalls = await run_fleet(spec, replicas, duration_s)
    return misses


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_planned_fleet_meets_the_slo_and_one_fewer_does_not() -> None:
    spec = parse_plan(PLAN)
    plan = make_plan(spec)
    planned = plan.horizon.models["chat"].replicas
    assert planned >= 2  # else "one fewer" is no fleet at all
    misses = await judged_run(spec, planned, PLANNED_DURATION_S)
    assert misses == [], f"{planned} replicas (planned) missed: {misses}"
    assert await judged_run(spec, planned - 1, FEWER_DURATION_S) != [], f"{planned - 1} replicas met every SLO"

