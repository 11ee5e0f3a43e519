"""Prometheus text exposition for the simulator: vLLM's metric names plus ``sim_*`` counters.

Hand-rendered (no prometheus_client registry) so each simulator in a fleet owns its numbers and nothing global
is built at import. Histogram buckets are vLLM's.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)


class Histogram:
    """Cumulative-on-render histogram; ``observe`` is a bisect and two adds (it runs per token)."""

    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str, labels: str) -> list[str]:
        lines = [f"# TYPE {name} histogram"]
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {running}')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum{{{labels}}} {self.sum}")
        lines.append(f"{name}_count{{{labels}}} {self.count}")
        return lines


class EngineHistograms:
    def __init__(self) -> None:
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)


def render(model: str, stats: dict[str, Any], hist: EngineHistograms) -> str:
    """The /metrics page from ``Engine.stats()`` and the engine's histograms."""
    labels = f'model_name="{model}"'
    lines: list[str] = []

    def metric(name: str, kind: str, value: float, extra: str = "") -> None:
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{{{labels}{extra}}} {value}")

    metric("vllm:num_requests_running", "gauge", stats["running"])
    metric("vllm:num_requests_waiting", "gauge", stats["scheduler_waiting"])
    metric("vllm:kv_cache_usage_perc", "gauge", stats["kv_cache_usage"])
    metric("vllm:prefix_cache_queries_total", "counter", stats["prefix_cache_queries"])
    metric("vllm:prefix_cache_hits_total", "counter", stats["prefix_cache_hits"])
    metric("vllm:generation_tokens_total", "counter", stats["generated_tokens"])
    metric("vllm:prompt_tokens_total", "counter", stats["prompt_tokens"])
    metric("vllm:num_preemptions_total", "counter", stats["preemptions"])
    lines.append("# TYPE vllm:request_success_total counter")
    for reason in ("stop", "length", "abort", "error", "repetition"):
        count = stats["finished_by_reason"].get(reason, 0)
        lines.append(f'vllm:request_success_total{{{labels},finished_reason="{reason}"}} {count}')
    lines += hist.ttft.render("vllm:time_to_first_token_seconds", labels)
    lines += hist.itl.render("vllm:inter_token_latency_seconds", labels)
    lines += hist.e2e.render("vllm:e2e_request_latency_seconds", labels)
    metric("sim_generated_tokens_total", "counter", stats["generated_tokens"])
    metric("sim_delivered_tokens_total", "counter", stats["delivered_tokens"])
    metric("sim_aborted_requests_total", "counter", stats["aborted_requests"])
    metric("sim_completed_requests_total", "counter", stats["completed_requests"])
    metric("sim_rejected_requests_total", "counter", stats["rejected_requests"])
    metric("sim_injected_faults_total", "counter", stats["injected_faults"])
    metric("sim_zombie_requests", "gauge", stats["zombies"])
    metric("sim_step_lag_seconds_max", "gauge", stats["step_lag_ms_max"] / 1000.0)
    return "\n".join(lines) + "\n"
