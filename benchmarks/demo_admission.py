"""The demo's fleet and surge with three admission setups: where premium waits when the servers queue.

    python benchmarks/demo_admission.py [ROUNDS]

Each round runs `tokenyard demo`'s workload (45 s, the same seed) three times, each against a fresh fleet and
gateway: default limits with the server-queue cut disabled, default limits with it, and the demo's own limits
(the simulators' batch size). One table row per run (docs/admission.md, "Server queue cut").
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from typing import Any

from tokenyard.bench import parse_workload, run_workload
from tokenyard.demo import FLEET_SIZE, SLOTS_PER_SIM, demo_config, demo_limits, demo_workload
from tokenyard.gateway.app import running_gateway
from tokenyard.policy.adaptive_limit import AdaptiveLimit
from tokenyard.sim.testing import running_sim

HEADER = ("| setup | premium TTFT p50 / p95 ms | standard TTFT p50 / p95 ms | shed premium / standard / batch "
          "| batch completed | goodput req/s |\n|---|---|---|---|---|---|")


def _no_cut(self: AdaptiveLimit, *args: Any, **kwargs: Any) -> bool:
    return False


async def one(name: str, limits: dict[str, int], cut: bool) -> None:
    original = AdaptiveLimit.observe_queue
    if not cut:
        AdaptiveLimit.observe_queue = _no_cut  # type: ignore[method-assign]
    try:
        async with AsyncExitStack() as stack:
            sims = [await stack.enter_async_context(running_sim("large", seed=i, max_num_seqs=SLOTS_PER_SIM))
                    for i in range(FLEET_SIZE)]
            small = await stack.enter_async_context(running_sim("fast", seed=99, ttft_ms=30.0, itl_ms=4.0))
            config = demo_config([s.base_url for s in sims], small.base_url, limits)
            gw = await stack.enter_async_context(running_gateway(config))
            summary = (await run_workload(gw.base_url, parse_workload(demo_workload(45.0)))).summary
    finally:
        AdaptiveLimit.observe_queue = original  # type: ignore[method-assign]
    classes, totals = summary["classes"], summary["totals"]
    premium, standard, batch = classes["premium"], classes["standard"], classes["batch"]
    print(f"| {name} | {premium['ttft_ms']['p50']:.0f} / {premium['ttft_ms']['p95']:.0f} "
          f"| {standard['ttft_ms']['p50']:.0f} / {standard['ttft_ms']['p95']:.0f} "
          f"| {premium['shed']} / {standard['shed']} / {batch['shed']} | {batch['completed']} "
          f"| {totals['goodput_rps']:.2f} |", flush=True)


async def main(rounds: int) -> None:
    print(HEADER)
    for _ in range(rounds):
        await one("default limits, no queue cut", {}, cut=False)
        await one("default limits, queue cut", {}, cut=True)
        limits = demo_limits()
        await one(f"limits {limits['initial_limit']} ({limits['min_limit']}..{limits['max_limit']}), queue cut",
                  limits, cut=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
