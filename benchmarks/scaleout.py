"""Scale-out: gateway throughput with ``--workers 2`` vs 1, and cross-replica abort latency on Redis.

    python benchmarks/scaleout.py [--seconds 10] [--concurrency 64] [--aborts 20]

1. ``tokenyard serve --upstream SIM --workers N`` (a child process; the ``fast`` simulator another), loaded from
   this process at a fixed concurrency with small non-streaming requests for ``--seconds``; requests/s for N=1, 2.
2. Two in-process gateways sharing a redis-server started here: a stream runs on replica B, the abort is posted
   to replica A; the time from sending the abort to the client seeing the stream end (p50/p95/max).
Prints a markdown table. The machine is shared: numbers vary run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

import aiohttp
from children import Child, free_port, start_redis  # benchmarks/children.py (scripts run from benchmarks/ on sys.path)

PATIENT = {"start_timeout_s": 60.0, "stop_timeout_s": 15.0}  # workers and Redis take longer to come and go

BODY = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}


async def throughput(url: str, concurrency: int, seconds: float) -> float:
    done = 0
    end = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                async with session.post(url + "/v1/chat/completions", json=BODY) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def workers_rows(seconds: float, concurrency: int) -> list[tuple[str, str]]:
    # A simulator that answers at once, so the gateway (not the model) is what limits throughput.
    sim = Child(**PATIENT, args=[sys.executable, "-m", "tokenyard", "sim", "--port", "0", "--profile", "fast",
                 "--max-num-seqs", "1024", "--ttft-ms", "1", "--itl-ms", "0"])
    rows = []
    try:
        for workers in (1, 2):
            gw = Child(**PATIENT, args=[sys.executable, "-m", "tokenyard", "serve", "--upstream", sim.url + "/v1",
                                        "--port", "0", "--workers", str(workers)])
            try:
                asyncio.run(throughput(gw.url, 8, 1.0))  # warm up connections and discovery
                rps = asyncio.run(throughput(gw.url, concurrency, seconds))
            finally:
                gw.stop()
            rows.append((f"throughput, --workers {workers}, c={concurrency} (req/s)", f"{rps:.0f}"))
    finally:
        sim.stop()
    return rows


async def abort_latencies(redis_url: str, trials: int) -> list[float]:
    from contextlib import AsyncExitStack

    from tokenyard.config import parse_config
    from tokenyard.gateway.app import running_gateway
    from tokenyard.sim.testing import running_sim

    out = []
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim("fast", itl_ms=20))
        config = parse_config({"listen": {"host": "127.0.0.1", "port": 0}, "state": redis_url,
                               "access_log": {"enabled": False},
                               "admin": {"key": "bench-admin"},
                               "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}}}, env={})
        a = await stack.enter_async_context(running_gateway(config))
        b = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        body = {**BODY, "max_tokens": 5000, "stream": True}
        for trial in range(trials):
            rid = f"bench-abort-{trial}"
            resp = await session.post(b.base_url + "/v1/chat/completions", json=body, headers={"x-request-id": rid})
            await resp.content.readline()
            sent = time.perf_counter()
            async with session.post(a.base_url + f"/admin/requests/{rid}/abort",
                                    headers={"Authorization": "Bearer bench-admin"}) as answer:
                await answer.read()
            await resp.read()  # returns when B ended the stream
            out.append(time.perf_counter() - sent)
            resp.close()
    return out


def abort_rows(trials: int) -> list[tuple[str, str]]:
    if shutil.which("redis-server") is None:
        return [("cross-replica abort", "skipped: no redis-server")]
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        redis = start_redis(port, workdir)
        try:
            from tokenyard import runtime

            lat = sorted(runtime.run(abort_latencies(f"redis://127.0.0.1:{port}/0", trials)))
        finally:
            redis.terminate()
            redis.wait(10)
    ms = [x * 1000 for x in lat]
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return [(f"abort on replica A -> stream on B ended, {trials} trials (ms)",
             f"p50 {statistics.median(ms):.1f}, p95 {p95:.1f}, max {ms[-1]:.1f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--aborts", type=int, default=20)
    args = parser.parse_args()
    rows = workers_rows(args.seconds, args.concurrency) + abort_rows(args.aborts)
    print(f"machine: {os.cpu_count()} CPUs (shared)\n")
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
