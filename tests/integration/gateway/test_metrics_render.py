"""``/metrics`` is rendered off the event loop: the exposition grows with the pools (7 phase histograms per
backend), and rendering it on the loop stalled every request in flight at each scrape."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.integration.gateway.helpers import gateway_for
from tokenyard.sim.testing import running_sim

PHASES = ("queue", "connect", "network", "upstream_queue", "prefill", "decode", "upstream")


async def test_the_loop_keeps_running_while_a_large_exposition_is_rendered() -> None:
    async with running_sim(profile="fast") as sim, gateway_for([sim]) as gw, aiohttp.ClientSession() as session:
        metrics = gw.gateway.metrics
        for backend in range(256):  # what a pool of 256 endpoints leaves in the registry
            for phase in PHASES:
                metrics.upstream_phase.labels(f"10.0.0.{backend}:8000", phase).observe(0.01)
        started = time.perf_counter()
        expected = metrics.render()  # on this thread: how long the loop would stand still
        blocking_s = time.perf_counter() - started
        assert blocking_s > 0.05, "the registry is too small for this test to tell anything"

        # The loop goes on turning while the render runs: no gap near the time the render blocks a thread. A
        # second scrape is measured only when the first saw such a gap: a render on the loop stalls every scrape,
        # while a stall of the whole machine (seen once on a shared CI host) hits one at most.
        for _ in range(2):
            gaps, body = await _scrape_while_ticking(session, gw.base_url + "/metrics")
            assert len(body) > len(expected) // 2
            assert b'tokenyard_upstream_phase_seconds_bucket{backend="10.0.0.255:8000"' in body
            if max(gaps) < blocking_s / 2:
                return
        raise AssertionError(f"the loop stood still for {max(gaps):.3f} s during a {blocking_s:.3f} s render")


async def _scrape_while_ticking(session: aiohttp.ClientSession, url: str) -> tuple[list[float], bytes]:
    """Scrape ``url`` while a 1 ms ticker runs on the loop; the gaps between its ticks and the body."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    async with session.get(url) as resp:
        assert resp.status == 200
        body = await resp.read()
    done.set()
    await ticking
    return gaps, body
