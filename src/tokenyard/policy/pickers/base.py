"""The Picker protocol and the shared filter -> score -> pick skeleton.

A picker is stateful only where its algorithm needs it (rotation cursors), takes its randomness from the
``random.Random`` it was built with and its time from the clock it was given, so it is deterministic in tests.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures


@runtime_checkable
class Picker(Protocol):
    """Chooses one endpoint of a pool for one request (the Gateway API Inference Extension's plugin shape)."""

    name: str

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        """The candidates this picker would consider (never adds any)."""
        ...

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        """A score in [0, 1] per candidate name; higher is better. Pure: does not advance any state."""
        ...

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        """The endpoint to send this request to, or None when no candidate is available."""
        ...


def available(candidates: Sequence[EndpointView]) -> list[EndpointView]:
    """Candidates that are healthy, not ejected and have a positive weight."""
    return [c for c in candidates if c.available]


def normalise_inverse(costs: Mapping[str, float]) -> dict[str, float]:
    """Map costs >= 0 to scores in [0, 1]: the cheapest gets 1, a cost of ``max`` gets 0 (all equal: all 1)."""
    if not costs:
        return {}
    low = min(costs.values())
    high = max(costs.values())
    if high <= low:
        return dict.fromkeys(costs, 1.0)
    return {name: (high - cost) / (high - low) for name, cost in costs.items()}


class ScoringPicker:
    """Filter to available endpoints, score them, pick the best score; ties are broken by the RNG."""

    name = "scoring"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def filter(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> list[EndpointView]:
        return available(candidates)

    def score(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> dict[str, float]:
        return dict.fromkeys((c.name for c in candidates), 1.0)

    def pick(self, candidates: Sequence[EndpointView], request: RequestFeatures) -> EndpointView | None:
        pool = self.filter(candidates, request)
        if len(pool) < 2:  # nothing to compare (scores are pure: skipping them changes nothing)
            return pool[0] if pool else None
        scores = self.score(pool, request)
        best = max(scores.get(c.name, 0.0) for c in pool)
        # Scores are floats: treat near-equal scores as ties so the RNG spreads them.
        top = [c for c in pool if scores.get(c.name, 0.0) >= best - 1e-12]
        return top[0] if len(top) == 1 else self._rng.choice(top)
