"""A simulator and a gateway on their own event loop in a thread, for synchronous fuzzers (schemathesis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.integration.security_gateway.helpers import gateway_config
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import running_sim


@contextmanager
def background_gateway(tmp: Path, **sections: Any) -> Iterator[RunningGateway]:
    """Yield a running gateway over a fast simulator; everything stops (and the thread ends) on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-gateway", daemon=True)
    thread.start()
    stack = AsyncExitStack()

    async def start() -> RunningGateway:
        sim = await stack.enter_async_context(running_sim("fast"))
        return await stack.enter_async_context(running_gateway(gateway_config(sim, tmp, **sections)))

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
