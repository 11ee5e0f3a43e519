"""The admission engine in front of a real simulator over loopback HTTP: expired requests never reach it,
shed requests never reach it, premium is served before batch."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp

from tokenyard.policy.adaptive_limit import AdaptiveLimitSettings
from tokenyard.policy.shedding import ShedTier
from tokenyard.sim.testing import RunningSim, running_sim
from tokenyard.traffic.admission import AdmissionController, AdmissionSettings
from tokenyard.traffic.admission_types import DISPATCHED, EXPIRED, AdmissionEvent, AdmissionTicket, Rejected

_ids = itertools.count()
BANDS = {"premium": (0, ShedTier.CRITICAL), "batch": (2, ShedTier.SHEDDABLE)}


async def call(ctl: AdmissionController, sim: RunningSim, session: aiohttp.ClientSession, klass: str,
               timeout_s: float, served: list[str]) -> str:
    band, tier = BANDS[klass]
    ticket = AdmissionTicket(request_id=f"{klass}-{next(_ids)}", tenant="t", klass=klass, priority=band,
                             pool="sim", prompt_tokens=10, max_tokens=8, queue_timeout_s=timeout_s, tier=tier)
    try:
        async with await ctl.admit(ticket) as lease:
            served.append(klass)
            body = {"model": sim.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
                    "stream": True}
            async with session.post(sim.base_url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                await resp.read()
            lease.record_ttft(0.05)
            return "ok"
    except Rejected as refused:
        return refused.reason


async def test_expired_requests_never_reach_the_simulator() -> None:
    events: list[AdmissionEvent] = []
    limits = AdaptiveLimitSettings(initial_limit=2, min_limit=2, max_limit=2)
    ctl = AdmissionController(AdmissionSettings(limits=limits), on_event=events.append)
    async with running_sim(profile="fast", ttft_ms=40, itl_ms=10) as sim, aiohttp.ClientSession() as session:
        served: list[str] = []
        # Two batch requests hold the slots; premium queued behind them is served next; the remaining batch
        # requests have a 0.1 s queue TTL, far less than the premium work ahead of them.
        first = [asyncio.create_task(call(ctl, sim, session, "batch", 30, served)) for _ in range(2)]
        await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(call(ctl, sim, session, "batch", 0.1, served)) for _ in range(4)]
        tasks += [asyncio.create_task(call(ctl, sim, session, "premium", 30, served)) for _ in range(6)]
        results = await asyncio.wait_for(asyncio.gather(*first, *tasks), 30)
        stats = await sim.stats()
    dispatched = sum(e.kind == DISPATCHED for e in events)
    expired = sum(e.kind == EXPIRED for e in events)
    assert results[:2] == ["ok", "ok"]
    assert results[2:6] == ["queue_timeout"] * 4
    assert results[6:] == ["ok"] * 6
    assert expired == 4 and dispatched == 8
    assert stats["completed_requests"] == dispatched  # the simulator saw exactly the dispatched requests
    assert served[:2] == ["batch", "batch"] and served[2:] == ["premium"] * 6
    assert ctl.snapshot()["pools"]["sim"]["inflight"] == 0
