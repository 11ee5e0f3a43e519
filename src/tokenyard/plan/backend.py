"""What one replica can do: the simulator's timing model, from a profile or calibrated from a bench report.

Both sources end as a ``SimParams`` because the discrete-event simulation runs the simulator's own scheduler.
A bench report gives what users measured (TTFT and ITL p50, output tokens/s); it calibrates ``ttft_ms`` and
``itl_ms`` with a flat load curve (``load_factor`` 1: the measured ITL already includes that run's batching),
and its throughput per replica becomes the analytic capacity estimate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenyard.plan.errors import PlanError
from tokenyard.plan.spec import BackendSpec
from tokenyard.sim.params import BLOCK_SIZE, SimParams
from tokenyard.sim.params import profile as sim_profile
from tokenyard.sim.scheduler import step_time_ms


@dataclass(frozen=True)
class Backend:
    model: str
    params: SimParams
    source: str  # for the report: "profile large" or "bench report PATH"
    measured_rps_per_replica: float | None = None  # from a bench report (at that run's token shape)
    measured_output_tokens: float | None = None  # mean output tokens per request in that run


def resolve_backend(spec: BackendSpec) -> Backend:
    """The timing model of ``spec``; PlanError names the bad key."""
    where = f"models.{spec.model}"
    try:
        base = sim_profile(spec.profile)
    except ValueError as exc:
        raise PlanError(f"{where}.profile", str(exc)) from exc
    if spec.bench_report is None:
        params = _replace(base, dict(spec.overrides), f"{where}.overrides")
        return Backend(spec.model, params, f"profile {spec.profile}")
    summary = _read_report(spec.bench_report, f"{where}.bench_report")
    totals = summary.get("totals") or {}
    ttft = _p50(totals, "ttft_ms", f"{where}.bench_report")
    itl = _p50(totals, "itl_ms", f"{where}.bench_report")
    duration = float(summary.get("duration_s") or 0.0)
    completed = float(totals.get("completed") or 0.0)
    if duration <= 0 or completed <= 0:
        raise PlanError(f"{where}.bench_report", "the report has no completed requests to measure throughput")
    delivered = float((summary.get("tokens") or {}).get("completion_delivered") or 0.0)
    calibrated = {"ttft_ms": ttft, "itl_ms": itl, "load_factor": 1.0, "jitter": 0.0, **dict(spec.overrides)}
    params = _replace(base, calibrated, f"{where}.overrides")
    return Backend(spec.model, params, f"bench report {spec.bench_report}",
                   measured_rps_per_replica=completed / duration / spec.bench_replicas,
                   measured_output_tokens=delivered / completed if delivered else None)


def concurrent_sequences(params: SimParams, mean_prompt: float, mean_output: float) -> int:
    """How many sequences one replica runs at once when saturated: ``max_num_seqs`` or what the KV cache holds."""
    per_seq_blocks = max(1, math.ceil((mean_prompt + mean_output) / BLOCK_SIZE))
    return max(1, min(params.max_num_seqs, params.kv_blocks // per_seq_blocks))


def capacity_rps(backend: Backend, mean_prompt: float, mean_output: float) -> float:
    """Requests per second one saturated replica completes (the analytic model, see docs/planning.md).

    A full batch of B sequences advances one token each per step of ``step_time_ms(B)``; every request also
    costs its prefill once: B requests take ``mean_output * step(B) + B * mean_prompt * prefill_ms_per_token``.
    From a bench report: its measured requests/s per replica, scaled to this demand's output length.
    """
    if backend.measured_rps_per_replica is not None:
        scale = (backend.measured_output_tokens or mean_output) / max(mean_output, 1.0)
        return backend.measured_rps_per_replica * scale
    params = backend.params
    batch = concurrent_sequences(params, mean_prompt, mean_output)
    batch_ms = mean_output * step_time_ms(params, batch, 0) + batch * mean_prompt * params.prefill_ms_per_token
    return math.inf if batch_ms <= 0 else batch * 1000.0 / batch_ms


def unloaded_ttft_ms(params: SimParams, prompt_tokens: float) -> float:
    """TTFT of a lone request: the front-end delay plus one step with its whole prefill."""
    return params.frontend_ms + step_time_ms(params, 1, int(prompt_tokens))


def analytic_replicas(request_rate: float, capacity: float) -> int:
    """The utilisation bound: fewer replicas than ``rate / capacity`` cannot keep up at all (at least 1)."""
    if request_rate <= 0 or math.isinf(capacity):
        return 1
    return max(1, math.ceil(request_rate / capacity))


def _replace(base: SimParams, overrides: dict[str, Any], where: str) -> SimParams:
    try:
        return base.replace(**overrides)
    except (ValueError, TypeError) as exc:
        raise PlanError(where, str(exc)) from exc


def _read_report(path: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(where, f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise PlanError(where, f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PlanError(where, f"{path} is not a bench report")
    return data


def _p50(totals: dict[str, Any], key: str, where: str) -> float:
    value = (totals.get(key) or {}).get("p50")
    if not isinstance(value, int | float) or value <= 0:
        raise PlanError(where, f"the report has no totals.{key}.p50 (run bench with streaming)")
    return float(value)
