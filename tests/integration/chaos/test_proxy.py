"""The chaos proxy in front of a real aiohttp server on loopback: each fault, seen from the client."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy

from .conftest import pattern


def fresh_session(timeout: float = 10.0) -> aiohttp.ClientSession:
    """A session that opens a new connection per request (faults are drawn per connection)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def raw_get(port: int, path: str, timeout: float = 10.0) -> tuple[bytes, int]:
    """GET over a plain socket with ``Connection: close``; returns (everything read, number of reads)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        received = bytearray()
        reads = 0
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
                reads += 1
        return bytes(received), reads
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


async def test_no_faults_passes_bytes_through(proxy: ChaosProxy) -> None:
    async with fresh_session() as session:
        async with session.get(f"http://127.0.0.1:{proxy.port}/bytes?n=300000") as resp:
            assert await resp.read() == pattern(300000)
        async with session.post(f"http://127.0.0.1:{proxy.port}/echo", data=pattern(200000)) as resp:
            assert await resp.read() == pattern(200000)
    assert proxy.stats.connections_total == 2
    assert proxy.stats.bytes_down > 500000
    assert proxy.stats.bytes_up > 200000


async def test_latency_is_added_in_each_direction(proxy: ChaosProxy) -> None:
    url = f"http://127.0.0.1:{proxy.port}/ping"
    proxy.set_faults(Faults(up=DirectionFaults(latency_ms=120), down=DirectionFaults(latency_ms=120)))
    async with fresh_session() as session:
        start = time.monotonic()
        async with session.get(url) as resp:
            assert await resp.text() == "ok"
        elapsed = time.monotonic() - start
    # One request crosses each direction once: at least 240 ms, bounded generously for a loaded machine.
    assert 0.24 <= elapsed < 5.0


async def test_jitter_keeps_byte_order(proxy: ChaosProxy) -> None:
    proxy.set_faults(Faults(down=DirectionFaults(latency_ms=30, jitter_ms=25), up=DirectionFaults(jitter_ms=10)))
    url = f"http://127.0.0.1:{proxy.port}/stream?chunks=150"
    async with fresh_session() as session, session.get(url) as resp:
        body = await resp.read()
    assert body == b"".join(f"{i:06d}\n".encode() for i in range(150))


async def test_bandwidth_cap_roughly_holds(proxy: ChaosProxy) -> None:
    # 800 kbit/s = 100 kB/s: 150 kB need ~1.5 s (minus one small burst).
    proxy.set_faults(Faults(down=DirectionFaults(bandwidth_kbps=800)))
    async with fresh_session() as session:
        start = time.monotonic()
        async with session.get(f"http://127.0.0.1:{proxy.port}/bytes?n=150000") as resp:
            body = await resp.read()
        elapsed = time.monotonic() - start
    assert body == pattern(150000)
    assert 1.2 <= elapsed < 8.0
    assert 150000 / elapsed <= 100_000 * 1.15


async def test_slicing_delivers_exact_bytes_in_small_segments(proxy: ChaosProxy) -> None:
    proxy.set_faults(Faults(down=DirectionFaults(slice_bytes=7, slice_delay_ms=1)))
    response, reads = await raw_get(proxy.port, "/bytes?n=3000")
    assert body_of(response) == pattern(3000)
    # ~450 segments of 7 bytes with a pause between: the client cannot read them in a few large reads.
    assert reads >= 50
    proxy.set_faults(Faults(up=DirectionFaults(slice_bytes=3, slice_delay_ms=0)))
    url = f"http://127.0.0.1:{proxy.port}/echo"
    async with fresh_session() as session, session.post(url, data=pattern(5000)) as resp:
        assert await resp.read() == pattern(5000)


async def test_reset_is_seen_by_the_client_as_a_connection_error(proxy: ChaosProxy) -> None:
    proxy.set_faults(Faults(down=DirectionFaults(reset_prob=1.0, reset_after_bytes=1000)))
    with pytest.raises(ConnectionResetError):
        await raw_get(proxy.port, "/bytes?n=200000")
    async with fresh_session() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{proxy.port}/bytes?n=200000") as resp:
                await resp.read()
    assert proxy.stats.resets == 2


async def test_blackhole_makes_the_client_time_out(proxy: ChaosProxy) -> None:
    proxy.set_faults(Faults(up=DirectionFaults(blackhole_prob=1.0)))
    async with fresh_session(timeout=0.5) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(f"http://127.0.0.1:{proxy.port}/ping") as resp:
                await resp.read()
    assert proxy.stats.blackholed == 1
    assert proxy.stats.bytes_up == 0


async def test_close_after_bytes_ends_the_stream_exactly_there(proxy: ChaosProxy) -> None:
    proxy.set_faults(Faults(down=DirectionFaults(close_after_bytes=500)))
    response, _ = await raw_get(proxy.port, "/bytes?n=100000")
    assert len(response) == 500
    assert proxy.stats.closed_after_bytes == 1


async def test_probability_zero_spares_every_connection(proxy: ChaosProxy) -> None:
    proxy.set_faults(Faults(down=DirectionFaults(latency_ms=2000, probability=0.0)))
    async with fresh_session(timeout=1.5) as session:
        for _ in range(3):
            async with session.get(f"http://127.0.0.1:{proxy.port}/ping") as resp:
                assert await resp.text() == "ok"


async def test_target_down_resets_the_client(origin: object) -> None:
    from tests.conftest import free_port

    async with ChaosProxy("127.0.0.1", free_port()) as chaos:
        with pytest.raises((ConnectionResetError, ConnectionError)):
            await raw_get(chaos.port, "/ping", timeout=5)
        assert chaos.stats.target_connect_errors == 1


def test_faults_behave_the_same_on_uvloop() -> None:
    """`tokenyard chaos proxy` runs on uvloop: RST, slicing, jitter order and blackhole checked there too."""
    from aiohttp import web

    from tokenyard.runtime import run

    from .conftest import _bytes, _echo, _ping, _stream

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/bytes", _bytes)
        app.router.add_get("/stream", _stream)
        app.router.add_get("/ping", _ping)
        app.router.add_post("/echo", _echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with ChaosProxy("127.0.0.1", int(runner.addresses[0][1]), seed=3) as chaos:
                for check in (test_reset_is_seen_by_the_client_as_a_connection_error,
                              test_slicing_delivers_exact_bytes_in_small_segments,
                              test_jitter_keeps_byte_order,
                              test_blackhole_makes_the_client_time_out):
                    chaos.reset_stats()
                    await check(chaos)
        finally:
            await runner.cleanup()

    run(main())
