"""Prefix-affinity vs round-robin on a shared-prefix workload against a simulator fleet with prefix caching.

Every request goes through a real gateway (``tokenyard serve``, its own process) whose pool uses the picker
under test (``models.<name>.picker``), admission off so only the routing decision differs: ``--prefixes`` long
system prompts are shared by many requests; each simulator's KV cache holds only some
of them, so spreading every prefix over every endpoint (round-robin) keeps evicting them, while prefix
affinity keeps each prefix on one endpoint (and bounded load stops a hot prefix from overloading it).

    python benchmarks/prefix_affinity.py [--sims 4 --prefixes 16 --prefix-tokens 6000 --kv-blocks 3200 --requests 480]

Prints a Markdown table (TTFT p50/p95, throughput, prefix-cache hit rate per picker).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tokenyard.config import parse_config
from tokenyard.sim.testing import RunningSim, running_sim
from tokenyard.upstream.scrape import metrics_url, parse_backend_load


def make_prefixes(count: int, tokens: int, rng: random.Random) -> list[str]:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    prefixes = []
    for i in range(count):
        body = " ".join(rng.choice(words) for _ in range(tokens))  # ~6 chars a word: longer than needed
        prefixes.append((f"System prompt {i}: " + body)[: tokens * 4])
    return prefixes


async def prefix_stats(session: aiohttp.ClientSession, sims: list[RunningSim]) -> tuple[float, float]:
    hits = queries = 0.0
    for sim in sims:
        async with session.get(metrics_url(sim.base_url)) as resp:
            load = parse_backend_load(await resp.text(), 0.0)
        hits += load.prefix_cache_hits or 0.0
        queries += load.prefix_cache_queries or 0.0
    return hits, queries


@asynccontextmanager
async def gateway_process(document: dict[str, Any]) -> AsyncIterator[str]:
    """``tokenyard serve`` in its own process (so its work does not slow the simulators' timers); its URL."""
    parse_config(document, env={})  # fail here on a bad document
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gateway.yaml"
        path.write_text(yaml.safe_dump(document))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tokenyard", "serve", "--config", str(path),
                                                    stdout=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            while True:
                line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
                if not line:
                    raise RuntimeError("the gateway exited before listening")
                if "listening on" in line:
                    break
            yield line.rsplit(" ", 1)[1].strip()
        finally:
            proc.terminate()
            await proc.wait()


async def run_one(picker_name: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    prefixes = make_prefixes(args.prefixes, args.prefix_tokens, rng)
    async with AsyncExitStack() as stack:
        sims = [
            await stack.enter_async_context(
                running_sim(profile="large", seed=i, kv_blocks=args.kv_blocks, max_num_seqs=64)
            )
            for i in range(args.sims)
        ]
        document = {
            "listen": {"host": "127.0.0.1", "port": 0},
            "access_log": {"enabled": False},
            "admission": {"enabled": False},
            # The pool is named after the simulators' model, so the gateway forwards bodies without renaming.
            "models": {sims[0].model: {"picker": picker_name,
                                "endpoints": [{"url": sim.base_url + "/v1", "name": f"sim{i}"}
                                              for i, sim in enumerate(sims)]}},
        }
        gateway_url = await stack.enter_async_context(gateway_process(document))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        ttfts: list[float] = []
        failures = 0
        queue: asyncio.Queue[str] = asyncio.Queue()
        for n in range(args.requests):
            queue.put_nowait(rng.choice(prefixes) + f"\nUser question {n}: what now?")

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                prompt = queue.get_nowait()
                body = {"model": sims[0].model, "prompt": prompt, "max_tokens": args.output_tokens, "stream": True}
                start = time.perf_counter()
                async with session.post(gateway_url + "/v1/completions", json=body) as resp:
                    if resp.status != 200:
                        failures += 1
                        await resp.read()
                        continue
                    async for line in resp.content:  # TTFT: the first event with text, as a client sees it
                        if line.startswith(b"data: {") and b'"text":"' in line and b'"text":""' not in line:
                            ttfts.append(time.perf_counter() - start)
                            break
                    await resp.read()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
        hits, queries = await prefix_stats(session, sims)
    ttfts.sort()
    return {
        "picker": picker_name,
        "failures": failures,
        "ttft_p50_ms": statistics.median(ttfts) * 1000,
        "ttft_p95_ms": ttfts[int(0.95 * (len(ttfts) - 1))] * 1000,
        "throughput_rps": len(ttfts) / elapsed,
        "hit_rate": hits / queries if queries else 0.0,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=4)
    parser.add_argument("--prefixes", type=int, default=16)
    parser.add_argument("--prefix-tokens", type=int, default=6000)
    parser.add_argument("--kv-blocks", type=int, default=3200, help="per simulator (16 tokens a block)")
    parser.add_argument("--requests", type=int, default=480)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [await run_one(name, args) for name in ("round-robin", "prefix-affinity")]
    print("| picker (through the gateway) | TTFT p50 ms | TTFT p95 ms | req/s | prefix-cache hit rate | failed |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['picker']} | {r['ttft_p50_ms']:.0f} | {r['ttft_p95_ms']:.0f} | {r['throughput_rps']:.1f} "
              f"| {r['hit_rate']:.0%} | {r['failures']} |")
    rr, pa = rows
    print(f"\nTTFT p50 ratio (round-robin / prefix-affinity): {rr['ttft_p50_ms'] / pa['ttft_p50_ms']:.2f}x; "
          f"throughput ratio: {pa['throughput_rps'] / rr['throughput_rps']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
