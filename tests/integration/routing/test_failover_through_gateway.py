"""One of three simulators (separate processes) is killed (SIGKILL) mid-load behind the gateway.

No non-streaming request may fail; a stream may fail only if it had already started (its head was relayed
before the kill); everything sent after the kill succeeds. The dead endpoint is reported down.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator

import aiohttp

from tests.integration.routing.helpers import chat, metric, routing_config
from tokenyard.gateway.app import running_gateway


@contextlib.asynccontextmanager
async def sim_process(seed: int) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``tokenyard sim`` in its own process; yields (process, base URL); killed by PID at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tokenyard", "sim", "--port", "0", "--profile", "fast", "--seed", str(seed),
        "--itl-ms", "5", stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = ""
        while "listening on" not in line:
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
            assert line, "the simulator exited before listening"
        yield proc, line.rsplit(" ", 1)[1].strip()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_killing_one_of_three_fails_only_started_streams() -> None:
    async with contextlib.AsyncExitStack() as stack:
        procs = [await stack.enter_async_context(sim_process(i)) for i in range(3)]
        urls = [url for _, url in procs]
        config = routing_config(
            {"chat": {"endpoints": [{"url": url + "/v1", "name": f"sim{i}"} for i, url in enumerate(urls)],
                      "picker": "least-load", "upstream_model": "sim-fast"}},
            routing={"outlier": {"consecutive_failures": 2, "base_ejection_ms": 60000, "max_ejection_ms": 60000},
                     "health": {"interval_ms": 200, "timeout_ms": 500}, "retry_min_concurrent": 10},
            # A third of the load fails at once when its backend dies: the budget must cover that burst.
            retries={"attempts": 3, "budget_ratio": 0.5},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        killed_at: list[float] = []

        async def one(i: int) -> tuple[bool, bool, float, bool]:
            """(stream, ok, started, got_head)"""
            stream = i % 3 == 0
            started = time.monotonic()
            async with session.post(gw.base_url + "/v1/chat/completions", json=chat("chat", 30, stream)) as resp:
                body = await resp.read()
                if stream:
                    return True, resp.status == 200 and b"[DONE]" in body, started, resp.status == 200
                return False, resp.status == 200 and b'"choices"' in body, started, resp.status == 200

        async def kill() -> None:
            await asyncio.sleep(0.4)
            killed_at.append(time.monotonic())
            procs[0][0].kill()

        killer = asyncio.create_task(kill())
        results: list[tuple[bool, bool, float, bool]] = []
        for _wave in range(6):  # bounded: 6 waves of 24 concurrent requests
            results += await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(24))), timeout=60)
        await killer

        assert len(results) == 144
        assert all(ok for stream, ok, _, _ in results if not stream), "a non-streaming request failed"
        failed_streams = [(started, head) for stream, ok, started, head in results if stream and not ok]
        assert all(head and started < killed_at[0] for started, head in failed_streams), failed_streams
        # The dead endpoint is down for routing and for the gauge; the others took over.
        await asyncio.sleep(0.6)
        pool = gw.gateway.pools["chat"]
        assert not pool.health.status("sim0").routable
        assert metric(gw, "tokenyard_backend_up", {"backend": "sim0"}) == 0
        assert metric(gw, "tokenyard_backend_up", {"backend": "sim1"}) == 1
        assert metric(gw, "tokenyard_backend_inflight", {"backend": "sim1"}) == 0
        survivors = 0
        for url in urls[1:]:
            async with session.get(url + "/sim/stats") as resp:
                survivors += (await resp.json())["completed_requests"]
        assert survivors >= 100
        async with session.get(gw.base_url + "/readyz") as resp:
            assert resp.status == 200
