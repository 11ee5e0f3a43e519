"""Cost of admission per request: the fair queue alone, and the AdmissionController on uvloop.

Usage: python benchmarks/admission_overhead.py [--requests N]
Prints a markdown table; bounded in count (default 20000 requests per case).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from tokenyard.policy.adaptive_limit import AdaptiveLimitSettings
from tokenyard.policy.fair_queue import FairQueue
from tokenyard.policy.shedding import ShedTier
from tokenyard.runtime import run
from tokenyard.traffic.admission import AdmissionController, AdmissionSettings
from tokenyard.traffic.admission_types import AdmissionTicket


def fair_queue_case(n: int) -> float:
    """Push n entries (3 bands, 50 tenants, random costs and deadlines), then pop them all."""
    rng = random.Random(0)
    q = FairQueue()
    start = time.perf_counter()
    for i in range(n):
        q.push(f"r{i}", tenant=f"t{i % 50}", klass="k", band=i % 3, cost=rng.randrange(50, 5000), now=0.0,
               ttl_s=60.0, deadline=rng.choice([None, rng.random()]))
    while q.pop(1.0) is not None:
        pass
    return time.perf_counter() - start


def ticket(i: int) -> AdmissionTicket:
    return AdmissionTicket(request_id=f"r{i}", tenant=f"t{i % 50}", klass="standard", priority=i % 3,
                           pool="chat", prompt_tokens=500, max_tokens=200, tier=ShedTier.CRITICAL,
                           queue_timeout_s=3600.0)


async def uncontended_case(n: int) -> float:
    ctl = AdmissionController(AdmissionSettings(limits=AdaptiveLimitSettings(initial_limit=64)))
    start = time.perf_counter()
    for i in range(n):
        lease = await ctl.admit(ticket(i))
        lease.release()
    return time.perf_counter() - start


async def contended_case(n: int, concurrency: int = 1000, slots: int = 8) -> float:
    limits = AdaptiveLimitSettings(initial_limit=slots, min_limit=slots, max_limit=slots)
    ctl = AdmissionController(AdmissionSettings(limits=limits))
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem, await ctl.admit(ticket(i)):
            await asyncio.sleep(0)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - start


async def main(n: int) -> None:
    rows = [
        ("FairQueue push + pop (3 bands, 50 tenants)", fair_queue_case(n)),
        ("admit + release, free capacity", await uncontended_case(n)),
        ("admit + release, 1000 waiters on 8 slots", await contended_case(n)),
    ]
    print("| case | requests | us per request | requests/s |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {n} | {seconds / n * 1e6:.1f} | {n / seconds:,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    run(main(args.requests))
