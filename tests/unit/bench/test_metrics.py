"""Percentile, ITL, goodput and outcome maths against hand-computed data."""

from __future__ import annotations

import pytest

from tokenyard.bench.metrics import (
    distribution_ms,
    meets_slo,
    percentile,
    retrieval_summary,
    summarize_requests,
    summarize_workflows,
)
from tokenyard.bench.records import RequestRecord, WorkflowRecord
from tokenyard.bench.workload import ClassSpec


def rec(outcome: str = "completed", ttft: float | None = 0.1, itls: tuple[float, ...] = (0.01, 0.01),
        e2e: float | None = None, cls: str = "a", tokens: int | None = None) -> RequestRecord:
    if e2e is None and ttft is not None:
        e2e = ttft + sum(itls)
    return RequestRecord(action=0, hop=0, workflow="chat", cls=cls, tenant="t", intended_s=0.0, outcome=outcome,
                         ttft_s=ttft, itls_s=list(itls), e2e_s=e2e,
                         completion_tokens=len(itls) + 1 if tokens is None else tokens)


def test_percentile_linear_interpolation_matches_numpy_default() -> None:
    # numpy.percentile([1, 2, 3, 4], q) == 2.5, 3.85, 3.97 (method="linear"), computed by hand:
    # rank = (n - 1) * q / 100; value = v[floor] + (v[ceil] - v[floor]) * frac.
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([1, 2, 3, 4], 99) == pytest.approx(3.97)
    assert percentile([15, 20, 35, 40, 50], 50) == 35
    assert percentile([15, 20, 35, 40, 50], 95) == pytest.approx(48.0)
    assert percentile([15, 20, 35, 40, 50], 99) == pytest.approx(49.6)
    assert percentile([7.0], 99) == 7.0
    assert percentile([1, 2], 0) == 1 and percentile([1, 2], 100) == 2
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_distribution_is_in_milliseconds() -> None:
    d = distribution_ms([0.001, 0.002, 0.003, 0.004])
    assert d == {"p50": 2.5, "p95": 3.85, "p99": 3.97, "mean": 2.5, "max": 4.0}
    assert distribution_ms([]) == {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}


def test_itl_gaps_are_pooled_across_requests_like_vllm() -> None:
    # One request with gaps 10, 10 ms and one with 40 ms: pooled median is 10 ms, not the mean of means (25).
    block = summarize_requests([rec(itls=(0.01, 0.01)), rec(itls=(0.04,))], ClassSpec(name="a"), 1.0)
    assert block["itl_ms"]["p50"] == pytest.approx(10.0)
    assert block["itl_ms"]["max"] == pytest.approx(40.0)
    # TPOT is per request: (e2e - ttft) / (tokens - 1) = 10 ms and 40 ms.
    assert block["tpot_ms"]["p50"] == pytest.approx(25.0)


def test_goodput_counts_completed_requests_meeting_every_set_slo() -> None:
    spec = ClassSpec(name="a", ttft_ms=200, itl_ms=20, e2e_ms=None)
    records = [
        rec(ttft=0.1, itls=(0.01, 0.01)),            # good
        rec(ttft=0.15, itls=(0.015,) * 5),           # good
        rec(ttft=0.3, itls=(0.01,)),                 # TTFT too slow
        rec(ttft=0.1, itls=(0.05, 0.05)),            # TPOT 50 ms > 20
        rec(ttft=0.1, itls=(), tokens=1),            # one token: no TPOT, TTFT ok -> good
        rec(outcome="client_aborted", ttft=0.05),    # not completed
        rec(outcome="shed", ttft=None, itls=()),
    ]
    block = summarize_requests(records, spec, duration_s=2.0)
    assert block["goodput_rps"] == pytest.approx(1.5)  # 3 good / 2 s
    assert block["throughput_rps"] == pytest.approx(2.5)  # 5 completed / 2 s
    assert block["slo_attainment"] == pytest.approx(0.6)
    assert (block["requests"], block["completed"], block["client_aborted"], block["shed"]) == (7, 5, 1, 1)
    assert block["shed_rate"] == pytest.approx(1 / 7, abs=1e-4)


def test_e2e_slo_and_unset_slos() -> None:
    assert not meets_slo(rec(ttft=0.1, e2e=2.0), ClassSpec(name="a", ttft_ms=None, itl_ms=None, e2e_ms=1000))
    assert meets_slo(rec(ttft=9.0, itls=(1.0,)), ClassSpec(name="a", ttft_ms=None, itl_ms=None, e2e_ms=None))
    assert not meets_slo(rec(ttft=None), ClassSpec(name="a", ttft_ms=100))
    assert not meets_slo(rec(outcome="error"), ClassSpec(name="a", ttft_ms=None, itl_ms=None))


def test_totals_judge_each_request_by_its_own_class() -> None:
    specs = {"fast": ClassSpec(name="fast", ttft_ms=100, itl_ms=None), "slow": ClassSpec(name="slow", ttft_ms=1000)}
    records = [rec(cls="fast", ttft=0.5), rec(cls="slow", ttft=0.5)]
    totals = summarize_requests(records, None, 1.0, specs)
    assert totals["goodput_rps"] == 1.0
    assert "slo" not in totals


def test_latency_percentiles_use_completed_requests_only() -> None:
    block = summarize_requests([rec(ttft=0.1), rec(outcome="upstream_interrupted", ttft=5.0)],
                               ClassSpec(name="a"), 1.0)
    assert block["ttft_ms"]["max"] == pytest.approx(100.0)
    assert block["interruption_rate"] == 0.5


def test_workflow_latency_and_retrieval_fallback_ratio() -> None:
    flows = [
        WorkflowRecord(action=0, workflow="rag", kind="rag", cls="a", intended_s=1.0, end_s=1.5, completed=True,
                       retrieval="hit"),
        WorkflowRecord(action=1, workflow="rag", kind="rag", cls="a", intended_s=2.0, end_s=3.0, completed=True,
                       retrieval="fallback"),
        WorkflowRecord(action=2, workflow="rag", kind="rag", cls="a", intended_s=2.0, end_s=9.0, completed=False,
                       retrieval="fallback"),
        WorkflowRecord(action=3, workflow="chat", kind="chat", cls="a", intended_s=0.0, end_s=0.2, completed=True),
    ]
    summary = summarize_workflows(flows)
    assert summary["rag"]["actions"] == 3 and summary["rag"]["completed"] == 2
    assert summary["rag"]["latency_ms"]["p50"] == pytest.approx(750.0)
    assert summary["chat"]["latency_ms"]["p99"] == pytest.approx(200.0)
    assert retrieval_summary(flows) == {"calls": 3, "fallbacks": 2, "fallback_ratio": pytest.approx(0.6667)}
    assert retrieval_summary(flows[3:])["fallback_ratio"] is None
