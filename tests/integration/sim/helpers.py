"""Polling helpers for simulator integration tests (count-based, generous timeouts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tokenyard.sim.testing import RunningSim


async def wait_stats(sim: RunningSim, cond: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    """Poll /sim/stats until ``cond`` holds; fail with the last stats otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = await sim.stats()
        if cond(stats):
            return stats
        if loop.time() > deadline:
            raise AssertionError(f"condition not met; last stats: {stats}")
        await asyncio.sleep(0.02)


async def assert_stops_growing(sim: RunningSim, settle: float = 0.3) -> int:
    """The generated-token counter no longer moves: read, wait, read again."""
    first = (await sim.stats())["generated_tokens"]
    await asyncio.sleep(settle)
    second = (await sim.stats())["generated_tokens"]
    assert second == first, f"generated_tokens still growing: {first} -> {second}"
    return int(second)
