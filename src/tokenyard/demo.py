"""``tokenyard demo``: a simulated fleet behind the gateway, a short mixed workload, and what it saw.

Everything runs in this process on free loopback ports with embedded defaults (no config file): three ``large``
simulators, a gateway with one pool ``chat`` over them, and a bounded workload of a few classes, streaming and
not, with some clients that leave early. The lead will swap the workload for the bench engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
import click

from tokenyard import runtime
from tokenyard.config import GatewayConfig, parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

FLEET_SIZE = 3
CLASSES = ("premium", "standard", "batch")
CLASS_WEIGHTS = (0.2, 0.5, 0.3)
MAX_REQUESTS = 600
CONCURRENCY = 24
EARLY_LEAVE_RATE = 0.1


@dataclass
class ClassStats:
    requests: int = 0
    completed: int = 0
    aborted: int = 0
    failed: int = 0
    ttft_ms: list[float] = field(default_factory=list)


def demo_config(urls: list[str]) -> GatewayConfig:
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"chat": {"endpoints": [{"url": url + "/v1"} for url in urls], "upstream_model": "sim-large"}},
        "access_log": {"enabled": False},
    }, env={})


async def one_request(session: aiohttp.ClientSession, url: str, rng: random.Random, stats: dict[str, ClassStats]
                      ) -> None:
    klass = rng.choices(CLASSES, CLASS_WEIGHTS)[0]
    stream = rng.random() < 0.7
    leave_after = rng.randint(1, 10) if rng.random() < EARLY_LEAVE_RATE else None
    body = {"model": "chat", "stream": stream, "max_tokens": rng.randint(16, 96),
            "messages": [{"role": "user", "content": "Tell me about traffic engineering. " * rng.randint(1, 20)}]}
    entry = stats[klass]
    entry.requests += 1
    started = time.perf_counter()
    try:
        async with session.post(url + "/v1/chat/completions", json=body,
                                headers={"x-tokenyard-class": klass}) as resp:
            if resp.status != 200:
                entry.failed += 1
                await resp.read()
                return
            if not stream:
                await resp.read()
                entry.completed += 1
                return
            tokens = 0
            async for line in resp.content:
                if line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
                    if tokens == 0:
                        entry.ttft_ms.append((time.perf_counter() - started) * 1000)
                    tokens += 1
                    if leave_after is not None and tokens >= leave_after:
                        resp.close()
                        entry.aborted += 1
                        return
                elif b"event: error" in line:
                    entry.failed += 1
                    return
            entry.completed += 1
    except aiohttp.ClientError:
        entry.failed += 1


async def workload(url: str, stats: dict[str, ClassStats], until: float, seed: int = 0) -> None:
    """At most ``MAX_REQUESTS`` requests by ``CONCURRENCY`` closed-loop clients, stopping at ``until``."""
    rng = random.Random(seed)
    remaining = MAX_REQUESTS
    loop = asyncio.get_running_loop()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0 and loop.time() < until:
            remaining -= 1
            await one_request(session, url, rng, stats)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(CONCURRENCY)))


def _pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[int(q) - 1]:.0f}"


def print_table(stats: dict[str, ClassStats], url: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tokenyard demo — gateway {url}")
    for column in ("class", "requests", "completed", "aborted", "failed", "TTFT p50 ms", "TTFT p95 ms"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for name in CLASSES:
        s = stats[name]
        table.add_row(name, str(s.requests), str(s.completed), str(s.aborted), str(s.failed),
                      _pct(s.ttft_ms, 50), _pct(s.ttft_ms, 95))
    Console().print(table)


async def run_demo(duration: float | None, load: bool) -> None:
    async with AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(running_sim("large", seed=i)) for i in range(FLEET_SIZE)]
        gw = await stack.enter_async_context(running_gateway(demo_config([s.base_url for s in sims])))
        print(f"tokenyard demo listening on {gw.base_url}", flush=True)
        print(f"  OpenAI API: {gw.base_url}/v1 (model 'chat'), metrics: {gw.base_url}/metrics", flush=True)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration if duration is not None else float("inf")
        stats = {name: ClassStats() for name in CLASSES}
        load_task = asyncio.create_task(workload(gw.base_url, stats, end)) if load else None
        try:
            await runtime.wait_for_shutdown(duration)
        finally:
            if load_task is not None:
                load_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load_task
            if load:
                print_table(stats, gw.base_url)


@click.command("demo")
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option("--no-load", is_flag=True, help="Start the fleet and gateway without the workload.")
def command(duration: float | None, no_load: bool) -> None:
    """Simulated fleet + gateway + a short mixed workload, on embedded defaults."""
    runtime.run(run_demo(duration, not no_load))
