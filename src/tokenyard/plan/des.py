"""The discrete-event simulation of a fleet: N replicas of the simulator's scheduler in virtual time (pure, seeded).

Every replica is a ``tokenyard.sim.scheduler.Scheduler`` (the same continuous-batching timing model the simulator
serves with); this module only replaces the wall clock by an event queue, exactly as ``tokenyard.sim.engine``
drives it: a busy replica steps back to back (each step lasts ``StepResult.duration_s``, tokens are delivered at
its end), an idle one wakes when its next request has passed the front-end delay. A router in front sends each
arrival to the replica with the fewest requests in flight, rotating among ties, as the gateway's default
``least-load`` picker does. Arrivals are Poisson; the same seed gives the same arrivals for every fleet size
(common random numbers), so comparing N and N-1 replicas compares fleets, not luck.

Measured as users see it: TTFT = arrival -> end of the step that produced the first token; ITL = the gaps between
a request's consecutive tokens, pooled per class. Requests that arrive during the warm-up are not counted.
A request refused by a full queue (a 429) or with no first token by the end of the drain counts with a TTFT of
at least the time it waited, so an overloaded fleet fails its SLO instead of hiding it.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from tokenyard.bench.metrics import percentile
from tokenyard.plan.demand import ModelDemand
from tokenyard.plan.spec import ClassSLO
from tokenyard.sim.params import SimParams
from tokenyard.sim.scheduler import Scheduler, Sequence


@dataclass(frozen=True)
class Arrival:
    at: float
    klass: str
    prompt_tokens: int
    output_tokens: int


def poisson_arrivals(demand: ModelDemand, rate: float, duration_s: float, seed: int) -> list[Arrival]:
    """Poisson arrivals at ``rate`` req/s over ``[0, duration_s)``, each of a request kind drawn by its weight."""
    rng = random.Random(f"tokenyard-plan:{demand.model}:{seed}")
    kinds = demand.kinds
    if rate <= 0 or not kinds:
        return []
    cumulative = list(itertools.accumulate(k.weight for k in kinds))
    total = cumulative[-1]
    out: list[Arrival] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        kind = kinds[min(bisect.bisect_right(cumulative, rng.random() * total), len(kinds) - 1)]
        out.append(Arrival(t, kind.klass, kind.prompt_tokens.sample(rng), kind.output_tokens.sample(rng)))
        t += rng.expovariate(rate)
    return out


@dataclass(frozen=True)
class ClassOutcome:
    """One class's requests (after warm-up) and their latency percentiles in ms (None: no samples)."""

    requests: int
    completed: int
    rejected: int  # refused by a full waiting queue
    unfinished: int  # no first token by the end of the drain
    ttft_ms: Mapping[str, float | None]
    itl_ms: Mapping[str, float | None]

    def violations(self, slo: ClassSLO) -> list[str]:
        out = []
        ttft, itl = self.ttft_ms.get("p95"), self.itl_ms.get("p95")
        if slo.ttft_p95_ms is not None and ttft is not None and ttft > slo.ttft_p95_ms:
            out.append(f"{slo.name}: TTFT p95 {ttft:.0f} ms > {slo.ttft_p95_ms:.0f} ms")
        if slo.itl_p95_ms is not None and itl is not None and itl > slo.itl_p95_ms:
            out.append(f"{slo.name}: ITL p95 {itl:.1f} ms > {slo.itl_p95_ms:.1f} ms")
        return out


@dataclass(frozen=True)
class DesResult:
    replicas: int
    rate: float
    duration_s: float
    classes: Mapping[str, ClassOutcome]
    mean_batch: float  # mean sequences per step over all replicas

    def violations(self, slos: Mapping[str, ClassSLO]) -> list[str]:
        """Human-readable SLO misses (empty: every class with a promise kept it)."""
        out = []
        for name, outcome in sorted(self.classes.items()):
            slo = slos.get(name)
            if slo is not None:
                out.extend(outcome.violations(slo))
        return out

    def meets(self, slos: Mapping[str, ClassSLO]) -> bool:
        return not self.violations(slos)

    def as_dict(self) -> dict[str, object]:
        return {"replicas": self.replicas, "rate_rps": round(self.rate, 4), "duration_s": round(self.duration_s, 3),
                "mean_batch": round(self.mean_batch, 2),
                "classes": {name: {"requests": c.requests, "completed": c.completed, "rejected": c.rejected,
                                   "unfinished": c.unfinished, "ttft_ms": dict(c.ttft_ms), "itl_ms": dict(c.itl_ms)}
                            for name, c in sorted(self.classes.items())}}


class _Replica:
    __slots__ = ("busy", "outstanding", "sched", "token")

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.outstanding = 0
        self.busy = False
        self.token = 0  # only the newest scheduled step event of a replica is live


def simulate_fleet(params: SimParams, replicas: int, arrivals: list[Arrival], *, warmup_s: float = 0.0,
                   drain_s: float | None = None) -> DesResult:
    """Run ``arrivals`` through ``replicas`` schedulers; ValueError if a request can never fit the model."""
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    fleet = [_Replica(Scheduler(params, random.Random(params.seed * 1_000_003 + i))) for i in range(replicas)]
    frontend_s = params.frontend_ms / 1000.0
    end_of_arrivals = arrivals[-1].at if arrivals else 0.0
    stop_at = end_of_arrivals + (drain_s if drain_s is not None else max(30.0, end_of_arrivals))
    n = len(arrivals)
    ttft: list[float | None] = [None] * n
    done = [False] * n
    rejected = [False] * n
    gaps: dict[str, list[float]] = {}
    events: list[tuple[float, int, int, int]] = []  # (time, order, replica, token)
    order = itertools.count()
    turn = 0
    next_arrival = 0
    now = 0.0
    steps = batch_sum = 0

    def wake(rep_index: int, at: float) -> None:
        rep = fleet[rep_index]
        rep.token += 1
        heapq.heappush(events, (at, next(order), rep_index, rep.token))

    while True:
        arrival_at = arrivals[next_arrival].at if next_arrival < n else math.inf
        event_at = events[0][0] if events else math.inf
        now = min(arrival_at, event_at)
        if now == math.inf or now > stop_at:
            break
        if arrival_at <= event_at:  # an arrival: route it (least in flight, rotating among ties)
            a = arrivals[next_arrival]
            i = next_arrival
            next_arrival += 1
            turn = (turn + 1) % replicas
            best = min(range(replicas), key=lambda k: (fleet[(turn + k) % replicas].outstanding, k))
            r = (turn + best) % replicas
            rep = fleet[r]
            problem = rep.sched.check(a.prompt_tokens, a.output_tokens)
            if problem is not None:
                raise ValueError(problem)
            seq = Sequence(i, a.prompt_tokens, a.output_tokens, None, arrival=a.at, frontend_s=frontend_s)
            if not rep.sched.add(seq):
                rejected[i] = True
                continue
            rep.outstanding += 1
            if not rep.busy:  # idle: wake when the earliest queued request is ready (this one at the latest)
                ready = rep.sched.next_ready_at()
                wake(r, seq.ready_at if ready is None else ready)
            continue
        at, _o, r, token = heapq.heappop(events)
        rep = fleet[r]
        if token != rep.token:
            continue  # superseded by an earlier wake-up
        result = rep.sched.step(at)
        if result.batch == 0:
            rep.busy = False
            ready = rep.sched.next_ready_at()
            if ready is not None:
                wake(r, max(ready, at))
            continue
        steps += 1
        batch_sum += result.batch
        end = at + result.duration_s
        for seq in result.emitted:
            last = seq.last_token_at
            if last is None:
                ttft[seq.seq_id] = end - seq.arrival
            elif seq.arrival >= warmup_s:
                gaps.setdefault(arrivals[seq.seq_id].klass, []).append(end - last)
            seq.last_token_at = end
        for seq in result.finished:
            done[seq.seq_id] = True
            rep.outstanding -= 1
        for seq in result.preempted:
            if seq.num_output == 0:
                seq.last_token_at = None
        rep.busy = True
        wake(r, end)

    return DesResult(replicas=replicas, rate=n / end_of_arrivals if end_of_arrivals else 0.0,
                     duration_s=end_of_arrivals,
                     classes=_outcomes(arrivals, ttft, done, rejected, gaps, warmup_s, min(now, stop_at)),
                     mean_batch=batch_sum / steps if steps else 0.0)


def _outcomes(arrivals: list[Arrival], ttft: list[float | None], done: list[bool], rejected: list[bool],
              gaps: dict[str, list[float]], warmup_s: float, ended_at: float) -> dict[str, ClassOutcome]:
    tt: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}  # requests, completed, rejected, unfinished
    for i, a in enumerate(arrivals):
        if a.at < warmup_s:
            continue
        c = counts.setdefault(a.klass, [0, 0, 0, 0])
        c[0] += 1
        values = tt.setdefault(a.klass, [])
        first = ttft[i]
        if rejected[i]:
            c[2] += 1
            values.append(max(0.0, ended_at - a.at))  # never served: at least this long
        elif first is None:
            c[3] += 1
            values.append(max(0.0, ended_at - a.at))
        else:
            values.append(first)
            c[1] += done[i]
    return {k: ClassOutcome(requests=c[0], completed=c[1], rejected=c[2], unfinished=c[3],
                            ttft_ms=_pcts(tt.get(k, [])), itl_ms=_pcts(gaps.get(k, [])))
            for k, c in counts.items()}


def _pcts(values_s: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in (50, 95, 99):
        v = percentile(values_s, q)
        out[f"p{q}"] = None if v is None else round(v * 1000.0, 3)
    return out
