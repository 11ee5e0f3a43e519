"""The planner against the discrete-event simulation: the answer passes, one fewer fails, more load never needs
fewer replicas; plus the DES's own sanity (a lone request sees the unloaded timing model) and the cost maths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tokenyard.plan.backend import Backend, capacity_rps, resolve_backend, unloaded_ttft_ms
from tokenyard.plan.demand import model_demands
from tokenyard.plan.des import Arrival, poisson_arrivals, simulate_fleet
from tokenyard.plan.errors import PlanError
from tokenyard.plan.planner import HOURS_PER_MONTH, make_plan
from tokenyard.plan.search import size_fleet, window_s
from tokenyard.plan.spec import BackendSpec, SimulationSettings, parse_plan

SMALL = {"max_num_seqs": 4, "ttft_ms": 60.0, "itl_ms": 20.0, "jitter": 0.0}
SETTINGS = SimulationSettings(duration_s=40.0, min_requests=300, max_duration_s=120.0, warmup_s=2.0, seed=1)


def plan_data(rate: float, **forecast: Any) -> dict[str, Any]:
    return {
        "classes": {"premium": {"share": 1, "ttft_p95_ms": 400, "itl_p95_ms": 60},
                    "standard": {"share": 3, "ttft_p95_ms": 1500, "itl_p95_ms": 100}},
        "workflows": {"chat": {"hops": [{"model": "m", "prompt_tokens": 64, "output_tokens": 16}]}},
        "forecast": {"peak_actions_per_s": rate, **forecast},
        "models": {"m": {"profile": "large", "overrides": SMALL}},
        "prices": {"m": {"replica_hour": 2.0, "per_million_tokens": 0.5}},
        "simulation": {"duration_s": 40, "min_requests": 300, "max_duration_s": 120, "warmup_s": 2, "seed": 1},
    }


def sized(rate: float) -> tuple[Any, ...]:
    spec = parse_plan(plan_data(rate))
    backend = resolve_backend(spec.backends["m"])
    demand = model_demands(spec)["m"]
    slos = {c.name: c for c in spec.classes}
    return size_fleet(backend, demand, rate, slos, SETTINGS), backend, demand, slos


def test_recommended_count_meets_the_slo_and_one_fewer_does_not() -> None:
    sizing, backend, demand, slos = sized(14.0)
    assert sizing.replicas >= 2
    assert sizing.at is not None and sizing.below is not None
    assert sizing.at.meets(slos), sizing.at.violations(slos)
    assert not sizing.below.meets(slos)
    # Re-run the DES independently at n and n-1 on the same arrivals.
    arrivals = poisson_arrivals(demand, 14.0, window_s(14.0, SETTINGS), SETTINGS.seed)
    assert simulate_fleet(backend.params, sizing.replicas, arrivals, warmup_s=2.0).meets(slos)
    assert not simulate_fleet(backend.params, sizing.replicas - 1, arrivals, warmup_s=2.0).meets(slos)
    # Never below the utilisation bound by more than the finite window can hide.
    assert sizing.replicas >= sizing.analytic_replicas - 1


def test_more_load_never_needs_fewer_replicas() -> None:
    counts = [sized(rate)[0].replicas for rate in (2.0, 6.0, 12.0, 20.0, 30.0)]
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]


def test_des_lone_request_matches_the_unloaded_timing_model() -> None:
    backend = resolve_backend(BackendSpec(model="m", overrides=SMALL))
    result = simulate_fleet(backend.params, 1, [Arrival(0.0, "x", 64, 5)])
    outcome = result.classes["x"]
    assert outcome.completed == 1
    assert outcome.ttft_ms["p50"] == pytest.approx(unloaded_ttft_ms(backend.params, 64))
    assert outcome.itl_ms["p50"] == pytest.approx(SMALL["itl_ms"])  # batch of one: itl_ms per token


def test_des_is_deterministic_and_overload_shows_up() -> None:
    _sizing, backend, demand, _slos = sized(14.0)
    arrivals = poisson_arrivals(demand, 14.0, 30.0, seed=3)
    assert arrivals == poisson_arrivals(demand, 14.0, 30.0, seed=3)
    a = simulate_fleet(backend.params, 1, arrivals)
    assert a == simulate_fleet(backend.params, 1, arrivals)
    # One replica at ~2x its capacity: the queue grows, TTFT p95 is many seconds.
    ttft = a.classes["standard"].ttft_ms["p95"]
    assert ttft is not None and ttft > 5000


def test_unreachable_slo_is_an_error() -> None:
    data = plan_data(1.0)
    data["classes"]["premium"]["ttft_p95_ms"] = 30  # an idle replica needs ~63 ms
    spec = parse_plan(data)
    with pytest.raises(PlanError) as info:
        make_plan(spec)
    assert info.value.key == "classes.premium.ttft_p95_ms"


def test_plan_costs_and_tokens() -> None:
    plan = make_plan(parse_plan(plan_data(4.0, peak_to_mean=2, monthly_growth=0.5, months_ahead=1,
                                          surge_multiplier=2)))
    assert [m.traffic.month for m in plan.months] == [0, 1]
    for month in plan.months:
        m = month.models["m"]
        assert m.replicas == max(m.peak.replicas, m.surge.replicas) >= 1
        assert m.surge.replicas >= m.peak.replicas
        tokens = month.traffic.actions_per_month * (64 + 16)
        assert m.tokens_per_month == pytest.approx(tokens)
        assert m.cost == pytest.approx(m.replicas * HOURS_PER_MONTH * 2.0 + tokens / 1e6 * 0.5)
    assert plan.months[1].models["m"].replicas >= plan.months[0].models["m"].replicas
    data = plan.to_json()
    json.dumps(data)  # JSON-ready
    assert data["horizon"]["models"]["m"]["replicas"] == plan.horizon.models["m"].replicas


def test_backend_calibrated_from_a_bench_report(tmp_path: Path) -> None:
    report = {"duration_s": 10.0, "totals": {"completed": 40, "ttft_ms": {"p50": 150.0}, "itl_ms": {"p50": 15.0}},
              "tokens": {"completion_delivered": 40 * 100}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    backend = resolve_backend(BackendSpec(model="m", bench_report=str(path), bench_replicas=2,
                                          overrides={"max_num_seqs": 16}))
    assert backend.params.ttft_ms == 150.0 and backend.params.itl_ms == 15.0 and backend.params.load_factor == 1.0
    assert backend.measured_rps_per_replica == pytest.approx(2.0)
    assert capacity_rps(backend, 50, 200) == pytest.approx(1.0)  # twice the output length: half the requests
    path.write_text(json.dumps({"duration_s": 1, "totals": {"completed": 1, "ttft_ms": {}}}))
    with pytest.raises(PlanError, match=r"ttft_ms\.p50"):
        resolve_backend(BackendSpec(model="m", bench_report=str(path)))


def test_profile_capacity_formula() -> None:
    backend = Backend("m", resolve_backend(BackendSpec(model="m", overrides=SMALL)).params, "test")
    # batch 4: step 20 * (1 + 1 * 3/3) = 40 ms; 16 tokens -> 640 ms + 4 * 64 * 0.04 ms prefill
    assert capacity_rps(backend, 64, 16) == pytest.approx(4 * 1000 / (640 + 4 * 64 * 0.04))
