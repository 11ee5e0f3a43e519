"""Scenario statistics and phase sequencing, with an in-memory workload and fault."""

from __future__ import annotations

import math

import pytest

from tokenyard.chaos.scenario import (
    Sample,
    build_report,
    percentile,
    phase_stats,
    run_scenario,
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 95) == 3.0
    assert math.isnan(percentile([], 50))


def test_phase_stats_count_failures_and_retries_and_use_successes_for_latency() -> None:
    samples = [Sample(0.010, True), Sample(0.020, True, attempts=3), Sample(5.0, False, attempts=3)]
    stats = phase_stats(samples)
    assert stats.requests == 3 and stats.ok == 2
    assert stats.success_rate == pytest.approx(2 / 3)
    assert stats.retries == 4
    assert stats.p50_ms == pytest.approx(15.0)
    assert stats.p99_ms <= 20.0


def test_report_deltas_are_against_before() -> None:
    report = build_report(
        "x",
        {
            "before": [Sample(0.010, True)] * 10,
            "during": [Sample(0.060, True)] * 9 + [Sample(1.0, False, attempts=3)],
            "after": [Sample(0.011, True)] * 10,
        },
    )
    assert report.deltas["during"].p50_ms == pytest.approx(50.0)
    assert report.deltas["during"].success_rate == pytest.approx(-0.1)
    assert report.deltas["during"].retries == 2
    assert report.deltas["after"].p50_ms == pytest.approx(1.0)
    assert set(report.to_dict()["phases"]) == {"before", "during", "after"}
    table = report.render()
    assert "during" in table and "Δduring" in table and "+50.0" in table


class RecordingFault:
    name = "recording"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def inject(self) -> None:
        self.log.append("inject")

    async def clear(self) -> None:
        self.log.append("clear")


async def test_run_scenario_injects_only_for_the_during_phase() -> None:
    log: list[str] = []

    async def workload() -> list[Sample]:
        faulty = log.count("inject") > log.count("clear")
        log.append("run-faulty" if faulty else "run")
        return [Sample(0.1 if faulty else 0.01, True)]

    report = await run_scenario(workload, RecordingFault(log))
    assert log == ["run", "inject", "run-faulty", "clear", "run"]
    assert report.deltas["during"].p50_ms == pytest.approx(90.0)


async def test_run_scenario_clears_the_fault_when_the_workload_fails() -> None:
    log: list[str] = []
    calls = 0

    async def workload() -> list[Sample]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("workload broke")
        return [Sample(0.01, True)]

    with pytest.raises(RuntimeError):
        await run_scenario(workload, RecordingFault(log))
    assert log == ["inject", "clear"]
