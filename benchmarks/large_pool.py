"""The gateway in front of one large pool: throughput at concurrency 64, the gateway's CPU per request and the
latency at concurrency 1, for pools of 8 to 256 endpoints.

    python benchmarks/large_pool.py [--sizes 8,64,256] [--seconds 10] [--baseline CHECKOUT] [--admission]

Each pool is a fleet of ``fast`` simulators in one process (``tokenyard sim --fleet``), each on its own loopback
port, behind ``tokenyard serve`` with the default picker (least-load), health checks on, and admission off (this
measures routing, not admission). ``--admission`` turns admission on, with load scraping still off: it adds
admission's own per-request cost (queue entry, limits, the saturation signal over the pool), not 2 scrapes per
second of every endpoint. ``--baseline`` runs another checkout's gateway (its ``src/``) beside this one on the
same fleet, in interleaved rounds. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from children import Child, cpu_s, serve  # benchmarks/children.py (scripts run from benchmarks/ on sys.path)
from gateway_overhead import latencies, pct, throughput

from tokenyard import runtime

ROUNDS = 4


def start_fleet(size: int) -> tuple[Child, list[str]]:
    """``size`` simulators in one process; returns it and their URLs."""
    fleet = [{"name": f"m{i}", "kind": "llm", "profile": "fast", "host": "127.0.0.1", "port": 0} for i in range(size)]
    path = Path(tempfile.mkdtemp()) / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    child = Child([sys.executable, "-m", "tokenyard", "sim", "--fleet", str(path)], start_timeout_s=60)
    deadline = time.monotonic() + 60
    while True:
        text = Path(child.log.name).read_text()
        urls = [line.split("listening on ", 1)[1].split()[0] for line in text.splitlines() if "listening on " in line]
        if len(urls) == size:
            return child, urls
        if child.proc.poll() is not None or time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"the fleet of {size} did not start: {text[-2000:]}")
        time.sleep(0.1)


def gateway_config(urls: list[str], admission: bool) -> Path:
    path = Path(tempfile.mkdtemp()) / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"*": {"endpoints": [{"url": url + "/v1"} for url in urls]}},
        "admission": {"enabled": admission, "scrape": False},
    }))
    return path


async def measure_size(size: int, seconds: float, baseline: str | None, admission: bool
                       ) -> dict[str, dict[str, float]]:
    fleet, urls = start_fleet(size)
    gateways: dict[str, Child] = {}
    try:
        config = gateway_config(urls, admission)
        gateways["now"] = serve(["--config", str(config)])
        if baseline:
            gateways["baseline"] = serve(["--config", str(config)], baseline)
        done = dict.fromkeys(gateways, 0)
        spent = dict.fromkeys(gateways, 0.0)
        cpu = dict.fromkeys(gateways, 0.0)
        lat: dict[str, list[float]] = {name: [] for name in gateways}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for child in gateways.values():  # warm-up: every endpoint gets a connection
                await throughput(session, child.url, 64, 1.0)
            for _ in range(ROUNDS):  # interleaved, so a slow stretch of the machine hits both alike
                for name, child in gateways.items():
                    before = cpu_s(child.proc.pid)
                    answers, took = await throughput(session, child.url, 64, seconds / ROUNDS)
                    cpu[name] += cpu_s(child.proc.pid) - before
                    done[name] += answers
                    spent[name] += took
                    lat[name] += await latencies(session, child.url, 200, False)
        return {name: {"rps": done[name] / spent[name], "cpu_ms": 1000 * cpu[name] / done[name],
                       "p50": pct(lat[name], 50)} for name in gateways}
    finally:
        for child in gateways.values():
            child.stop()
        fleet.stop()


async def measure(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| endpoints | gateway | req/s (c=64) | gateway CPU ms/request (c=64) | p50 ms (c=1) |")
    print("|---|---|---|---|---|")
    for size in sizes:
        rows = await measure_size(size, args.seconds, args.baseline, args.admission)
        for name, row in rows.items():
            print(f"| {size} | {name} | {row['rps']:.0f} | {row['cpu_ms']:.2f} | {row['p50']:.2f} |", flush=True)
        if "baseline" in rows:
            now, base = rows["now"], rows["baseline"]
            print(f"| {size} | now / baseline | {now['rps'] / base['rps']:.2f}x "
                  f"| {now['cpu_ms'] / base['cpu_ms']:.2f}x | {now['p50'] / base['p50']:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="8,64,256", help="pool sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="c=64 load per gateway and pool size")
    parser.add_argument("--baseline", metavar="CHECKOUT", help="also run another checkout's gateway (its src/)")
    parser.add_argument("--admission", action="store_true", help="admission on (load scraping still off)")
    runtime.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
