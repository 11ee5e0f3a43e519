"""Checking a plan on real servers: the bench workload that sends one model's planned traffic, and the verdict.

    workload = bench_workload(spec, "chat", rate=8.0, duration_s=12)
    report = await run_workload(gateway_url, workload)
    misses = slo_misses(report.summary, spec)        # [] when every class kept its p95 promise

The workload sends the model's request kinds at ``rate`` requests per second (Poisson) with each class's share
and its TTFT / ITL promises. Bench has one prompt-length and one output-length distribution per workload, so a
model with several request kinds gets, for each, a ``choices`` distribution of the kinds' mean lengths (drawn
independently); a model with one kind keeps its exact distributions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenyard.bench.arrivals import Arrivals
from tokenyard.bench.distributions import LengthDist
from tokenyard.bench.workload import ClassSpec, Workload
from tokenyard.plan.demand import ModelDemand, model_demands
from tokenyard.plan.spec import PlanSpec


def bench_workload(spec: PlanSpec, model: str, rate: float, duration_s: float, *, seed: int = 0,
                   model_name: str | None = None) -> Workload:
    """A bench ``Workload`` that replays ``model``'s planned request mix at ``rate`` req/s for ``duration_s``."""
    demand = model_demands(spec)[model]
    if not demand.kinds:
        raise ValueError(f"no workflow sends requests to {model!r}")
    shares = demand.class_shares()
    classes = tuple(ClassSpec(name=c.name, weight=shares[c.name], ttft_ms=c.ttft_p95_ms, itl_ms=c.itl_p95_ms)
                    for c in spec.classes if shares.get(c.name, 0) > 0)
    prompt, output = _lengths(demand)
    return Workload(name=f"plan-{model}", model=model_name, stream=True, seed=seed, duration_s=duration_s,
                    max_requests=max(1, int(rate * duration_s * 2) + 10),
                    arrival=Arrivals(kind="poisson", rate=rate), prompt_tokens=prompt, output_tokens=output,
                    classes=classes, request_timeout_s=max(60.0, duration_s * 2))


def slo_misses(summary: Mapping[str, Any], spec: PlanSpec) -> list[str]:
    """The classes of a bench report summary whose TTFT / ITL p95 broke the plan's promise, or that failed
    requests (shed, errors, interrupted, unfinished); empty when every promise was kept."""
    out: list[str] = []
    for slo in spec.classes:
        row = (summary.get("classes") or {}).get(slo.name)
        if row is None:
            continue
        ttft = (row.get("ttft_ms") or {}).get("p95")
        itl = (row.get("itl_ms") or {}).get("p95")
        if slo.ttft_p95_ms is not None and (ttft is None or ttft > slo.ttft_p95_ms):
            out.append(f"{slo.name}: TTFT p95 {ttft} ms > {slo.ttft_p95_ms:g} ms")
        if slo.itl_p95_ms is not None and itl is not None and itl > slo.itl_p95_ms:
            out.append(f"{slo.name}: ITL p95 {itl} ms > {slo.itl_p95_ms:g} ms")
        failed = sum(int(row.get(k) or 0) for k in ("shed", "errors", "upstream_interrupted", "unfinished"))
        if failed:
            out.append(f"{slo.name}: {failed} requests failed or never finished")
    return out


def _lengths(demand: ModelDemand) -> tuple[LengthDist, LengthDist]:
    kinds = demand.kinds
    if len({(k.prompt_tokens, k.output_tokens) for k in kinds}) == 1:
        return kinds[0].prompt_tokens, kinds[0].output_tokens
    weights = tuple(k.weight for k in kinds)

    def choices(values: list[float]) -> LengthDist:
        ints = tuple(max(1, round(v)) for v in values)
        return LengthDist(kind="choices", values=ints, weights=weights, lo=1, hi=max(ints))

    return (choices([k.prompt_tokens.expected for k in kinds]), choices([k.output_tokens.expected for k in kinds]))
