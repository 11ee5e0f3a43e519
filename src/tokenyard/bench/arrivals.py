"""Arrival processes: when each request of an open-loop run is meant to be sent.

All processes are pure and seeded: ``schedule(duration_s, max_requests, rng)`` returns sorted offsets in seconds
from the start of the run, bounded in count and time. Time-varying rates (surge, spike, diurnal) are drawn as a
non-homogeneous Poisson process by thinning (Lewis and Shedler), or deterministically (``poisson: false``) by
stepping ``1 / rate(t)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokenyard.bench.errors import WorkloadError

KINDS = ("poisson", "constant", "surge", "spike", "diurnal")


@dataclass(frozen=True)
class Arrivals:
    """An arrival process.

    rate: base requests per second. surge: rate x ``multiplier`` during ``[start_s, start_s + length_s)``.
    spike: a surge of ``length_s`` (default 1 s) and a large multiplier (default 10). diurnal: rate x
    ``1 + amplitude * sin(2 pi t / period_s)``. ``poisson`` chooses random (Poisson) or evenly paced sends.
    """

    kind: str
    rate: float
    poisson: bool = True
    multiplier: float = 1.0
    start_s: float = 0.0
    length_s: float = 0.0
    period_s: float = 60.0
    amplitude: float = 0.5

    def rate_at(self, t: float) -> float:
        """The intended request rate (requests per second) at offset ``t``."""
        if self.kind in ("surge", "spike") and self.start_s <= t < self.start_s + self.length_s:
            return self.rate * self.multiplier
        if self.kind == "diurnal":
            return max(0.0, self.rate * (1.0 + self.amplitude * math.sin(2 * math.pi * t / self.period_s)))
        return self.rate

    def peak_rate(self) -> float:
        if self.kind in ("surge", "spike"):
            return self.rate * max(1.0, self.multiplier)
        if self.kind == "diurnal":
            return self.rate * (1.0 + self.amplitude)
        return self.rate

    def schedule(self, duration_s: float, max_requests: int, rng: random.Random) -> list[float]:
        """Intended send offsets in ``[0, duration_s)``, at most ``max_requests`` of them, ascending."""
        out: list[float] = []
        peak = self.peak_rate()
        if peak <= 0 or max_requests <= 0 or duration_s <= 0:
            return out
        t = 0.0
        if self.poisson:
            # Thinning: candidates at the peak rate, each kept with probability rate(t) / peak.
            while len(out) < max_requests:
                t += rng.expovariate(peak)
                if t >= duration_s:
                    break
                if rng.random() * peak < self.rate_at(t):
                    out.append(t)
            return out
        while t < duration_s and len(out) < max_requests:
            rate = self.rate_at(t)
            if rate <= 0:
                t += 0.01  # a zero-rate stretch (diurnal trough at amplitude 1): step over it
                continue
            out.append(t)
            t += 1.0 / rate
        return out


def parse_arrivals(raw: Any, where: str = "arrival") -> Arrivals:
    """Parse the ``arrival`` mapping of a workload file."""
    if not isinstance(raw, Mapping):
        raise WorkloadError(where, "expected a mapping with at least kind and rate")
    allowed = {"kind", "rate", "poisson", "multiplier", "start_s", "length_s", "period_s", "amplitude"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise WorkloadError(where, f"unknown keys {unknown}")
    kind = raw.get("kind", "poisson")
    if kind not in KINDS:
        raise WorkloadError(f"{where}.kind", f"must be one of {list(KINDS)}")
    rate = _num(raw.get("rate"), f"{where}.rate")
    if rate <= 0:
        raise WorkloadError(f"{where}.rate", "must be a positive number of requests per second")
    poisson = raw.get("poisson", kind != "constant")
    if not isinstance(poisson, bool):
        raise WorkloadError(f"{where}.poisson", "expected true or false")
    defaults = {"surge": (3.0, 10.0, 10.0), "spike": (10.0, 10.0, 1.0)}.get(kind, (1.0, 0.0, 0.0))
    multiplier = _num(raw.get("multiplier", defaults[0]), f"{where}.multiplier")
    start_s = _num(raw.get("start_s", defaults[1]), f"{where}.start_s")
    length_s = _num(raw.get("length_s", defaults[2]), f"{where}.length_s")
    period_s = _num(raw.get("period_s", 60.0), f"{where}.period_s")
    amplitude = _num(raw.get("amplitude", 0.5), f"{where}.amplitude")
    if multiplier <= 0 or start_s < 0 or length_s < 0:
        raise WorkloadError(where, "multiplier must be positive, start_s and length_s not negative")
    if period_s <= 0 or not 0 <= amplitude <= 1:
        raise WorkloadError(where, "period_s must be positive and amplitude within 0..1")
    return Arrivals(kind=kind, rate=rate, poisson=poisson, multiplier=multiplier, start_s=start_s,
                    length_s=length_s, period_s=period_s, amplitude=amplitude)


def _num(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise WorkloadError(where, "expected a number")
    return float(raw)
