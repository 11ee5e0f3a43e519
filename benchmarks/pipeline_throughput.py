"""Pipeline throughput, lag under a burst, and recovery time after a worker dies.

Starts its own redis-server and a `fast` simulator (`tokenyard sim --profile fast`, a separate process) on free
loopback ports, ended by PID. Three measurements, each bounded in count and time:

0. ceiling: a bare aiohttp client sends the same streamed requests to the same simulator (64 at once): the most
   this machine allows right now, for comparison.
1. throughput: N events already in the log, one worker (in this process) drains them; events/s = N / time from
   start to the last ack. On Redis Streams and on the embedded SQLite log. Also the CPU time per event of this
   process (the worker, with its log thread) and of the simulator process: unlike events/s, these hardly move
   when other work shares the machine.
2. burst: the worker runs while a producer appends a burst of B events as fast as it can; peak lag and the time
   from the end of the burst until the lag is back to 0.
3. recovery: two `tokenyard pipeline run` processes share a stream on Redis; one is killed with SIGKILL while it
   holds pending events; time from the kill until every event it held has a result (claim after
   ``claim_idle_ms`` + processing).

    python benchmarks/pipeline_throughput.py [--events 5000] [--burst 3000] [--claim-idle-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from children import cpu_s, free_port, start_redis  # benchmarks/children.py (scripts run from benchmarks/ on sys.path)

from tokenyard.pipeline.event import encode_event
from tokenyard.pipeline.eventlog import EventLog, open_event_log
from tokenyard.pipeline.logs import lag
from tokenyard.pipeline.service import running_pipeline, tune_worker_gc
from tokenyard.pipeline.spec import parse_spec
from tokenyard.runtime import run

LIMIT_S = 120.0  # every phase ends by then, whatever happens


def _start_sim() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tokenyard", "sim", "--profile", "fast", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    return proc, line.rsplit(" ", 1)[-1].strip()


def _doc(log_url: str, sim_url: str, name: str, **worker: Any) -> dict[str, Any]:
    return {
        "name": name, "log": log_url, "source": {"stream": f"{name}:events", "group": "bench"},
        "transforms": [{"template": {"text": "Summarize: {text}"}}],
        "inference": {"model": "sim-fast", "upstream": sim_url + "/v1", "max_tokens": 16},
        "sinks": [{"stream": {"stream": f"{name}:results"}}],
        "delivery": {"claim_idle_ms": worker.pop("claim_idle_ms", 30_000)},
        "worker": {"max_inflight": 256, "batch": 256, "block_ms": 50, **worker},
    }


async def _produce(log: EventLog, stream: str, n: int, prefix: str) -> None:
    for start in range(0, n, 32):  # 32 appends in flight: the producer's own connection budget
        await asyncio.gather(*(log.append(stream, encode_event({"text": f"event {i}"}, event_id=f"{prefix}{i}"))
                               for i in range(start, min(n, start + 32))))


async def _wait_drained(log: EventLog, stream: str, results: str, n: int) -> None:
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        if await log.length(results) >= n and await lag(log, stream, "bench") == 0:
            return
        await asyncio.sleep(0.02)
    raise SystemExit(f"not drained within {LIMIT_S} s")


async def ceiling(sim_url: str, n: int) -> dict[str, Any]:
    """The same requests from a bare aiohttp client (64 at once): what this machine allows at all right now."""
    import aiohttp

    body = json.dumps({"model": "sim-fast", "messages": [{"role": "user", "content": "Summarize: event 1"}],
                       "max_tokens": 16, "stream": True, "stream_options": {"include_usage": True}}).encode()
    slots = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            async with slots, session.post(sim_url + "/v1/chat/completions", data=body,
                                           headers={"Content-Type": "application/json"}) as resp:
                async for _ in resp.content:
                    pass
        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(n)))
        elapsed = time.monotonic() - started
    return {"requests": n, "seconds": round(elapsed, 2), "requests_per_s": round(n / elapsed)}


async def throughput(log_url: str, sim_url: str, sim_pid: int, n: int, name: str) -> dict[str, Any]:
    spec = parse_spec(_doc(log_url, sim_url, name))
    log = open_event_log(log_url)
    try:
        await _produce(log, spec.source.stream, n, "t")
        started, cpu, sim_cpu = time.monotonic(), cpu_s(os.getpid()), cpu_s(sim_pid)
        async with running_pipeline(spec):
            await _wait_drained(log, spec.source.stream, f"{name}:results", n)
            elapsed = time.monotonic() - started
            cpu, sim_cpu = cpu_s(os.getpid()) - cpu, cpu_s(sim_pid) - sim_cpu
        return {"events": n, "seconds": round(elapsed, 2), "events_per_s": round(n / elapsed),
                "worker_cpu_ms_per_event": round(cpu / n * 1000, 3),
                "simulator_cpu_ms_per_event": round(sim_cpu / n * 1000, 3)}
    finally:
        await log.aclose()


async def burst(log_url: str, sim_url: str, n: int) -> dict[str, Any]:
    spec = parse_spec(_doc(log_url, sim_url, "burst"))
    log = open_event_log(log_url)
    peak = 0
    try:
        async with running_pipeline(spec):
            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, await lag(log, spec.source.stream, "bench"))
                    await asyncio.sleep(0.05)
            sampler = asyncio.create_task(sample())
            started = time.monotonic()
            await _produce(log, spec.source.stream, n, "b")
            burst_s = time.monotonic() - started
            await _wait_drained(log, spec.source.stream, "burst:results", n)
            drain_s = time.monotonic() - started - burst_s
            sampler.cancel()
        return {"burst_events": n, "burst_seconds": round(burst_s, 2), "producer_events_per_s": round(n / burst_s),
                "peak_lag": peak, "drain_after_burst_s": round(drain_s, 2)}
    finally:
        await log.aclose()


async def recovery(log_url: str, sim_url: str, n: int, claim_idle_ms: int, workdir: str) -> dict[str, Any]:
    doc = _doc(log_url, sim_url, "recovery", claim_idle_ms=claim_idle_ms, claim_every_ms=100, max_inflight=64)
    path = Path(workdir) / "recovery.yaml"
    path.write_text(yaml.safe_dump(doc))
    log = open_event_log(log_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        for consumer in ("victim", "survivor"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tokenyard", "pipeline", "run", str(path), "--consumer", consumer,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            assert proc.stdout is not None
            await asyncio.wait_for(proc.stdout.readline(), 30)
            procs.append(proc)
        stream = "recovery:events"
        producer = asyncio.create_task(_produce(log, stream, n, "r"))
        deadline = time.monotonic() + LIMIT_S
        while await log.length("recovery:results") < n // 4:
            if time.monotonic() > deadline:
                raise SystemExit("recovery: the workers made no progress")
            await asyncio.sleep(0.01)
        held: list[str] = []
        for _ in range(200):  # kill while the victim holds events
            held = [p.id for p in await log.pending(stream, "bench", count=10_000, consumer="victim")]
            if held:
                break
            await asyncio.sleep(0.005)
        os.kill(procs[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        await procs[0].wait()
        held_ids = {(await log.read_range(stream, i, i))[0].fields["id"] for i in held}
        await producer
        recovered_s = None
        deadline = time.monotonic() + LIMIT_S
        while time.monotonic() < deadline:
            done = {e.fields["event_id"] for e in await log.read_range("recovery:results")}
            if held_ids <= done:
                recovered_s = time.monotonic() - killed
                break
            await asyncio.sleep(0.02)
        await _wait_drained(log, stream, "recovery:results", n)
        results = await log.read_range("recovery:results")
        ids = [e.fields["event_id"] for e in results]
        return {"events": n, "held_by_victim": len(held_ids), "claim_idle_ms": claim_idle_ms,
                "recovery_s": round(recovered_s, 2) if recovered_s is not None else None,
                "results": len(ids), "duplicates": len(ids) - len(set(ids))}
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
        await log.aclose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tune_worker_gc()  # the worker runs in this process: set up as `tokenyard pipeline run` sets up its own
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        redis_proc = start_redis(port, workdir)
        sim_proc, sim_url = _start_sim()
        redis_url = f"redis://127.0.0.1:{port}/0"
        sqlite_url = f"sqlite://{workdir}/bench.db"
        try:
            report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, shared with other work"}
            phases: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
                "client_ceiling": lambda: ceiling(sim_url, args.events),
                "throughput_redis": lambda: throughput(redis_url, sim_url, sim_proc.pid, args.events, "tput-redis"),
                "throughput_sqlite": lambda: throughput(sqlite_url, sim_url, sim_proc.pid, args.events,
                                                        "tput-sqlite"),
                "burst_redis": lambda: burst(redis_url, sim_url, args.burst),
                "recovery_redis": lambda: recovery(redis_url, sim_url, args.events // 2, args.claim_idle_ms,
                                                   workdir),
            }
            for name, phase in phases.items():
                if args.only and name not in args.only:
                    continue
                report[name] = await phase()
                print(name, json.dumps(report[name]), file=sys.stderr, flush=True)  # progress
            return report
        finally:
            for proc in (sim_proc, redis_proc):
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--claim-idle-ms", type=int, default=1000)
    parser.add_argument("--only", nargs="*", default=None, help="phases to run (default: all)")
    print(json.dumps(run(main(parser.parse_args())), indent=2))
