"""Serve a test's own aiohttp application on a free loopback port for the length of a ``with`` block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


@asynccontextmanager
async def serving(app: web.Application, **runner_options: Any) -> AsyncIterator[str]:
    """Start ``app`` on 127.0.0.1 (a free port); yields its base URL (``http://127.0.0.1:PORT``).

    ``runner_options`` go to ``web.AppRunner`` (e.g. ``handler_cancellation=True`` as the gateway runs)."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
