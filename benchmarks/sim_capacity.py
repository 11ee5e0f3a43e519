"""Simulator capacity: one `tokenyard sim` process, thousands of concurrent streams, timing vs the model.

Starts the simulator as a subprocess, opens STREAMS streaming chat requests from several client processes (raw
asyncio sockets, so the client is not the bottleneck), lets them ramp up, then measures for MEASURE_S seconds:

- streamed tokens/s received by the clients;
- mean inter-token time per stream (window length / tokens per stream) vs the model's predicted step time at the
  batch the engine actually ran (``mean_predicted_step_ms`` from /sim/stats, jitter off);
- TTFT of sparse probe requests sent during the window vs the model's prediction for a request arriving at a
  random moment: front-end delay + half a step (waiting for the next step boundary) + one step (its prefill step).

Usage: python3 benchmarks/sim_capacity.py [--streams 2000] [--clients 1] [--measure 10] [--itl-ms 40]
Exit status 0 when every target is met (>= 2,000 streams, >= 20,000 tokens/s, both errors within 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

HOST = "127.0.0.1"
MODEL = "sim-large"


def request_bytes(port: int, max_tokens: int, content: str) -> bytes:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
                       "stream": True}).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


TOKEN = b'"delta":{"content":'
READ_INTERVAL_S = 0.25


async def _stream(port: int, max_tokens: int, idx: int, t0: float, t1: float, out: dict[str, Any],
                  stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request_bytes(port, max_tokens, f"stream {idx} says hello"))
        tail = b""
        first = None
        while not stop.is_set():
            data = await reader.read(65536)
            if not data:
                break
            now = time.time()
            buf = tail + data
            n = buf.count(TOKEN)
            tail = buf[-(len(TOKEN) - 1):]
            if n and first is None:
                first = now
                out["first"] += 1
            if t0 <= now <= t1:
                out["window_tokens"] += n
            if b"[DONE]" in buf:
                out["done"] += 1
                break
            # Read each stream a few times a second: several tokens per recv, so the measuring client spends
            # little CPU (counts are per window, so batching reads does not bias the rates).
            await asyncio.sleep(READ_INTERVAL_S)
    except OSError:
        out["errors"] += 1
    finally:
        writer.close()


async def _client_main(port: int, streams: int, offset: int, max_tokens: int, t0: float, t1: float) -> dict[str, Any]:
    out: dict[str, Any] = {"first": 0, "window_tokens": 0, "done": 0, "errors": 0}
    stop = asyncio.Event()
    tasks = []
    for i in range(streams):
        tasks.append(asyncio.create_task(_stream(port, max_tokens, offset + i, t0, t1, out, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)  # don't overflow the listen backlog
    await asyncio.sleep(max(0.0, t1 - time.time()) + 0.2)
    out["first_at_t1"] = out["first"]
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


def client_process(port: int, streams: int, offset: int, max_tokens: int, t0: float, t1: float,
                   results: Any) -> None:
    os.nice(5)  # the measuring client yields to the simulator it measures (it reads in batches anyway)
    try:
        import uvloop
        result = uvloop.run(_client_main(port, streams, offset, max_tokens, t0, t1))
    except ImportError:
        result = asyncio.run(_client_main(port, streams, offset, max_tokens, t0, t1))
    results.put(result)


async def probe_ttft(port: int, count: int, spacing: float, until: float) -> list[float]:
    """TTFT of sparse single requests, measured from just before the request is written."""
    ttfts: list[float] = []
    rng = random.Random(0)  # random gaps: probes must not phase-lock to the engine's step boundaries
    for i in range(count):
        if time.time() > until:
            break
        reader, writer = await asyncio.open_connection(HOST, port)
        start = time.time()
        writer.write(request_bytes(port, 2, f"probe {i}"))
        buf = b""
        while TOKEN not in buf:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
        ttfts.append(time.time() - start)
        writer.close()
        await asyncio.sleep(spacing * rng.uniform(0.5, 1.5))
    return ttfts


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def http_json(port: int, path: str, method: str = "GET") -> Any:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--ramp", type=float, default=8.0)
    ap.add_argument("--measure", type=float, default=10.0)
    ap.add_argument("--itl-ms", type=float, default=40.0)
    ap.add_argument("--load-factor", type=float, default=2.0)
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--probes", type=int, default=30)
    args = ap.parse_args()
    max_seqs = args.streams + 64
    sim = subprocess.Popen(
        [sys.executable, "-m", "tokenyard", "sim", "--port", "0", "--profile", "large", "--jitter", "0",
         "--max-num-seqs", str(max_seqs), "--max-queue", str(4 * max_seqs), "--itl-ms", str(args.itl_ms),
         "--load-factor", str(args.load_factor), "--ttft-ms", str(args.ttft_ms), "--kv-blocks", "1000000"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))  # type: ignore[union-attr]
        total_s = args.ramp + args.measure
        # Long enough that no stream finishes before the window closes.
        max_tokens = int(total_s * 1000 / (args.itl_ms * args.load_factor)) + 100
        t0 = time.time() + args.ramp
        t1 = t0 + args.measure
        ctx = mp.get_context("spawn")
        results: Any = ctx.Queue()
        per = [args.streams // args.clients + (1 if i < args.streams % args.clients else 0)
               for i in range(args.clients)]
        procs = [ctx.Process(target=client_process, args=(port, n, sum(per[:i]), max_tokens, t0, t1, results))
                 for i, n in enumerate(per)]
        for p in procs:
            p.start()
        time.sleep(max(0.0, t0 - time.time()))
        ramp_stats = http_json(port, "/sim/stats")
        http_json(port, "/sim/reset", "POST")
        cpu0 = cpu_seconds(sim.pid)
        print(f"window opens {time.time() - t0:+.2f}s late", file=sys.stderr, flush=True)
        spacing = args.measure / (args.probes + 1)
        ttfts = asyncio.run(probe_ttft(port, args.probes, spacing, t1 - 0.5))
        time.sleep(max(0.0, t1 - time.time()))
        stats = http_json(port, "/sim/stats")
        cpu1 = cpu_seconds(sim.pid)
        sim_user, sim_sys = ((b - a) / args.measure for a, b in zip(cpu0, cpu1, strict=True))
        outs = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        time.sleep(1.0)
        after = http_json(port, "/sim/stats")
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(20)
        except subprocess.TimeoutExpired:
            sim.kill()
    streams_up = sum(o["first_at_t1"] for o in outs)
    window_tokens = sum(o["window_tokens"] for o in outs)
    tok_s = window_tokens / args.measure
    measured_itl = 1000.0 * args.measure * streams_up / window_tokens if window_tokens else float("inf")
    predicted_step = stats["mean_predicted_step_ms"]
    frontend = max(0.0, args.ttft_ms - args.itl_ms)
    predicted_ttft = frontend + 1.5 * predicted_step
    measured_ttft = 1000.0 * sum(ttfts) / len(ttfts) if ttfts else float("nan")
    itl_err = measured_itl / predicted_step - 1
    ttft_err = measured_ttft / predicted_ttft - 1
    report = {
        "streams_requested": args.streams, "streams_streaming": streams_up, "client_processes": args.clients,
        "errors": sum(o["errors"] for o in outs), "sim_cpu_user": round(sim_user, 2),
        "sim_cpu_sys": round(sim_sys, 2),
        "sim_cpu_us_per_token": round(1e6 * (sim_user + sim_sys) / max(1.0, tok_s), 1),
        "load_average_1m": round(os.getloadavg()[0], 2), "tokens_per_s": round(tok_s),
        "mean_batch": round(stats["mean_batch"], 1), "predicted_step_ms": round(predicted_step, 2),
        "engine_step_ms": round(stats["mean_step_ms"], 2), "step_lag_events": stats["step_lag_events"],
        "step_lag_ms_max": round(stats["step_lag_ms_max"], 1),
        "measured_itl_ms": round(measured_itl, 2), "itl_error": f"{itl_err:+.1%}",
        "predicted_ttft_ms": round(predicted_ttft, 1), "measured_ttft_ms": round(measured_ttft, 1),
        "ttft_error": f"{ttft_err:+.1%}", "probe_ttft_ms": [round(t * 1000, 1) for t in ttfts],
        "delivered_in_window": stats["delivered_tokens"], "generated_in_window": stats["generated_tokens"],
        "running_at_ramp_end": ramp_stats["running"],
        "aborted_after_disconnect": after["aborted_requests"], "running_after_disconnect": after["running"],
    }
    print(json.dumps(report, indent=1))
    ok = (streams_up >= 2000 and tok_s >= 20_000 and abs(itl_err) <= 0.10 and abs(ttft_err) <= 0.10)
    print("PASS" if ok else "MISS", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
