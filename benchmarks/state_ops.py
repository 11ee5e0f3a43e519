"""Per-operation cost of SharedState and EventLog on each backend (bounded counts, one process).

Starts its own redis-server on a free loopback port (ended by PID), then measures sequential and concurrent
token-bucket takes, fixed-window hits and lease acquire+release on MemoryState and RedisState, and appends and
group reads + acks on the SQLite (WAL) and Redis Streams event logs.

    python benchmarks/state_ops.py [--ops 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from children import free_port, start_redis  # benchmarks/children.py (scripts run from benchmarks/ on sys.path)

from tokenyard.pipeline.eventlog import EventLog, open_event_log
from tokenyard.runtime import run
from tokenyard.state import SharedState, open_state


async def _measure(ops: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second with ``concurrency`` workers sharing ``ops`` operations."""
    counter = iter(range(ops))

    async def worker() -> None:
        for n in counter:
            await op(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ops / (time.perf_counter() - started)


async def _state_rows(name: str, state: SharedState, ops: int, concurrency: int) -> list[str]:
    rows = []
    for label, op in (
        ("take", lambda n: state.take(f"b{n % 100}", 1, 1000, 1000)),
        ("window_hit", lambda n: state.window_hit(f"w{n % 100}", 10**9, 60)),
        ("lease acquire+release", lambda n: _lease(state, n)),
    ):
        seq = await _measure(ops, 1, op)
        par = await _measure(ops, concurrency, op)
        rows.append(f"| {name} | {label} | {1e6 / seq:.0f} | {seq:,.0f} | {par:,.0f} |")
    return rows


async def _lease(state: SharedState, n: int) -> None:
    await state.acquire_lease("ep", f"h{n}", 10**6, 30)
    await state.release_lease("ep", f"h{n}")


async def _log_rows(name: str, log: EventLog, ops: int, concurrency: int) -> list[str]:
    await log.create_group("bench", "g")
    append = await _measure(ops, concurrency, lambda n: log.append("bench", {"n": str(n), "payload": "x" * 200}))

    async def consume(_: int) -> None:
        entries = await log.read_group("bench", "g", "c", count=100)
        await log.ack("bench", "g", [e.id for e in entries])

    started = time.perf_counter()
    for batch in range((ops + 99) // 100):
        await consume(batch)
    consumed = ops / (time.perf_counter() - started)
    return [f"| {name} | append (concurrency {concurrency}) | {append:,.0f} |",
            f"| {name} | read_group + ack, batches of 100 | {consumed:,.0f} |"]


async def main(ops: int, concurrency: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = start_redis(port, workdir)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            print("| backend | operation | us/op sequential | ops/s sequential | ops/s concurrent |")
            print("|---|---|---|---|---|")
            for name, spec in (("memory", "memory"), ("redis", url)):
                state = open_state(spec, timeout_s=5.0)
                try:
                    for row in await _state_rows(name, state, ops, concurrency):
                        print(row)
                finally:
                    await state.aclose()
            print()
            print("| event log | operation | entries/s |")
            print("|---|---|---|")
            for name, spec in (("sqlite", f"sqlite:///{Path(workdir) / 'bench.db'}"), ("redis streams", url)):
                log = open_event_log(spec)
                try:
                    for row in await _log_rows(name, log, ops, concurrency):
                        print(row)
                finally:
                    await log.aclose()
        finally:
            proc.terminate()
            proc.wait(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    run(main(args.ops, args.concurrency))
