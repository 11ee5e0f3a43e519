"""Resumable streams under a flaky client network: completion rate and wasted tokens, resume on vs off.

Usage: python benchmarks/resume.py [--requests N] [--concurrency C] [--tokens T] [--fault-rate P] [--seed S]

One simulator, one gateway and a chaos proxy between the clients and the gateway that resets a connection with
probability P once ``--cut-after-bytes`` (default 8,000: about half of a 128-token answer) went through it.
Two runs, same seed:

- **resume on** (class with ``resume_window_ms: 5000``): a cut client reconnects to ``GET /v1/streams/{id}`` with
  ``Last-Event-ID`` (each reconnect is a new connection, cut with the same probability);
- **resume off** (no window): a cut client sends the request again from the start (what clients do today).

Each client gets at most 5 connections per answer. Completion rate: answers received whole / answers asked for.
Wasted tokens: tokens the simulator generated minus the tokens of the answers received whole (work thrown away
by aborts, and answers generated twice). Bounded in count; prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from tokenyard.chaos.faults import DirectionFaults, Faults
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.config import parse_config
from tokenyard.gateway.app import running_gateway
from tokenyard.runtime import run
from tokenyard.sim.testing import running_sim

MAX_CONNECTIONS = 5
CUT = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError)


class Answer:
    __slots__ = ("done", "failed", "last_id", "request_id", "tokens")

    def __init__(self) -> None:
        self.request_id = ""
        self.last_id = 0
        self.tokens = 0
        self.done = False
        self.failed = False


async def read(resp: aiohttp.ClientResponse, answer: Answer) -> None:
    current = 0
    async for raw in resp.content:
        if raw.startswith(b"id: "):
            current = int(raw[4:])
        elif raw.startswith(b"data: [DONE]"):
            answer.done = True
        elif raw.startswith(b"event: error"):
            answer.failed = True
        elif raw.startswith(b"data: ") and b'"content":"' in raw and b'"content":""' not in raw:
            answer.tokens += 1
        elif raw == b"\n" and current:
            answer.last_id = current


async def one_answer(session: aiohttp.ClientSession, url: str, body: dict[str, Any], resume: bool) -> Answer:
    answer = Answer()
    for attempt in range(MAX_CONNECTIONS):
        try:
            if attempt == 0 or not resume or not answer.request_id:
                answer = Answer()  # from the start: first try, no resume, or not even the head arrived
                async with session.post(url + "/v1/chat/completions", json=body) as resp:
                    answer.request_id = resp.headers.get("x-request-id", "")
                    await read(resp, answer)
            else:
                async with session.get(f"{url}/v1/streams/{answer.request_id}",
                                       headers={"Last-Event-ID": str(answer.last_id)}) as resp:
                    if resp.status != 200:
                        return answer
                    await read(resp, answer)
        except CUT:
            continue
        if answer.done or answer.failed:
            return answer
    return answer


async def run_mode(args: argparse.Namespace, resume: bool) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(running_sim(seed=args.seed, itl_ms=10.0, max_num_seqs=256))
        window = 5000 if resume else 0
        config = parse_config({
            "listen": {"host": "127.0.0.1", "port": 0},
            "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}},
            "classes": {"live": {"priority": 0, "resume_window_ms": window}},
            "default_class": "live",
            "access_log": {"enabled": False},
        }, env={})
        gw = await stack.enter_async_context(running_gateway(config))
        faults = Faults(down=DirectionFaults(reset_prob=args.fault_rate, reset_after_bytes=args.cut_after_bytes))
        proxy = await stack.enter_async_context(ChaosProxy("127.0.0.1", gw.port, faults, seed=args.seed))
        session = await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=60)))
        url = f"http://127.0.0.1:{proxy.port}"
        gate = asyncio.Semaphore(args.concurrency)

        async def client(i: int) -> Answer:
            body = {"model": "sim-fast", "messages": [{"role": "user", "content": f"question {i}"}],
                    "max_tokens": args.tokens, "stream": True}
            async with gate:
                return await one_answer(session, url, body, resume)

        started = time.perf_counter()
        answers = await asyncio.gather(*(client(i) for i in range(args.requests)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)  # let aborts land before reading the simulator's counters
        stats = await sim.stats()
        whole = [a for a in answers if a.done and a.tokens == args.tokens]
        generated = int(stats["generated_tokens"])
        return {"mode": "resume on" if resume else "resume off", "requests": args.requests,
                "completed": len(whole), "completion_rate": len(whole) / args.requests,
                "generated_tokens": generated, "useful_tokens": len(whole) * args.tokens,
                "wasted_tokens": generated - len(whole) * args.tokens,
                "aborted_generations": int(stats["aborted_requests"]), "connections": proxy.stats.connections_total,
                "resets": proxy.stats.resets, "elapsed_s": round(elapsed, 2)}


async def main(args: argparse.Namespace) -> None:
    rows = [await run_mode(args, True), await run_mode(args, False)]
    print(f"fault rate {args.fault_rate} per connection (reset after {args.cut_after_bytes} bytes of answer), "
          f"{args.requests} answers of "
          f"{args.tokens} tokens, concurrency {args.concurrency}, at most {MAX_CONNECTIONS} connections per answer")
    print("| mode | completed | completion rate | generated tokens | wasted tokens | aborted generations | "
          "connections | resets | time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['completed']}/{r['requests']} | {r['completion_rate']:.1%} | "
              f"{r['generated_tokens']} | {r['wasted_tokens']} ({r['wasted_tokens'] / r['generated_tokens']:.1%}) | "
              f"{r['aborted_generations']} | {r['connections']} | {r['resets']} | {r['elapsed_s']} s |")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--fault-rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cut-after-bytes", type=int, default=8000, help="where a faulty connection is reset")
    parser.add_argument("--json", action="store_true")
    run(main(parser.parse_args()))
