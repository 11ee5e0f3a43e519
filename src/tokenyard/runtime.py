"""Process-level helpers shared by every long-running command: event loop choice and clean shutdown."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop when it is available (it is on Linux and macOS)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    if sys.version_info >= (3, 12):
        return uvloop.run(main)  # type: ignore[no-any-return]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def wait_for_shutdown(timeout: float | None = None) -> str:
    """Wait for SIGINT or SIGTERM (or ``timeout`` seconds); return what ended the wait.

    Long-running commands await this, then close their servers: every one of them stops cleanly on both
    signals, as CONTRACTS.md promises.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def _on_signal(name: str) -> None:
        received.append(name)
        stop.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _on_signal, sig.name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread / Windows
            pass
    try:
        await asyncio.wait_for(stop.wait(), timeout)
    except TimeoutError:
        return "timeout"
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return received[0] if received else "timeout"
