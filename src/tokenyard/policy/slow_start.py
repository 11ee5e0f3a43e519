"""Slow start: an endpoint that comes back gets a growing share of traffic, not its full share at once.

A cold server (empty KV cache, cold CUDA graphs, a process that just restarted) that receives its full share
immediately can fall over again and flap. The factor scales the endpoint's weight from ``floor`` to 1 over
``window_s``: ``floor + (1 - floor) x (elapsed / window) ^ (1 / aggression)`` (Envoy's slow-start curve, lifted
onto the floor so the weight rises from the first second).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlowStart:
    """Defaults: 30 s window, weight from 10%, linear ramp (aggression 1.0); window 0 turns it off."""

    window_s: float = 30.0
    floor: float = 0.1
    aggression: float = 1.0

    def __post_init__(self) -> None:
        if self.window_s < 0 or not 0.0 < self.floor <= 1.0 or self.aggression <= 0:
            raise ValueError("slow start needs window_s >= 0, floor in (0, 1] and aggression > 0")

    def factor(self, returned_at: float | None, now: float) -> float:
        """Weight multiplier in [floor, 1] for an endpoint available again since ``returned_at`` (None: never left)."""
        if returned_at is None or self.window_s == 0:
            return 1.0
        elapsed = now - returned_at
        if elapsed >= self.window_s:
            return 1.0
        progress = max(0.0, elapsed) / self.window_s
        return self.floor + (1.0 - self.floor) * float(progress ** (1.0 / self.aggression))
