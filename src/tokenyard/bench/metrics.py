"""Report maths, pure: percentiles, per-class latency summaries, goodput against SLOs, rates.

Definitions follow vLLM's ``bench serve`` (and AIPerf, which agrees on these):
- TTFT: time to the first chunk with non-empty content (empty first chunks, such as the role chunk, are ignored).
- ITL: the gaps between consecutive content chunks, pooled over all requests before taking percentiles.
- TPOT: per request, (e2e - TTFT) / (output tokens - 1).
- e2e: from the (intended) send to the last byte.
- Percentiles: linear interpolation between closest ranks, numpy's default (``method="linear"``).
- Goodput (DistServe): completed requests per second that met every SLO set for their class: TTFT <= ttft_ms,
  TPOT <= itl_ms (the per-request inter-token figure, as vLLM's ``--goodput tpot:``), e2e <= e2e_ms.
Latency percentiles are over completed requests only, as vLLM counts only successful requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from tokenyard.bench.records import RequestRecord, WorkflowRecord
from tokenyard.bench.workload import ClassSpec

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation (numpy's default); None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def distribution_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 plus mean and max, in milliseconds (None for no values)."""
    out: dict[str, float | None] = {}
    for q in PERCENTILES:
        value = percentile(values_s, q)
        out[f"p{q}"] = None if value is None else round(value * 1000, 3)
    out["mean"] = round(sum(values_s) / len(values_s) * 1000, 3) if values_s else None
    out["max"] = round(max(values_s) * 1000, 3) if values_s else None
    return out


def meets_slo(record: RequestRecord, spec: ClassSpec) -> bool:
    """True when a completed request met every SLO its class sets (an unset SLO always holds)."""
    if record.outcome != "completed":
        return False
    if spec.ttft_ms is not None and (record.ttft_s is None or record.ttft_s * 1000 > spec.ttft_ms):
        return False
    # A request with a single token has no TPOT, so it cannot miss the inter-token SLO.
    if spec.itl_ms is not None and record.tpot_s is not None and record.tpot_s * 1000 > spec.itl_ms:
        return False
    return not (spec.e2e_ms is not None and (record.e2e_s is None or record.e2e_s * 1000 > spec.e2e_ms))


def summarize_requests(records: Sequence[RequestRecord], spec: ClassSpec | None, duration_s: float,
                       specs: dict[str, ClassSpec] | None = None) -> dict[str, Any]:
    """The CONTRACTS per-class block (plus extras) for ``records``.

    ``spec`` gives the SLOs of a single class; for totals pass ``spec=None`` and ``specs`` (each request judged
    against its own class).
    """
    counts = {outcome: 0 for outcome in ("completed", "client_aborted", "shed", "rate_limited", "error",
                                           "upstream_interrupted", "unfinished")}
    for rec in records:
        counts[rec.outcome] = counts.get(rec.outcome, 0) + 1
    done = [r for r in records if r.outcome == "completed"]
    ttft = [r.ttft_s for r in done if r.ttft_s is not None]
    e2e = [r.e2e_s for r in done if r.e2e_s is not None]
    itl = [gap for r in done for gap in r.itls_s]
    tpot = [t for t in (r.tpot_s for r in done) if t is not None]
    good = sum(1 for r in done if meets_slo(r, spec if spec is not None else _spec_for(r, specs or {})))
    n = len(records)
    rate = (lambda count: round(count / duration_s, 4)) if duration_s > 0 else (lambda count: 0.0)
    block: dict[str, Any] = {
        "requests": n,
        "completed": counts["completed"],
        "client_aborted": counts["client_aborted"],
        "shed": counts["shed"],
        "rate_limited": counts["rate_limited"],
        "errors": counts["error"],
        "upstream_interrupted": counts["upstream_interrupted"],
        "unfinished": counts["unfinished"],
        "ttft_ms": distribution_ms(ttft),
        "itl_ms": distribution_ms(itl),
        "tpot_ms": distribution_ms(tpot),
        "e2e_ms": distribution_ms(e2e),
        "goodput_rps": rate(good),
        "throughput_rps": rate(counts["completed"]),
        "slo_attainment": round(good / len(done), 4) if done else None,
        "shed_rate": round(counts["shed"] / n, 4) if n else 0.0,
        "interruption_rate": round(counts["upstream_interrupted"] / n, 4) if n else 0.0,
        "output_tokens_per_s": rate(sum(r.completion_tokens for r in records)),
        "degraded": sum(1 for r in records if r.degraded),
    }
    if spec is not None:
        block["slo"] = {"ttft_ms": spec.ttft_ms, "itl_ms": spec.itl_ms, "e2e_ms": spec.e2e_ms}
    return block


def summarize_workflows(records: Iterable[WorkflowRecord]) -> dict[str, Any]:
    """Per workflow name: actions, completed, completion latency percentiles, tool errors."""
    groups: dict[str, list[WorkflowRecord]] = {}
    for rec in records:
        groups.setdefault(rec.workflow, []).append(rec)
    out: dict[str, Any] = {}
    for name, recs in sorted(groups.items()):
        latencies = [lat for lat in (r.latency_s for r in recs) if lat is not None]
        out[name] = {
            "kind": recs[0].kind,
            "actions": len(recs),
            "completed": len(latencies),
            "latency_ms": distribution_ms(latencies),
            "tool_errors": sum(r.tool_errors for r in recs),
        }
    return out


def retrieval_summary(records: Iterable[WorkflowRecord]) -> dict[str, Any]:
    calls = [r.retrieval for r in records if r.retrieval is not None]
    fallbacks = sum(1 for c in calls if c == "fallback")
    return {"calls": len(calls), "fallbacks": fallbacks,
            "fallback_ratio": round(fallbacks / len(calls), 4) if calls else None}


def _spec_for(record: RequestRecord, specs: dict[str, ClassSpec]) -> ClassSpec:
    return specs.get(record.cls) or ClassSpec(name=record.cls)
