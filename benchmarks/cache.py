"""Response cache: hit latency (inside the process around the lookup, and end to end) and semantic accuracy.

    python benchmarks/cache.py [--requests 2000] [--no-semantic]

1. A gateway (in process, ``cache.enabled``) in front of the ``fast`` simulator; one deterministic request is
   cached, then ``--requests`` sequential hits at concurrency 1. Reported: the exact lookup itself
   (``ResponseCache.lookup_seconds``: key normalisation + hash + store get) p50/p99, and the client's end-to-end
   latency of a hit vs. of the same request bypassing the cache (``x-tokenyard-cache: off``), for the memory
   store and for the Redis store (a redis-server started here).
2. Semantic: a paraphrase set generated here (topics x question templates). Each topic's first phrasing is
   cached; its other phrasings should hit it (hit rate), and phrasings of topics never cached should hit nothing
   (false-hit rate; a paraphrase that hits another topic's entry also counts as a false hit), per threshold.
Prints markdown tables. The machine is shared: numbers vary run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

BODY: dict[str, Any] = {"model": "sim-fast", "messages": [{"role": "user", "content": "what is two plus two"}],
                        "max_tokens": 16, "temperature": 0}
TOPICS = ["the capital of France", "photosynthesis", "the speed of light", "black holes", "the French revolution",
          "machine learning", "the stock market", "climate change", "the human heart", "quantum computing",
          "the Roman empire", "volcanoes", "vaccines", "the theory of relativity", "blockchain",
          "the water cycle", "DNA replication", "the Great Wall of China", "inflation in economics",
          "jazz music"]
UNSEEN = ["sourdough bread", "the Olympic games", "tax returns", "knitting a scarf", "the Amazon rainforest",
          "electric cars", "chess openings", "the moon landing", "coffee roasting", "learning Spanish",
          "the Eiffel tower", "honey bees", "solar panels", "marathon training", "the printing press",
          "origami", "submarines", "the Mona Lisa", "wine tasting", "earthquakes"]
TEMPLATES = ["What is {t}?", "Can you explain {t} to me?", "Tell me about {t}.", "I want to understand {t}.",
             "Give me an overview of {t}."]


def paraphrase_set() -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """(cached prompts as (topic, text)), (paraphrases as (topic, text)), unrelated prompts."""
    cached = [(t, TEMPLATES[0].format(t=t)) for t in TOPICS]
    paraphrases = [(t, tpl.format(t=t)) for t in TOPICS for tpl in TEMPLATES[1:]]
    unrelated = [tpl.format(t=t) for t in UNSEEN for tpl in TEMPLATES]
    return cached, paraphrases, unrelated


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed(session: aiohttp.ClientSession, url: str, n: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as resp:
            await resp.read()
        out.append(time.perf_counter() - start)
    return out


async def hit_latency(state: str, requests: int) -> list[tuple[str, str]]:
    from tokenyard.config import parse_config
    from tokenyard.gateway.app import running_gateway
    from tokenyard.sim.testing import running_sim

    store = "memory" if state == "memory" else "shared"
    async with running_sim("fast") as sim:
        config = parse_config({"listen": {"host": "127.0.0.1", "port": 0}, "state": state,
                               "cache": {"enabled": True, "store": store}, "access_log": {"enabled": False},
                               "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}}}, env={})
        async with running_gateway(config) as gw, aiohttp.ClientSession() as session:
            cache = gw.gateway.cache
            assert cache is not None
            await _timed(session, gw.base_url, 50, {})  # cache the answer, warm the connection
            cache.lookup_seconds.clear()
            hits = await _timed(session, gw.base_url, requests, {})
            lookups = list(cache.lookup_seconds)
            bypass = await _timed(session, gw.base_url, max(50, requests // 10), {"x-tokenyard-cache": "off"})
    name = "memory" if state == "memory" else "Redis"
    return [
        (f"{name} store: exact lookup in process (ms)",
         f"p50 {statistics.median(lookups) * 1000:.3f}, p99 {_pct(lookups, 0.99) * 1000:.3f}"),
        (f"{name} store: hit end to end, c=1 (ms)",
         f"p50 {statistics.median(hits) * 1000:.2f}, p99 {_pct(hits, 0.99) * 1000:.2f}"),
        (f"{name} store: same request bypassing the cache, c=1 (ms)", f"p50 {statistics.median(bypass) * 1000:.2f}"),
    ]


async def semantic_rates(thresholds: list[float]) -> list[tuple[str, str]]:
    from tokenyard.cache.semantic import MiniLMEmbedder, SemanticCache

    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    await asyncio.to_thread(embedder.load)
    load_s = time.perf_counter() - started
    cached, paraphrases, unrelated = paraphrase_set()
    rows = [("semantic: model load (s)", f"{load_s:.1f}"),
            ("semantic: set", f"{len(cached)} cached, {len(paraphrases)} paraphrases, {len(unrelated)} unrelated")]
    vectors = {text: v for text, v in zip(
        [t for _, t in cached] + [t for _, t in paraphrases] + unrelated,
        await asyncio.to_thread(embedder.embed, [t for _, t in cached] + [t for _, t in paraphrases] + unrelated),
        strict=True)}
    times = []
    for i in range(20):
        one = time.perf_counter()
        await asyncio.to_thread(embedder.embed, [f"How long does embedding prompt number {i} take?"])
        times.append(time.perf_counter() - one)
    rows.append(("semantic: one prompt embedded, 20 calls (ms)",
                 f"p50 {statistics.median(times) * 1000:.1f}, max {max(times) * 1000:.1f}"))
    for threshold in thresholds:
        cache = SemanticCache(embedder, threshold, 10_000, 3600.0)
        for topic, text in cached:
            await cache.add("bench", vectors[text], topic)
        hits = wrong = 0
        for topic, text in paraphrases:
            found = await cache.find("bench", vectors[text])
            if found is not None:
                hits += found[0] == topic
                wrong += found[0] != topic
        false_unrelated = sum([await cache.find("bench", vectors[text]) is not None for text in unrelated])
        false_rate = (wrong + false_unrelated) / (len(paraphrases) + len(unrelated))
        rows.append((f"semantic threshold {threshold:.2f}: hit rate / false-hit rate",
                     f"{hits / len(paraphrases):.0%} / {false_rate:.1%}"))
    return rows


def _redis() -> tuple[subprocess.Popen[bytes], str, tempfile.TemporaryDirectory[str]] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.TemporaryDirectory()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir",
                             workdir.name], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0", workdir


async def run(requests: int, semantic: bool) -> list[tuple[str, str]]:
    rows = await hit_latency("memory", requests)
    redis = _redis()
    if redis is not None:
        proc, url, workdir = redis
        try:
            rows += await hit_latency(url, requests)
        finally:
            proc.terminate()
            proc.wait(10)
            workdir.cleanup()
    if semantic:
        rows += await semantic_rates([0.80, 0.85, 0.90])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-semantic", action="store_true")
    args = parser.parse_args()
    from tokenyard import runtime

    rows = runtime.run(run(args.requests, not args.no_semantic))
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
