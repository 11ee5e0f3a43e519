"""Jittered exponential backoff between retry attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``attempt`` (1 = first retry): ``min(cap, base x multiplier^(attempt-1))``,
    of which the ``jitter`` share is drawn uniformly ("full jitter" at 1.0, as Envoy and AWS recommend: it
    breaks up synchronised retry waves). Defaults: 25 ms base, doubling, 250 ms cap, full jitter.
    """

    base_s: float = 0.025
    cap_s: float = 0.25
    multiplier: float = 2.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0 or self.multiplier < 1 or not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff needs base_s, cap_s >= 0, multiplier >= 1 and jitter in [0, 1]")

    def ceiling(self, attempt: int) -> float:
        """The largest delay for this retry number (no jitter)."""
        exponent = max(0, attempt - 1)
        # Cap the exponent so a huge attempt number cannot overflow a float before the cap applies.
        return min(self.cap_s, self.base_s * self.multiplier ** min(exponent, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A jittered delay in ``[(1 - jitter) x ceiling, ceiling]``."""
        ceiling = self.ceiling(attempt)
        fixed = ceiling * (1.0 - self.jitter)
        return fixed + rng.random() * (ceiling - fixed)
