"""Load shedding under saturation: batch first, then standard, premium last, each decision with a reason.

Tiers (a class's tier comes from config; by default the lowest-priority class is sheddable and the highest
is critical):

* ``SHEDDABLE`` (batch): shed with probability ``p = min(s**exponent * scale, 1)`` (defaults 5 and 300,
  the llm-d probabilistic admitter: 1% at s ~ 0.127, 9.6% at s = 0.2, everything from s ~ 0.32).
* ``STANDARD``: shed when ``s >= standard_threshold`` (default 1.0: the pool is saturated); the deadline
  predictor (``policy.deadline``) rejects earlier when its TTFT budget cannot be met.
* ``CRITICAL`` (premium): never shed for saturation, only on hard caps (its queue is full).

Every tier is also bounded by its queue cap. ``draw`` is a uniform [0, 1) number passed in, so the decision
is a pure function (tests pass fixed draws; the engine passes ``random.random()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class ShedTier(StrEnum):
    CRITICAL = "critical"
    STANDARD = "standard"
    SHEDDABLE = "sheddable"


# Reasons, as they appear in metrics labels, logs and error messages.
ADMITTED = "admitted"
SHED_PROBABILISTIC = "saturation_probabilistic"
SHED_THRESHOLD = "saturation_threshold"
SHED_QUEUE_FULL = "queue_full"


@dataclass(frozen=True)
class SheddingSettings:
    sheddable_scale: float = 300.0
    sheddable_exponent: float = 5.0
    standard_threshold: float = 1.0
    retry_after_min_s: float = 1.0
    retry_after_max_s: float = 60.0


@dataclass(frozen=True)
class ShedDecision:
    admit: bool
    reason: str
    probability: float = 0.0

    @property
    def status(self) -> int:
        """HTTP status for a refusal: 429 (shed, retry later); 200 means admitted."""
        return 200 if self.admit else 429


_ADMIT = ShedDecision(True, ADMITTED, 0.0)  # the common answer, built once (the decision is immutable)


def shed_probability(saturation: float, settings: SheddingSettings | None = None) -> float:
    """``min(s**exponent * scale, 1)`` for the sheddable tier; 0 for s <= 0."""
    st = settings or SheddingSettings()
    if saturation <= 0:
        return 0.0
    return min(float(saturation**st.sheddable_exponent) * st.sheddable_scale, 1.0)


def decide(
    tier: ShedTier,
    saturation: float,
    *,
    queue_depth: int = 0,
    queue_cap: int | None = None,
    draw: float = 1.0,
    settings: SheddingSettings | None = None,
) -> ShedDecision:
    """Admit or shed one arriving request of ``tier`` given the pool ``saturation`` and its class queue."""
    st = settings or SheddingSettings()
    if queue_cap is not None and queue_depth >= queue_cap:
        return ShedDecision(False, SHED_QUEUE_FULL, 1.0)
    if tier is ShedTier.SHEDDABLE:
        p = shed_probability(saturation, st)
        return ShedDecision(draw >= p, ADMITTED if draw >= p else SHED_PROBABILISTIC, p)
    if tier is ShedTier.STANDARD and saturation >= st.standard_threshold:
        return ShedDecision(False, SHED_THRESHOLD, 1.0)
    return _ADMIT


def retry_after_s(backlog_s: float, settings: SheddingSettings | None = None) -> int:
    """Whole seconds for ``Retry-After``: the estimated time for the backlog to drain, clamped to
    [retry_after_min_s, retry_after_max_s] so clients neither hammer nor give up."""
    st = settings or SheddingSettings()
    value = max(st.retry_after_min_s, min(st.retry_after_max_s, backlog_s))
    return math.ceil(value)
