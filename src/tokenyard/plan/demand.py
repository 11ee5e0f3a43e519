"""Demand maths, pure: user actions -> requests and tokens per model, and the traffic forecast month by month.

A user action of workflow *w* makes ``hop.requests`` generations on ``hop.model`` for each of its hops. With the
workflows' shares normalised to sum to 1, one *average* action makes, on model *m*,

    requests(m)      = sum over workflows w, hops h on m of  share(w) * requests(h)
    prompt_tokens(m) = sum ... share(w) * requests(h) * E[prompt_tokens(h)]   (and the same for output tokens)

and the per-model request stream is a mixture of *request kinds* (one per workflow, hop and class) with these
weights. Rates scale linearly with the action rate.

Forecast, month ``k`` of ``0..months_ahead`` (compound growth ``g``):

    mean(k)  = mean(0) * (1 + g) ** k          mean(0) = monthly_actions / SECONDS_PER_MONTH
    peak(k)  = mean(k) * peak_to_mean          (or peak(0) = peak_actions_per_s, mean = peak / peak_to_mean)
    surge(k) = peak(k) * surge_multiplier      what the fleet must hold during an incident at the monthly peak
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokenyard.bench.distributions import LengthDist
from tokenyard.plan.spec import Forecast, PlanSpec

SECONDS_PER_MONTH = 730 * 3600  # the 730-hour month cloud price sheets bill by


@dataclass(frozen=True)
class TrafficPoint:
    """User actions in month ``month`` (0 = now): mean, monthly-peak and incident-surge rates per second."""

    month: int
    mean_actions_per_s: float
    peak_actions_per_s: float
    surge_actions_per_s: float

    @property
    def actions_per_month(self) -> float:
        return self.mean_actions_per_s * SECONDS_PER_MONTH


def forecast_month(forecast: Forecast, month: int) -> TrafficPoint:
    """The traffic of ``month`` months from now."""
    growth = (1.0 + forecast.monthly_growth) ** month
    if forecast.monthly_actions is not None:
        mean = forecast.monthly_actions / SECONDS_PER_MONTH * growth
        peak = mean * forecast.peak_to_mean
    else:
        assert forecast.peak_actions_per_s is not None
        peak = forecast.peak_actions_per_s * growth
        mean = peak / forecast.peak_to_mean
    return TrafficPoint(month=month, mean_actions_per_s=mean, peak_actions_per_s=peak,
                        surge_actions_per_s=peak * forecast.surge_multiplier)


def forecast_series(forecast: Forecast) -> list[TrafficPoint]:
    """Months 0..months_ahead."""
    return [forecast_month(forecast, k) for k in range(forecast.months_ahead + 1)]


@dataclass(frozen=True)
class RequestKind:
    """One stream of a model's requests: ``weight`` of them per average user action, of class ``klass``."""

    weight: float
    klass: str
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    workflow: str


@dataclass(frozen=True)
class ModelDemand:
    """What one average user action asks of ``model``."""

    model: str
    kinds: tuple[RequestKind, ...]

    @property
    def requests_per_action(self) -> float:
        return sum(k.weight for k in self.kinds)

    @property
    def prompt_tokens_per_action(self) -> float:
        return sum(k.weight * k.prompt_tokens.expected for k in self.kinds)

    @property
    def output_tokens_per_action(self) -> float:
        return sum(k.weight * k.output_tokens.expected for k in self.kinds)

    @property
    def tokens_per_action(self) -> float:
        return self.prompt_tokens_per_action + self.output_tokens_per_action

    @property
    def mean_prompt_tokens(self) -> float:
        """Per request (0 for a model no action uses)."""
        n = self.requests_per_action
        return self.prompt_tokens_per_action / n if n else 0.0

    @property
    def mean_output_tokens(self) -> float:
        n = self.requests_per_action
        return self.output_tokens_per_action / n if n else 0.0

    def request_rate(self, actions_per_s: float) -> float:
        return actions_per_s * self.requests_per_action

    def class_shares(self) -> dict[str, float]:
        """Fraction of this model's requests per class."""
        total = self.requests_per_action
        out: dict[str, float] = {}
        for k in self.kinds:
            out[k.klass] = out.get(k.klass, 0.0) + (k.weight / total if total else 0.0)
        return out


def model_demands(spec: PlanSpec) -> dict[str, ModelDemand]:
    """Per model (every model under ``models``, even unused ones), the request kinds of an average action."""
    wf_total = sum(w.share for w in spec.workflows)
    global_mix = {c.name: c.share for c in spec.classes}
    kinds: dict[str, list[RequestKind]] = {name: [] for name in spec.backends}
    for wf in spec.workflows:
        mix = _normalised(wf.class_mix if wf.class_mix is not None else global_mix)
        for hop in wf.hops:
            for klass, class_share in mix.items():
                weight = wf.share / wf_total * hop.requests * class_share
                if weight > 0:
                    kinds[hop.model].append(RequestKind(weight, klass, hop.prompt_tokens, hop.output_tokens,
                                                        wf.name))
    return {name: ModelDemand(name, tuple(ks)) for name, ks in kinds.items()}


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items() if v > 0}
