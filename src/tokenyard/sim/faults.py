"""Fault injection: what to break, and a seeded per-request decision of whether to break it.

Set by CLI flags, a fleet file's ``faults`` mapping, or at run time with ``POST /sim/faults`` (same field names;
``{"clear": true}`` removes every fault first). Decisions are drawn from one ``random.Random(seed)`` in request
arrival order, a fixed number of draws per request, so the same seed and the same request order give the same
faults whatever the settings are.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

ERROR_STATUSES = (429, 500, 503)


@dataclass(frozen=True)
class FaultConfig:
    error_rate: float = 0.0  # fraction of requests answered with error_status instead
    error_status: int = 500
    latency_spike_rate: float = 0.0  # fraction of requests that stall latency_spike_ms after their first token
    latency_spike_ms: float = 0.0
    ttft_inflation_ms: float = 0.0  # added to every request's front-end delay (so to its TTFT)
    hang_rate: float = 0.0  # fraction of requests accepted and never answered
    drop_after_tokens: int | None = None  # close the connection after this many tokens ...
    drop_rate: float = 1.0  # ... for this fraction of requests
    capacity_slots: int | None = None  # fewer running slots than max_num_seqs

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RATES = ("error_rate", "latency_spike_rate", "hang_rate", "drop_rate")
_NON_NEGATIVE = ("latency_spike_ms", "ttft_inflation_ms")


def parse_faults(body: Any, current: FaultConfig | None = None) -> FaultConfig:
    """Apply the fields of ``body`` to ``current`` (or to no faults); ValueError says which field is bad."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object of fault fields")
    base = FaultConfig() if current is None or body.get("clear") is True else current
    fields = {k: v for k, v in body.items() if k != "clear"}
    known = {f.name for f in dataclasses.fields(FaultConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        if name in _RATES or name in _NON_NEGATIVE:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            if name in _RATES and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
            clean[name] = float(value)
        elif name == "error_status":
            if value not in ERROR_STATUSES:
                raise ValueError(f"error_status must be one of {', '.join(map(str, ERROR_STATUSES))}")
            clean[name] = int(value)
        else:  # drop_after_tokens, capacity_slots: a non-negative integer or null
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or null")
            clean[name] = value
    return dataclasses.replace(base, **clean)


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request."""

    error_status: int | None = None
    hang: bool = False
    spike_ms: float = 0.0
    drop_after: int | None = None
    ttft_inflation_ms: float = 0.0

    @property
    def any(self) -> bool:
        return bool(self.error_status or self.hang or self.spike_ms or self.drop_after is not None)


NO_FAULT = FaultDecision()


class FaultInjector:
    """The current ``FaultConfig`` and the seeded stream of per-request decisions."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self._rng = random.Random(seed * 104_729 + 3)

    def decide(self) -> FaultDecision:
        cfg = self.config
        r_error, r_hang, r_spike, r_drop = (self._rng.random() for _ in range(4))  # always four draws
        if cfg == FaultConfig():
            return NO_FAULT
        return FaultDecision(
            error_status=cfg.error_status if r_error < cfg.error_rate else None,
            hang=r_hang < cfg.hang_rate,
            spike_ms=cfg.latency_spike_ms if r_spike < cfg.latency_spike_rate else 0.0,
            drop_after=cfg.drop_after_tokens if cfg.drop_after_tokens is not None and r_drop < cfg.drop_rate
            else None,
            ttft_inflation_ms=cfg.ttft_inflation_ms,
        )
