"""How much load can `tokenyard bench` itself generate before its own send lag grows?

Starts `tokenyard sim --profile fast` (zero model latency) as a separate process, then runs short open-loop
Poisson runs at rising rates and prints achieved throughput and the generator's send lag (actual - intended send
time). Beyond the rate where the p99 send lag passes a few milliseconds, the generator (not the target) limits.

    python benchmarks/bench_loadgen.py [--rates 50,100,200,400] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from tokenyard.bench import parse_workload, run_workload
from tokenyard.runtime import run


async def start_sim() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tokenyard", "sim", "--port", "0", "--profile", "fast",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        proc.terminate()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, match.group(1)


async def main(rates: list[float], seconds: float) -> None:
    proc, url = await start_sim()
    try:
        print("| offered req/s | sent | completed req/s | send lag p50 ms | p99 ms | TTFT p50 ms | p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for rate in rates:
            wl = parse_workload({"arrival": {"kind": "poisson", "rate": rate}, "prompt_tokens": 64,
                                 "output_tokens": 16, "request_timeout_s": 30, "seed": 1})
            report = await run_workload(url, wl, duration_s=seconds, max_requests=int(rate * seconds * 2))
            s = report.summary
            t = s["totals"]
            print(f"| {rate:g} | {t['requests']} | {t['throughput_rps']:.1f} | {s['send_lag_ms']['p50']:.2f} "
                  f"| {s['send_lag_ms']['p99']:.2f} | {t['ttft_ms']['p50']:.2f} | {t['ttft_ms']['p99']:.2f} |")
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,100,200,400")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    run(main([float(r) for r in args.rates.split(",")], args.seconds))  # uvloop, as the CLI runs
