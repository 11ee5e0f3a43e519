"""TTFT prediction for early deadline rejection.

    predicted_ttft = queue_position * service_interval + recent_ttft

``service_interval`` is an EWMA of the time between consecutive dispatches while requests were waiting
(1 / the pool's service rate when it is busy; gaps while the queue was empty say nothing about capacity
and are not recorded); ``recent_ttft`` is an EWMA of observed TTFTs. Both use ``alpha`` (default 0.2).

A request whose budget is ``budget_s`` (min of the class queue TTL, the client's ``x-tokenyard-deadline-ms``
and, where configured, the class TTFT SLO) is rejected at once when ``predicted > budget * (1 - slack)``
rather than after it has waited; at dispatch the check is repeated with position 0 (the wait is now known).
Before any sample exists the predictor knows nothing and admits (``predict`` uses the priors, 0 by default).

A request that finds a free slot (position 0) is checked only against the client's own deadline, and only with
a TTFT learned from real samples (``check_learned``): never on priors, and not once the newest sample is older
than ``ttft_max_age_s`` (a pool that went quiet is re-taught by the next requests instead of refusing forever).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeadlineSettings:
    alpha: float = 0.2
    slack_fraction: float = 0.1
    prior_service_interval_s: float = 0.0
    prior_ttft_s: float = 0.0
    ttft_max_age_s: float = 30.0  # a learned TTFT older than this is not trusted to refuse a free-slot request


class Ewma:
    """Exponentially weighted moving average; the first sample initialises it."""

    def __init__(self, alpha: float) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.value: float | None = None

    def update(self, sample: float) -> float:
        self.value = sample if self.value is None else (1 - self.alpha) * self.value + self.alpha * sample
        return self.value


@dataclass(frozen=True)
class DeadlineVerdict:
    ok: bool
    predicted_s: float
    allowed_s: float


class TtftPredictor:
    """Per pool: learns the service interval and TTFT, predicts a queued request's TTFT."""

    def __init__(self, settings: DeadlineSettings | None = None) -> None:
        self.settings = settings or DeadlineSettings()
        self._interval = Ewma(self.settings.alpha)
        self._ttft = Ewma(self.settings.alpha)
        self._last_dispatch: float | None = None
        self._ttft_at: float | None = None  # when the newest TTFT sample came (None: no time given)

    @property
    def service_interval_s(self) -> float:
        v = self._interval.value
        return self.settings.prior_service_interval_s if v is None else v

    @property
    def ttft_s(self) -> float:
        v = self._ttft.value
        return self.settings.prior_ttft_s if v is None else v

    def observe_dispatch(self, now: float, *, backlogged: bool) -> None:
        """A request left the queue; ``backlogged`` = others were still waiting before it left."""
        if backlogged and self._last_dispatch is not None:
            self._interval.update(max(0.0, now - self._last_dispatch))
        self._last_dispatch = now

    def observe_ttft(self, ttft_s: float, now: float | None = None) -> None:
        """A measured TTFT; ``now`` (the caller's clock) dates it for ``check_learned``."""
        self._ttft.update(max(0.0, ttft_s))
        self._ttft_at = now

    def predict(self, position: int) -> float:
        return max(0, position) * self.service_interval_s + self.ttft_s

    def check(self, position: int, budget_s: float) -> DeadlineVerdict:
        """Whether a request at ``position`` can get its first token within ``budget_s`` less slack."""
        predicted = self.predict(position)
        allowed = budget_s * (1 - self.settings.slack_fraction)
        return DeadlineVerdict(predicted <= allowed, predicted, allowed)

    def check_learned(self, budget_s: float, now: float) -> DeadlineVerdict:
        """Whether a request served now (position 0) can get its first token within ``budget_s`` less slack,
        judged only by the TTFT learned from samples dated within ``ttft_max_age_s`` of ``now``: with none, ok."""
        learned = self._ttft.value
        allowed = budget_s * (1 - self.settings.slack_fraction)
        at = self._ttft_at
        if learned is None or at is None or now - at > self.settings.ttft_max_age_s:
            return DeadlineVerdict(True, self.ttft_s, allowed)
        return DeadlineVerdict(learned <= allowed, learned, allowed)
