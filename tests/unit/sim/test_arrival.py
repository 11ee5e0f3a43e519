"""The request arrival clock: the kernel's receive time on a real loopback socket, and the engine's use of it."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tokenyard.sim.arrival import received_at
from tokenyard.sim.engine import Engine
from tokenyard.sim.params import PROFILES

HELD_S = 0.3  # how long the server "is busy" before it looks at the request


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux-only")
async def test_received_at_is_when_the_bytes_arrived_not_when_the_server_looked() -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result((reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    reader, server_writer = await got
    try:
        sent = loop.time()
        writer.write(b"POST / HTTP/1.1\r\n\r\n")
        await writer.drain()
        await reader.readexactly(19)  # the bytes are in: from here on the server is "busy"
        await asyncio.sleep(HELD_S)
        now = loop.time()
        arrived = received_at(server_writer.transport, now)
        assert arrived is not None
        # Never before it was sent; at least most of HELD_S before "now" (the kernel clock ticks in a few ms).
        assert sent - 0.01 <= arrived <= now - HELD_S + 0.02
    finally:
        server_writer.close()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


def test_received_at_without_a_socket_is_unknown() -> None:
    assert received_at(None, 5.0) is None


async def test_engine_runs_the_front_end_delay_from_the_arrival() -> None:
    engine = Engine(PROFILES["large"])
    now = asyncio.get_running_loop().time()
    early = engine.submit("hello", 4, received_at=now - 0.05)
    assert early.seq.arrival == pytest.approx(now - 0.05)
    assert early.seq.ready_at == pytest.approx(now - 0.05 + engine.params.frontend_ms / 1000.0)
    future = engine.submit("hello", 4, received_at=now + 10.0)  # a clock that disagrees is clamped to now
    assert now <= future.seq.arrival < now + 1.0
    default = engine.submit("hello", 4)
    assert now <= default.seq.arrival < now + 1.0
