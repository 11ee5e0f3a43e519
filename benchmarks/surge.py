"""Surge: admission on vs off (FIFO) at about 3x fleet capacity, one run (issue 4's benchmark).

    python benchmarks/surge.py [--duration 60] [--slots 8] [--out DIR]

The fleet is two ``large`` simulators with ``--max-num-seqs SLOTS`` (low capacity, so the run is short), each its
own process; every gateway is a fresh ``tokenyard serve`` process; the load generator is ``tokenyard.bench`` in
this process. Phases, in order:

1. capacity: closed loop, 2 x the fleet's slots, through a gateway with admission off -> completed req/s.
2. low load: premium only at 20 % of capacity, admission on -> premium TTFT p95 at low load.
3. off: the 3x mix (10 % premium / 60 % standard / 30 % batch, Poisson) through a gateway with admission and
   degradation off: the model servers queue everything in arrival order (FIFO).
4. on: the same load (same seed, same requests) with admission and the degradation ladder on.
5. on, no ladder: admission on, degradation off: how much the ladder raised effective capacity.

SLOs are TTFT only: premium 500 ms, standard 2000 ms, batch none. Goodput = completed requests per second that
met their class SLO (batch: completed). Prints a markdown table and writes DIR/summary.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tokenyard import runtime
from tokenyard.bench import parse_workload, run_workload
from tokenyard.bench.records import RequestRecord

SLO_MS = {"premium": 500.0, "standard": 2000.0}
MIX = {"premium": 1, "standard": 6, "batch": 3}


class Child:
    """A child process that prints ``... listening on http://HOST:PORT``."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.log_path = log_path
        self.url = ""

    async def wait_ready(self, timeout: float = 30.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.log_path.read_text()
            if "listening on http://" in text:
                self.url = text.split("listening on ", 1)[1].split()[0]
                return self.url
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log_path.name} exited: {text[-2000:]}")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.log_path.name} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def gateway_config(sims: list[str], slots: int, admission: bool, ladder: bool, reserve: float) -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"sim-large": {"endpoints": [{"url": url + "/v1"} for url in sims]}},
        "access_log": {"enabled": False},
        "admission": {
            "enabled": admission,
            "initial_limit": slots, "min_limit": max(2, slots // 2), "max_limit": slots + slots // 2,
            "queue_caps": {"batch": 2 * slots},
            "critical_reserve": reserve,
            "scrape_interval_ms": 250,
        },
        "degradation": {
            "enabled": ladder,
            "up_dwell_ms": 2000, "down_dwell_ms": 10000,
            "default_concise_max_tokens": 96,
        },
    }


def workload(name: str, rate: float | None, duration: float, classes: dict[str, int], concurrency: int | None = None
             ) -> Any:
    spec: dict[str, Any] = {
        "name": name, "model": "sim-large", "stream": True, "seed": 7, "duration_s": duration,
        "max_requests": 100_000, "request_timeout_s": 60,
        "prompt_tokens": {"dist": "lognormal", "mean": 128, "sigma": 0.5, "min": 16, "max": 1024},
        "output_tokens": {"dist": "uniform", "min": 32, "max": 256},
        "classes": {k: {"weight": w, "ttft_ms": SLO_MS.get(k), "itl_ms": None} for k, w in classes.items()},
        "tenants": {"acme": {"weight": 1}, "globex": {"weight": 1}},
    }
    if concurrency is not None:
        spec["concurrency"] = concurrency
    else:
        spec["arrival"] = {"kind": "poisson", "rate": rate}
    return parse_workload(spec)


async def idle(sims: list[str]) -> None:
    """Reset the simulators' counters once nothing runs or waits (bounded: 60 s)."""
    async with aiohttp.ClientSession() as session:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            busy = 0
            for url in sims:
                async with session.get(url + "/sim/stats") as resp:
                    stats = await resp.json()
                    busy += stats["running"] + stats["waiting"]
            if busy == 0:
                break
            await asyncio.sleep(0.5)
        for url in sims:
            async with session.post(url + "/sim/reset") as resp:
                await resp.read()


async def through_gateway(tmp: Path, name: str, sims: list[str], slots: int, admission: bool, ladder: bool,
                          wl: Any, reserve: float = 0.0) -> tuple[Any, str]:
    await idle(sims)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(gateway_config(sims, slots, admission, ladder, reserve)))
    gw = Child([sys.executable, "-m", "tokenyard", "serve", "--config", str(path)], tmp / f"{name}.log")
    try:
        url = await gw.wait_ready()
        await asyncio.sleep(1.0)  # first scrapes
        report = await run_workload(url, wl)
        async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
            metrics = await resp.text()
        return report, metrics
    finally:
        gw.stop()


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def met(record: RequestRecord) -> bool:
    slo = SLO_MS.get(record.cls)
    if record.outcome != "completed":
        return False
    return slo is None or (record.ttft_s is not None and record.ttft_s * 1000 <= slo)


def figures(report: Any, metrics: str, capacity: float) -> dict[str, Any]:
    records: list[RequestRecord] = report.requests
    duration = report.duration_s
    by = {k: [r for r in records if r.cls == k] for k in MIX}
    premium = by["premium"]
    # admitted = dispatched to a backend (a 200 answer); shed, expired in the queue (503/504) are refusals
    standard_admitted = [r for r in by["standard"] if r.status == 200]
    good = sum(1 for r in records if met(r))
    completed = [r for r in records if r.outcome == "completed"]
    degraded = sum(1 for r in records if r.degraded)
    return {
        "requests": len(records),
        "duration_s": round(duration, 1),
        "premium_ttft_p95_ms": _ms(p95([r.ttft_s for r in premium if r.outcome == "completed" and r.ttft_s])),
        "premium_success": _ratio(sum(1 for r in premium if r.outcome == "completed"), len(premium)),
        "standard_admitted": len(standard_admitted),
        "standard_admitted_meeting_slo": _ratio(sum(1 for r in standard_admitted if met(r)), len(standard_admitted)),
        "shed": {k: sum(1 for r in v if r.outcome == "shed") for k, v in by.items()},
        "expired": {k: sum(1 for r in v if r.status in (503, 504)) for k, v in by.items()},
        "errors": {k: sum(1 for r in v if r.outcome not in ("completed", "shed") and r.status not in (503, 504))
                   for k, v in by.items()},
        "completed_rps": round(len(completed) / duration, 2),
        "goodput_rps": round(good / duration, 2),
        "goodput_vs_capacity": round(good / duration / capacity, 3) if capacity else None,
        "degraded_requests": degraded,
        "completion_tokens_per_request": round(sum(r.completion_tokens for r in completed) / max(1, len(completed)), 1),
        "max_degradation_level": _gauge_max(metrics),
        "mean_queue_wait_ms": {k: _mean_wait_ms(metrics, k) for k in MIX},
    }


def _mean_wait_ms(metrics: str, klass: str) -> float | None:
    """Mean gateway queue wait of ``klass`` from the gateway's own histogram (None when never queued)."""
    values = {}
    for line in metrics.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f'tokenyard_queue_wait_seconds_{part}{{class="{klass}"}}'):
                values[part] = float(line.split()[-1])
    if not values.get("count"):
        return None
    return round(values["sum"] / values["count"] * 1000, 1)


def _gauge_max(metrics: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith("tokenyard_degradation_level "):
            return float(line.split()[1])
    return None


def _ms(value: float | None) -> float | None:
    return round(value * 1000, 1) if value is not None else None


def _ratio(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="surge-"))
    sims = [Child([sys.executable, "-m", "tokenyard", "sim", "--port", "0", "--profile", "large", "--seed", str(i),
                   "--max-num-seqs", str(args.slots)], tmp / f"sim{i}.log") for i in range(2)]
    try:
        urls = [await sim.wait_ready() for sim in sims]
        slots = args.slots
        total_slots = 2 * slots
        cal, _ = await through_gateway(tmp, "capacity", urls, slots, False, False,
                                       workload("capacity", None, args.calibrate, {"standard": 1}, 2 * total_slots))
        capacity = sum(1 for r in cal.requests if r.outcome == "completed") / cal.duration_s
        print(f"fleet capacity: {capacity:.2f} completed req/s ({total_slots} slots)", flush=True)
        low, _ = await through_gateway(tmp, "lowload", urls, slots, True, True,
                                       workload("lowload", 0.2 * capacity, args.calibrate, {"premium": 1}))
        low_p95 = p95([r.ttft_s for r in low.requests if r.outcome == "completed" and r.ttft_s])
        print(f"premium TTFT p95 at low load: {_ms(low_p95)} ms", flush=True)
        rate = args.multiplier * capacity
        runs = {}
        for name, admission, ladder in (("off", False, False), ("on", True, True), ("on_no_ladder", True, False)):
            if name == "on_no_ladder" and args.skip_no_ladder:
                continue
            report, metrics = await through_gateway(tmp, name, urls, slots, admission, ladder,
                                                    workload(f"surge-{name}", rate, args.duration, MIX), args.reserve)
            runs[name] = figures(report, metrics, capacity)
            print(name, json.dumps(runs[name]), flush=True)
        summary = {"capacity_rps": round(capacity, 2), "offered_rps": round(rate, 2), "slots": total_slots,
                   "premium_low_load_ttft_p95_ms": _ms(low_p95), "duration_s": args.duration,
                   "critical_reserve": args.reserve, "runs": runs}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(table(summary))
        return summary
    finally:
        for sim in sims:
            sim.stop()


def table(s: dict[str, Any]) -> str:
    runs = s["runs"]
    names = [n for n in ("off", "on", "on_no_ladder") if n in runs]
    low = s["premium_low_load_ttft_p95_ms"]
    rows = [
        ("premium TTFT p95 (ms)", [f"{runs[n]['premium_ttft_p95_ms']} ({_x(runs[n]['premium_ttft_p95_ms'], low)})"
                                  for n in names]),
        ("premium success", [_pct(runs[n]["premium_success"]) for n in names]),
        ("standard dispatched / of them meeting 2 s TTFT", [f"{runs[n]['standard_admitted']} / "
                                                  f"{_pct(runs[n]['standard_admitted_meeting_slo'])}" for n in names]),
        ("shed (premium/standard/batch)", ["/".join(str(runs[n]["shed"][k]) for k in MIX) for n in names]),
        ("expired in queue, 503/504 (premium/standard/batch)", ["/".join(str(runs[n]["expired"][k]) for k in MIX)
                                                                for n in names]),
        ("other failures (premium/standard/batch)", ["/".join(str(runs[n]["errors"][k]) for k in MIX)
                                                     for n in names]),
        ("completed req/s", [str(runs[n]["completed_rps"]) for n in names]),
        ("goodput req/s (vs capacity)", [f"{runs[n]['goodput_rps']} ({_pct(runs[n]['goodput_vs_capacity'])})"
                                         for n in names]),
        ("mean gateway queue wait ms (premium/standard/batch)",
         ["/".join(str(runs[n]["mean_queue_wait_ms"][k]) for k in MIX) for n in names]),
        ("tokens per completed request", [str(runs[n]["completion_tokens_per_request"]) for n in names]),
        ("degraded requests (max level)", [f"{runs[n]['degraded_requests']} ({runs[n]['max_degradation_level']})"
                                           for n in names]),
    ]
    head = "| | " + " | ".join({"off": "admission off (FIFO)", "on": "admission on",
                                "on_no_ladder": "admission on, no ladder"}[n] for n in names) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def _x(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def _pct(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of surge per run")
    parser.add_argument("--calibrate", type=float, default=20.0, help="seconds of the capacity and low-load runs")
    parser.add_argument("--slots", type=int, default=8, help="max_num_seqs of each of the two simulators")
    parser.add_argument("--multiplier", type=float, default=3.0, help="offered load / capacity")
    parser.add_argument("--reserve", type=float, default=0.4, help="admission.critical_reserve of the on runs")
    parser.add_argument("--skip-no-ladder", action="store_true", help="leave out run 5")
    parser.add_argument("--out", default="surge-out")
    runtime.run(main(parser.parse_args()))
