"""A real aiohttp origin on loopback and a chaos proxy in front of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tokenyard.chaos.proxy import ChaosProxy


def pattern(n: int) -> bytes:
    """``n`` bytes whose content depends on position, so any reordering or loss shows."""
    block = bytes(range(251))  # prime length: no alignment with chunk sizes
    return (block * (n // len(block) + 1))[:n]


async def _bytes(request: web.Request) -> web.Response:
    return web.Response(body=pattern(int(request.query.get("n", "1000"))))


async def _stream(request: web.Request) -> web.StreamResponse:
    """``chunks`` numbered lines, written one by one with a short pause between them."""
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(int(request.query.get("chunks", "50"))):
        await response.write(f"{i:06d}\n".encode())
        await asyncio.sleep(0.002)
    await response.write_eof()
    return response


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def _ping(request: web.Request) -> web.Response:
    return web.Response(text="ok")


class Origin:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/bytes", _bytes)
    app.router.add_get("/stream", _stream)
    app.router.add_post("/echo", _echo)
    app.router.add_get("/ping", _ping)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Origin(int(runner.addresses[0][1]))
    finally:
        await runner.cleanup()


@pytest.fixture
async def proxy(origin: Origin) -> AsyncIterator[ChaosProxy]:
    async with ChaosProxy("127.0.0.1", origin.port, seed=1) as chaos:
        yield chaos
