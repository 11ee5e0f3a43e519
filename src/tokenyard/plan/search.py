"""Fleet sizing: the smallest replica count whose simulated TTFT/ITL p95 meet every class's SLO at a given load.

The analytic utilisation bound (``backend.analytic_replicas``: request rate / one replica's saturated capacity)
is where the search starts, because fewer replicas than that cannot keep up (a caller's higher hint, such as last
month's answer, starts it there instead). The discrete-event simulation then decides: from the start, step down
while one replica fewer still passes, or else up (doubling the step) until a count passes and bisect back between
the last failure and the first pass. The answer ``n`` passes and ``n - 1`` fails on the same arrivals; every count
tried is kept in ``Sizing.tried``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tokenyard.plan.backend import Backend, analytic_replicas, capacity_rps, unloaded_ttft_ms
from tokenyard.plan.demand import ModelDemand
from tokenyard.plan.des import Arrival, DesResult, poisson_arrivals, simulate_fleet
from tokenyard.plan.errors import PlanError
from tokenyard.plan.spec import ClassSLO, SimulationSettings


@dataclass(frozen=True)
class Sizing:
    """The answer for one model at one load: ``replicas`` (0 when the model gets no traffic)."""

    model: str
    rate: float  # requests per second
    replicas: int
    analytic_replicas: int
    capacity_rps: float  # one replica, saturated (analytic)
    at: DesResult | None  # the simulation at ``replicas``
    below: DesResult | None  # ... and at ``replicas - 1`` (None when replicas <= 1)
    tried: Mapping[int, bool] = field(default_factory=dict)  # replica count -> met the SLOs


def window_s(rate: float, settings: SimulationSettings) -> float:
    """The simulated arrival window: ``duration_s``, stretched to hold ``min_requests``, capped."""
    wanted = settings.min_requests / rate if rate > 0 else 0.0
    return min(settings.max_duration_s, max(settings.duration_s, wanted))


def check_reachable(backend: Backend, demand: ModelDemand, slos: Mapping[str, ClassSLO]) -> None:
    """PlanError when no fleet size can meet a promise: even a lone request on an idle replica misses it."""
    params = backend.params
    for kind in demand.kinds:
        slo = slos.get(kind.klass)
        if slo is None:
            continue
        alone = unloaded_ttft_ms(params, kind.prompt_tokens.expected)
        if slo.ttft_p95_ms is not None and alone > slo.ttft_p95_ms:
            raise PlanError(f"classes.{slo.name}.ttft_p95_ms",
                            f"{slo.ttft_p95_ms:g} ms cannot be met on {demand.model}: an idle replica takes "
                            f"{alone:.0f} ms for a {kind.prompt_tokens.expected:.0f}-token prompt of {kind.workflow}")
        if slo.itl_p95_ms is not None and params.itl_ms > slo.itl_p95_ms:
            raise PlanError(f"classes.{slo.name}.itl_p95_ms",
                            f"{slo.itl_p95_ms:g} ms cannot be met on {demand.model}: one token takes "
                            f"{params.itl_ms:g} ms even with nothing else running")


def size_fleet(backend: Backend, demand: ModelDemand, rate: float, slos: Mapping[str, ClassSLO],
               settings: SimulationSettings, hint: int | None = None) -> Sizing:
    """The smallest fleet for ``rate`` requests/s of ``demand`` on ``backend`` (see the module docstring).

    ``hint``: a likely answer (e.g. last month's count); the search starts there instead of at the analytic bound
    when it is higher, which saves simulations when latency, not throughput, decides. Either way the answer passes
    and one fewer fails on the same arrivals.
    """
    capacity = capacity_rps(backend, demand.mean_prompt_tokens, demand.mean_output_tokens)
    lower = analytic_replicas(rate, capacity)
    if rate <= 0 or not demand.kinds:
        return Sizing(demand.model, 0.0, 0, 0, capacity, None, None)
    check_reachable(backend, demand, slos)
    arrivals = poisson_arrivals(demand, rate, window_s(rate, settings), settings.seed)
    results: dict[int, DesResult] = {}

    def run(n: int) -> DesResult:
        found = results.get(n)
        if found is None:
            found = results[n] = _simulate(backend, n, arrivals, settings)
        return found

    def passes(n: int) -> bool:
        return run(n).meets(slos)

    start = min(max(lower, hint or 0), settings.max_replicas)
    if passes(start):
        best = start
        while best > 1 and passes(best - 1):
            best -= 1
    else:
        failed, step = start, 1
        while True:
            candidate = min(failed + step, settings.max_replicas)
            if passes(candidate):
                break
            if candidate >= settings.max_replicas:
                raise PlanError("simulation.max_replicas",
                                f"{demand.model} at {rate:.3g} req/s misses its SLOs even with {candidate} replicas "
                                f"({'; '.join(run(candidate).violations(slos))})")
            failed, step = candidate, step * 2
        best = candidate
        while best - failed > 1:
            mid = (best + failed) // 2
            if passes(mid):
                best = mid
            else:
                failed = mid
    below = run(best - 1) if best > 1 else None
    return Sizing(demand.model, rate, best, lower, capacity, run(best), below,
                  {n: r.meets(slos) for n, r in sorted(results.items())})


def _simulate(backend: Backend, replicas: int, arrivals: list[Arrival], settings: SimulationSettings) -> DesResult:
    try:
        return simulate_fleet(backend.params, replicas, arrivals, warmup_s=settings.warmup_s)
    except ValueError as exc:
        raise PlanError(f"workflows (model {backend.model})", str(exc)) from exc
