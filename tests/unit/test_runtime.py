"""Clean shutdown on SIGTERM / SIGINT for long-running commands."""

from __future__ import annotations

import asyncio
import os
import signal

from tokenyard import runtime


async def test_wait_for_shutdown_returns_on_sigterm() -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    assert await runtime.wait_for_shutdown(timeout=5) == "SIGTERM"


async def test_wait_for_shutdown_times_out() -> None:
    assert await runtime.wait_for_shutdown(timeout=0.01) == "timeout"


def test_run_uses_a_working_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert runtime.run(answer()) == 42
