"""The capacity plan: for every month of the forecast and every model, replicas for the monthly peak and for an
incident surge on top of it, tokens per month and cost per month (provisioned for the surge).

    plan = make_plan(load_plan("plan.yaml"))
    print(plan.to_json()["horizon"]["models"]["chat"]["replicas"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenyard.plan.backend import Backend, resolve_backend
from tokenyard.plan.demand import SECONDS_PER_MONTH, ModelDemand, TrafficPoint, forecast_series, model_demands
from tokenyard.plan.search import Sizing, size_fleet
from tokenyard.plan.spec import PlanSpec, Price

HOURS_PER_MONTH = SECONDS_PER_MONTH / 3600


@dataclass(frozen=True)
class ModelMonth:
    model: str
    peak: Sizing  # replicas to hold every SLO at the month's busiest hour
    surge: Sizing  # ... and during an incident surge at that peak: the count to provision
    tokens_per_month: float
    prompt_tokens_per_month: float
    output_tokens_per_month: float
    replica_cost: float
    token_cost: float

    @property
    def replicas(self) -> int:
        """What to provision: enough for the surge (never fewer than for the peak)."""
        return max(self.peak.replicas, self.surge.replicas)

    @property
    def cost(self) -> float:
        return self.replica_cost + self.token_cost


@dataclass(frozen=True)
class MonthPlan:
    traffic: TrafficPoint
    models: dict[str, ModelMonth]

    @property
    def cost(self) -> float:
        return sum(m.cost for m in self.models.values())


@dataclass(frozen=True)
class Plan:
    spec: PlanSpec
    backends: dict[str, Backend]
    demands: dict[str, ModelDemand]
    months: list[MonthPlan]

    @property
    def horizon(self) -> MonthPlan:
        return self.months[-1]

    def to_json(self) -> dict[str, Any]:
        return plan_json(self)


def make_plan(spec: PlanSpec, horizon_only: bool = False) -> Plan:
    """Size every model for every month 0..months_ahead (only the last one with ``horizon_only``)."""
    backends = {name: resolve_backend(b) for name, b in spec.backends.items()}
    demands = model_demands(spec)
    slos = {c.name: c for c in spec.classes}
    points = forecast_series(spec.forecast)
    if horizon_only:
        points = points[-1:]
    months: list[MonthPlan] = []
    for point in points:
        models = {}
        for name, demand in demands.items():
            backend = backends[name]
            # Last month's answers are good first guesses: they save simulations.
            before = months[-1].models[name] if months else None
            peak = size_fleet(backend, demand, demand.request_rate(point.peak_actions_per_s), slos, spec.simulation,
                              hint=before.peak.replicas if before else None)
            surge = peak if spec.forecast.surge_multiplier == 1.0 else size_fleet(
                backend, demand, demand.request_rate(point.surge_actions_per_s), slos, spec.simulation,
                hint=max(peak.replicas, before.surge.replicas if before else 0))
            models[name] = _model_month(name, demand, point, peak, surge, spec.prices.get(name, Price()))
        months.append(MonthPlan(point, models))
    return Plan(spec, backends, demands, months)


def _model_month(name: str, demand: ModelDemand, point: TrafficPoint, peak: Sizing, surge: Sizing,
                 price: Price) -> ModelMonth:
    actions = point.actions_per_month
    prompt = actions * demand.prompt_tokens_per_action
    output = actions * demand.output_tokens_per_action
    replicas = max(peak.replicas, surge.replicas)
    return ModelMonth(model=name, peak=peak, surge=surge, tokens_per_month=prompt + output,
                      prompt_tokens_per_month=prompt, output_tokens_per_month=output,
                      replica_cost=replicas * HOURS_PER_MONTH * price.replica_hour,
                      token_cost=(prompt + output) / 1e6 * price.per_million_tokens)


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (documented in docs/planning.md)."""
    months = [_month_json(m) for m in plan.months]
    return {
        "forecast": {"months_ahead": plan.spec.forecast.months_ahead,
                     "monthly_growth": plan.spec.forecast.monthly_growth,
                     "peak_to_mean": plan.spec.forecast.peak_to_mean,
                     "surge_multiplier": plan.spec.forecast.surge_multiplier},
        "slos": {c.name: {"share": c.share, "ttft_p95_ms": c.ttft_p95_ms, "itl_p95_ms": c.itl_p95_ms}
                 for c in plan.spec.classes},
        "models": {name: {"backend": plan.backends[name].source,
                          "params": plan.backends[name].params.as_dict(),
                          "requests_per_action": round(d.requests_per_action, 6),
                          "prompt_tokens_per_action": round(d.prompt_tokens_per_action, 3),
                          "output_tokens_per_action": round(d.output_tokens_per_action, 3),
                          "class_shares": {k: round(v, 6) for k, v in d.class_shares().items()}}
                   for name, d in plan.demands.items()},
        "months": months,
        "horizon": months[-1],
    }


def _month_json(month: MonthPlan) -> dict[str, Any]:
    t = month.traffic
    return {
        "month": t.month,
        "actions_per_month": round(t.actions_per_month, 1),
        "mean_actions_per_s": round(t.mean_actions_per_s, 6),
        "peak_actions_per_s": round(t.peak_actions_per_s, 6),
        "surge_actions_per_s": round(t.surge_actions_per_s, 6),
        "cost_per_month": round(month.cost, 2),
        "models": {name: {
            "replicas": m.replicas,
            "replicas_peak": m.peak.replicas,
            "replicas_surge": m.surge.replicas,
            "peak_rps": round(m.peak.rate, 6),
            "surge_rps": round(m.surge.rate, 6),
            "analytic_replicas_surge": m.surge.analytic_replicas,
            "capacity_rps_per_replica": round(m.surge.capacity_rps, 4),
            "tokens_per_month": round(m.tokens_per_month),
            "prompt_tokens_per_month": round(m.prompt_tokens_per_month),
            "output_tokens_per_month": round(m.output_tokens_per_month),
            "replica_cost_per_month": round(m.replica_cost, 2),
            "token_cost_per_month": round(m.token_cost, 2),
            "cost_per_month": round(m.cost, 2),
            "simulated": m.surge.at.as_dict() if m.surge.at is not None else None,
            "simulated_one_fewer": m.surge.below.as_dict() if m.surge.below is not None else None,
            "tried": {str(n): ok for n, ok in m.surge.tried.items()},
        } for name, m in month.models.items()},
    }
