"""The router's cost per request as its pool grows: pick (views, health, picker, breaker permit), the retry
engine and the attempt's end, for 1 to 256 endpoints and each picker kind.

    python benchmarks/router_scaling.py [--requests 2000] [--baseline CHECKOUT]

The upstream is a stub that answers at once, so only the router's own work is timed: ``Router.open`` and
``Attempt.finish`` per request, in process, on uvloop. Each request takes an in-flight slot on the endpoint it
picked and gives it back, as real traffic does. Each case is timed three times; the fastest counts (the others
met the machine's noise, not the router's cost). ``--baseline`` runs the same measurement in a second process on
another checkout's ``src/`` and prints the ratio. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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

    def tcp_sample(self) -> tuple[None, int]:
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
    """Microseconds of router work per request for a pool of ``size`` endpoints using ``picker``."""
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
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(requests):
            await one(i)
        best = min(best, time.perf_counter() - start)
    return best / requests * 1e6


async def measure(requests: int) -> dict[str, float]:
    return {f"{picker}/{size}": await per_request_us(picker, size, requests) for picker in PICKERS for size in SIZES}


def baseline_results(checkout: str, requests: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(checkout).resolve() / "src")}
    out = subprocess.run([sys.executable, __file__, "--requests", str(requests), "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    results: dict[str, float] = json.loads(out)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per repeat of a case")
    parser.add_argument("--baseline", metavar="CHECKOUT", help="also measure another checkout (its src/)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    now = run(measure(args.requests))
    if args.json:
        print(json.dumps(now))
        return
    base: dict[str, Any] = baseline_results(args.baseline, args.requests) if args.baseline else {}
    print("| picker | endpoints | us/request" + (" | baseline us/request | baseline / now |" if base else " |"))
    print("|---|---|---|" + ("---|---|" if base else ""))
    for key, us in now.items():
        picker, size = key.split("/")
        row = f"| {picker} | {size} | {us:.0f}"
        if base:
            row += f" | {base[key]:.0f} | {base[key] / us:.2f}x"
        print(row + " |")


if __name__ == "__main__":
    main()
