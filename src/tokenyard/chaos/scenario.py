"""Scenarios: run a workload before, during and after a fault, and report what the fault cost in SLO terms.

A workload is a plain ``async () -> Sequence[Sample]`` callable (the bench engine or a test loop), a fault is
anything with async ``inject()`` and ``clear()``. The statistics are pure functions of the samples.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec

PHASES = ("before", "during", "after")


class Sample(msgspec.Struct, frozen=True):
    """One request's outcome: end-to-end latency (including retries), success, and attempts made."""

    latency_s: float
    ok: bool
    attempts: int = 1


Workload = Callable[[], Awaitable[Sequence[Sample]]]


class Fault(Protocol):
    """Something a scenario switches on for the ``during`` phase and off afterwards."""

    name: str

    async def inject(self) -> None: ...

    async def clear(self) -> None: ...


class PhaseStats(msgspec.Struct, frozen=True):
    """SLO figures of one phase. Latency percentiles are over successful requests only (ms)."""

    requests: int
    ok: int
    success_rate: float
    retries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


class SloDelta(msgspec.Struct, frozen=True):
    """A phase minus the ``before`` baseline (positive latency = slower, negative success = worse)."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    success_rate: float
    retries: int


class ScenarioReport(msgspec.Struct, frozen=True):
    fault: str
    phases: dict[str, PhaseStats]
    deltas: dict[str, SloDelta]
    """``during`` and ``after``, each against ``before``."""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def render(self) -> str:
        """A small fixed-width table, one row per phase, then the deltas."""
        lines = [f"fault: {self.fault}", f"{'phase':<8}{'reqs':>6}{'ok%':>8}{'retries':>9}"
                 f"{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"]
        for name, st in self.phases.items():
            lines.append(f"{name:<8}{st.requests:>6}{st.success_rate * 100:>8.1f}{st.retries:>9}"
                         f"{st.p50_ms:>10.1f}{st.p95_ms:>10.1f}{st.p99_ms:>10.1f}")
        for name, d in self.deltas.items():
            lines.append(f"{'Δ' + name:<8}{'':>6}{d.success_rate * 100:>+8.1f}{d.retries:>+9}"
                         f"{d.p50_ms:>+10.1f}{d.p95_ms:>+10.1f}{d.p99_ms:>+10.1f}")
        return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def phase_stats(samples: Sequence[Sample]) -> PhaseStats:
    ok_latencies_ms = [s.latency_s * 1000 for s in samples if s.ok]
    requests = len(samples)
    return PhaseStats(
        requests=requests,
        ok=len(ok_latencies_ms),
        success_rate=len(ok_latencies_ms) / requests if requests else math.nan,
        retries=sum(max(0, s.attempts - 1) for s in samples),
        p50_ms=percentile(ok_latencies_ms, 50),
        p95_ms=percentile(ok_latencies_ms, 95),
        p99_ms=percentile(ok_latencies_ms, 99),
    )


def slo_delta(phase: PhaseStats, baseline: PhaseStats) -> SloDelta:
    return SloDelta(
        p50_ms=phase.p50_ms - baseline.p50_ms,
        p95_ms=phase.p95_ms - baseline.p95_ms,
        p99_ms=phase.p99_ms - baseline.p99_ms,
        success_rate=phase.success_rate - baseline.success_rate,
        retries=phase.retries - baseline.retries,
    )


def build_report(fault: str, samples: dict[str, Sequence[Sample]]) -> ScenarioReport:
    """The report for samples keyed by phase name (``before`` is the baseline)."""
    phases = {name: phase_stats(samples[name]) for name in PHASES if name in samples}
    baseline = phases["before"]
    deltas: dict[str, SloDelta] = {
        name: slo_delta(phases[name], baseline) for name in ("during", "after") if name in phases
    }
    return ScenarioReport(fault=fault, phases=phases, deltas=deltas)


async def run_scenario(workload: Workload, fault: Fault, *, settle_s: float = 0.0) -> ScenarioReport:
    """Run ``workload`` once per phase; the fault is on only during ``during`` (cleared even on error)."""
    samples: dict[str, Sequence[Sample]] = {"before": await workload()}
    await fault.inject()
    try:
        samples["during"] = await workload()
    finally:
        await fault.clear()
    if settle_s:
        await asyncio.sleep(settle_s)
    samples["after"] = await workload()
    return build_report(fault.name, samples)
