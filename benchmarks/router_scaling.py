"""The router's cost per request as its pool grows: pick (views, health, picker, breaker permit), the retry
engine and the attempt's end, for 1 to 256 endpoints and each picker kind.

    python benchmarks/router_scaling.py [--requests 2000] [--baseline CHECKOUT]

The upstream is a stub that answers at once, so only the router's own work is timed: ``Router.open`` and
``Attempt.finish`` per request, in process, on uvloop. Each request takes an in-flight slot on the endpoint it
picked and gives it back, as real traffic does. Each case is timed three times; the fastest counts (the others
met the machine's noise, not the router's cost). ``--baseline`` measures another checkout's ``src/`` too, in a
second worker process, alternating with this one case by case, and prints the ratio. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from tokenyard.config.loader import parse_config
from tokenyard.policy.pickers.endpoint import RequestFeatures
from tokenyard.runtime import run
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.traffic.router import Router, RouteRequest
from tokenyard.upstream.pools import build_pools

SIZES = (1, 8, 64, 256)
PICKERS = ("least-load", "p2c", "round-robin", "prefix-affinity")
REPEATS = 3
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}'


class _Answer:
    """What the router reads of an upstream answer: a 200 whose body is already in."""

    status = 200
    connect_s = 0.0

    def __init__(self) -> None:
        self.headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))

    async def read(self) -> bytes:
        return b"{}"

    def tcp_sample(self, now: float) -> tuple[None, int]:
        return None, 0

    def close(self) -> None:
        pass

    def release(self) -> None:
        pass


class _StubClient:
    session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        return _Answer()


async def per_request_us(picker: str, size: int, requests: int) -> float:
    """Microseconds of router work per request for a pool of ``size`` endpoints using ``picker`` (one timing)."""
    config = parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "routing": {"health": {"enabled": False}, "scrape_interval_ms": 0},
        "models": {"m": {"picker": picker,
                         "endpoints": [{"url": f"http://10.0.{i // 250}.{i % 250 + 1}:8000/v1"} for i in range(size)]}},
    })
    metrics = GatewayMetrics()
    pools = build_pools(config.models, metrics, config.routing)
    router = Router(_StubClient(), pools, config, metrics)  # type: ignore[arg-type]
    pool = pools["m"]
    headers = {"Content-Type": "application/json"}
    request_headers = CIMultiDictProxy(CIMultiDict(headers))

    async def one(i: int) -> None:
        features = RequestFeatures(model="m", prompt_prefix=f"system prompt {i % 16}", prompt_tokens=9,
                                   max_tokens=16, headers=request_headers)
        attempt = await router.open(pool, "/chat/completions", BODY, headers,
                                    RouteRequest(features=features, klass="standard", tokens=25))
        attempt.finish("completed")

    for i in range(min(500, requests)):
        await one(i)
    start = time.perf_counter()
    for i in range(requests):
        await one(i)
    return (time.perf_counter() - start) / requests * 1e6


class Worker:
    """A process measuring one checkout's router (its ``src/``, or this one's): a case per line on stdin."""

    def __init__(self, src: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def measure(self, picker: str, size: int, requests: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{picker} {size} {requests}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def serve_cases() -> None:
    """The worker's loop: one timing per line read."""
    for line in sys.stdin:
        picker, size, requests = line.split()
        print(run(per_request_us(picker, int(size), int(requests))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per repeat of a case")
    parser.add_argument("--baseline", metavar="CHECKOUT", help="also measure another checkout (its src/)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve_cases()
        return
    workers = {"now": Worker(Path(__file__).resolve().parents[1] / "src")}
    if args.baseline:
        workers["baseline"] = Worker(Path(args.baseline).resolve() / "src")
    try:
        print("| picker | endpoints | us/request" + (" | baseline us/request | baseline / now |" if args.baseline
                                                     else " |"))
        print("|---|---|---|" + ("---|---|" if args.baseline else ""))
        for picker in PICKERS:
            for size in SIZES:
                best = dict.fromkeys(workers, float("inf"))
                for _ in range(REPEATS):  # alternating, so a slow stretch of the machine hits both alike
                    for name, worker in workers.items():
                        best[name] = min(best[name], worker.measure(picker, size, args.requests))
                row = f"| {picker} | {size} | {best['now']:.0f}"
                if args.baseline:
                    row += f" | {best['baseline']:.0f} | {best['baseline'] / best['now']:.2f}x"
                print(row + " |", flush=True)
    finally:
        for worker in workers.values():
            worker.close()


if __name__ == "__main__":
    main()
