"""Length distributions for prompts and outputs: parsed from a YAML mapping, sampled with a seeded RNG.

Every distribution returns whole token counts clipped to ``[min, max]`` (at least 1), so a workload can never ask
for an empty prompt or a non-positive ``max_tokens``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenyard.bench.errors import WorkloadError

KINDS = ("constant", "uniform", "normal", "lognormal", "choices")


@dataclass(frozen=True)
class LengthDist:
    """A token-count distribution.

    kind: constant (``value``), uniform (``min``..``max`` inclusive), normal (``mean``, ``stddev``, clipped),
    lognormal (``mean`` is the median of the tokens, ``sigma`` the log-space spread, clipped),
    choices (``values`` with optional ``weights``).
    """

    kind: str
    value: int = 0
    mean: float = 0.0
    stddev: float = 0.0
    sigma: float = 0.0
    lo: int = 1
    hi: int = 1_000_000
    values: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def sample(self, rng: random.Random) -> int:
        if self.kind == "constant":
            raw: float = self.value
        elif self.kind == "uniform":
            raw = rng.randint(self.lo, self.hi)
        elif self.kind == "normal":
            raw = rng.gauss(self.mean, self.stddev)
        elif self.kind == "lognormal":
            raw = rng.lognormvariate(math.log(self.mean), self.sigma)
        else:
            raw = rng.choices(self.values, weights=self.weights or None)[0]
        return max(1, self.lo, min(self.hi, round(raw)))

    @property
    def expected(self) -> float:
        """The (unclipped) mean, for documentation and planning."""
        if self.kind == "constant":
            return float(self.value)
        if self.kind == "uniform":
            return (self.lo + self.hi) / 2
        if self.kind == "normal":
            return self.mean
        if self.kind == "lognormal":
            return self.mean * math.exp(self.sigma**2 / 2)
        weights = self.weights or tuple(1.0 for _ in self.values)
        return sum(v * w for v, w in zip(self.values, weights, strict=True)) / sum(weights)


def constant(value: int) -> LengthDist:
    return LengthDist(kind="constant", value=value, lo=1, hi=max(1, value))


def parse_length(raw: Any, where: str) -> LengthDist:
    """Parse ``300`` (constant) or a mapping ``{dist: KIND, ...}``; raise WorkloadError naming ``where``."""
    if isinstance(raw, bool):
        raise WorkloadError(where, "expected a token count or a distribution mapping")
    if isinstance(raw, int):
        if raw < 1:
            raise WorkloadError(where, "must be a positive token count")
        return constant(raw)
    if not isinstance(raw, Mapping):
        raise WorkloadError(where, "expected a token count or a distribution mapping")
    allowed = {"dist", "value", "min", "max", "mean", "stddev", "sigma", "values", "weights"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise WorkloadError(where, f"unknown keys {unknown}")
    kind = raw.get("dist", "constant")
    if kind not in KINDS:
        raise WorkloadError(f"{where}.dist", f"must be one of {list(KINDS)}")
    lo = _int(raw.get("min", 1), f"{where}.min")
    hi = _int(raw.get("max", 1_000_000), f"{where}.max")
    if lo < 1 or hi < lo:
        raise WorkloadError(where, "needs 1 <= min <= max")
    if kind == "constant":
        value = _int(raw.get("value"), f"{where}.value")
        if value < 1:
            raise WorkloadError(f"{where}.value", "must be positive")
        return LengthDist(kind=kind, value=value, lo=1, hi=max(value, 1))
    if kind == "uniform":
        if "min" not in raw or "max" not in raw:
            raise WorkloadError(where, "uniform needs min and max")
        return LengthDist(kind=kind, lo=lo, hi=hi)
    if kind in ("normal", "lognormal"):
        mean = _float(raw.get("mean"), f"{where}.mean")
        if mean <= 0:
            raise WorkloadError(f"{where}.mean", "must be positive")
        if kind == "normal":
            stddev = _float(raw.get("stddev", mean / 4), f"{where}.stddev")
            if stddev < 0:
                raise WorkloadError(f"{where}.stddev", "must not be negative")
            return LengthDist(kind=kind, mean=mean, stddev=stddev, lo=lo, hi=hi)
        sigma = _float(raw.get("sigma", 0.5), f"{where}.sigma")
        if sigma < 0:
            raise WorkloadError(f"{where}.sigma", "must not be negative")
        return LengthDist(kind=kind, mean=mean, sigma=sigma, lo=lo, hi=hi)
    values = raw.get("values")
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise WorkloadError(f"{where}.values", "choices needs a non-empty list of token counts")
    ints = tuple(_int(v, f"{where}.values") for v in values)
    if min(ints) < 1:
        raise WorkloadError(f"{where}.values", "token counts must be positive")
    weights: tuple[float, ...] = ()
    if "weights" in raw:
        wraw = raw["weights"]
        if not isinstance(wraw, Sequence) or isinstance(wraw, str) or len(wraw) != len(ints):
            raise WorkloadError(f"{where}.weights", "needs one weight per value")
        weights = tuple(_float(w, f"{where}.weights") for w in wraw)
        if min(weights) < 0 or sum(weights) <= 0:
            raise WorkloadError(f"{where}.weights", "weights must be >= 0 with a positive sum")
    return LengthDist(kind=kind, values=ints, weights=weights, lo=lo, hi=hi)


def _int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or int(raw) != raw:
        raise WorkloadError(where, "expected an integer")
    return int(raw)


def _float(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise WorkloadError(where, "expected a number")
    return float(raw)
