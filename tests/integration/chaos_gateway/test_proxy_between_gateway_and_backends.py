"""Chaos proxies between the gateway and three simulators: with 5% connection resets or 50 ms +/- 20 ms
jitter on the path, every request through the gateway still completes, and the scenario report shows the cost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import aiohttp

from tests.integration.routing.helpers import chat, routing_config
from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.chaos.scenario import Sample, ScenarioReport, run_scenario
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import running_sim

REQUESTS_PER_PHASE = 48
CONCURRENCY = 8


class PathFault:
    """Sets ``faults`` on every proxy. The proxy draws faults per connection when it accepts it, and the gateway
    keeps its upstream connections alive, so while the fault is on, the pooled connections are dropped between
    two waves of requests (nothing in flight then): every wave runs on connections accepted under the fault,
    which makes "5% of connections" about "5% of requests" per direction."""

    def __init__(self, proxies: Sequence[ChaosProxy], faults: Faults, name: str) -> None:
        self.name = name
        self._proxies = proxies
        self._faults = faults
        self.active = False

    async def drop_connections(self) -> None:
        for proxy in self._proxies:
            for task in list(proxy._tasks):  # what ChaosProxy.close() does to its connections, minus closing
                task.cancel()
        await asyncio.sleep(0.02)

    async def between_waves(self) -> None:
        if self.active:
            await self.drop_connections()

    async def inject(self) -> None:
        for proxy in self._proxies:
            proxy.set_faults(self._faults)
        self.active = True
        await self.drop_connections()

    async def clear(self) -> None:
        for proxy in self._proxies:
            proxy.set_faults(Faults())
        self.active = False
        await self.drop_connections()


async def gateway_workload(session: aiohttp.ClientSession, gw: RunningGateway, fault: PathFault) -> list[Sample]:
    """REQUESTS_PER_PHASE non-streaming chats through the gateway in waves of CONCURRENCY, no client retries."""
    samples: list[Sample] = []

    async def one() -> Sample:
        started = time.monotonic()
        try:
            async with session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", 4),
                                    timeout=aiohttp.ClientTimeout(total=20)) as resp:
                body = await resp.read()
                ok = resp.status == 200 and b'"choices"' in body
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        return Sample(time.monotonic() - started, ok)

    for _wave in range(REQUESTS_PER_PHASE // CONCURRENCY):
        samples += await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
        await fault.between_waves()
    return samples


async def run_through_proxies(faults: Faults, name: str) -> tuple[ScenarioReport, list[ChaosProxy]]:
    async with contextlib.AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim("fast", seed=i, itl_ms=2.0, ttft_ms=10.0))
                for i in range(3)]
        proxies = [await stack.enter_async_context(ChaosProxy("127.0.0.1", int(sim.base_url.rsplit(":", 1)[1]),
                                                              seed=7 + i))
                   for i, sim in enumerate(sims)]
        config = routing_config(
            {"chat": {"endpoints": [{"url": f"http://127.0.0.1:{p.port}/v1", "name": f"path{i}"}
                                    for i, p in enumerate(proxies)],
                      "upstream_model": sims[0].model}},
            # Resets are the path's fault, not the backends': keep them in rotation.
            routing={"outlier": {"consecutive_failures": 20}, "breaker": {"failure_threshold": 20},
                     "health": {"interval_ms": 60000}},
            retries={"attempts": 3, "budget_ratio": 0.5},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        fault = PathFault(proxies, faults, name)
        report = await asyncio.wait_for(run_scenario(lambda: gateway_workload(session, gw, fault), fault), timeout=60)
        return report, proxies


async def test_five_percent_resets_cost_retries_not_requests() -> None:
    faults = Faults(up=DirectionFaults(reset_prob=0.05), down=DirectionFaults(reset_prob=0.05))
    report, proxies = await run_through_proxies(faults, "5% connection resets, gateway -> backends")
    resets = sum(p.stats.resets for p in proxies)
    print("\n" + report.render() + f"\nproxy resets: {resets}")
    assert resets >= 1  # the fault really hit requests; the gateway retried them
    for phase in ("before", "during", "after"):
        stats = report.phases[phase]
        assert stats.requests == REQUESTS_PER_PHASE and stats.success_rate == 1.0, (phase, stats)
    assert "during" in report.render()


async def test_jitter_50ms_moves_latency_and_requests_complete() -> None:
    jitter = DirectionFaults(latency_ms=50.0, jitter_ms=20.0)
    report, _ = await run_through_proxies(Faults(up=jitter, down=jitter), "50 ms +/- 20 ms each way")
    print("\n" + report.render())
    for phase in ("before", "during", "after"):
        assert report.phases[phase].success_rate == 1.0
    # Two one-way delays of at least 30 ms each sit on every request's path.
    assert report.deltas["during"].p50_ms >= 60.0
    assert abs(report.deltas["after"].p50_ms) < report.deltas["during"].p50_ms
