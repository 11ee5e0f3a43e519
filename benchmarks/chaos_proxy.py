"""Chaos proxy overhead with no faults: bulk throughput and small round-trip latency, direct vs through the proxy.

Usage: python benchmarks/chaos_proxy.py [--mb 200] [--round-trips 2000]
Loopback only; bounded in bytes and round trips. Runs on uvloop (as `tokenyard chaos proxy` does).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.chaos.scenario import percentile
from tokenyard.runtime import run

CHUNK = 64 * 1024


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo small messages; for bulk, the client sends 'B' + bytes and the server answers once at EOF."""
    first = await reader.read(1)
    if first == b"B":
        total = 0
        while data := await reader.read(CHUNK):
            total += len(data)
        writer.write(f"{total}\n".encode())
    else:
        writer.write(first)
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    await writer.drain()
    writer.close()


async def bulk(port: int, nbytes: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    writer.write(b"B")
    block = bytes(CHUNK)
    for _ in range(nbytes // CHUNK):
        writer.write(block)
        await writer.drain()
    writer.write_eof()
    assert int(await reader.readline()) == nbytes // CHUNK * CHUNK
    elapsed = time.perf_counter() - start
    writer.close()
    return nbytes / elapsed / 1e6


async def round_trips(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        writer.write(b"x" * 64)
        await reader.readexactly(64)
        samples.append((time.perf_counter() - start) * 1e6)
    writer.close()
    return samples


async def main(mb: int, count: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with ChaosProxy("127.0.0.1", port) as proxy:
        for name, target in (("direct", port), ("proxy", proxy.port)):
            throughput = await bulk(target, mb * 1_000_000)
            rtts = await round_trips(target, count)
            print(f"{name:<7} bulk {throughput:8.0f} MB/s   64 B round trip p50 {percentile(rtts, 50):6.0f} us"
                  f"  p99 {percentile(rtts, 99):6.0f} us")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--round-trips", type=int, default=2000)
    args = parser.parse_args()
    run(main(args.mb, args.round_trips))
