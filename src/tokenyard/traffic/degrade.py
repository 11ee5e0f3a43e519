"""The degradation engine: live signals in, ladder level out, request bodies transformed.

Feed it TTFT samples per class, queue waits and pool saturation. At most every ``eval_interval_s`` it
computes the pressure (``policy.degradation.pressure``: the worst of TTFT p95 / class SLO, queue-wait p95 /
target, saturation / target, over a sliding ``window_s``) and steps the ladder (with hysteresis and dwell).
``apply(klass, body)`` runs the actions of the class's level on a parsed JSON body, in place, and returns
the names of the actions that changed something (for ``x-tokenyard-degraded``) and headers to forward.
Level changes go to ``on_level_change(old, new)``; counting the actions is the caller's job (it has them).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenyard.policy.degradation import (
    COMPRESS_RETRIEVAL,
    CONCISE,
    FALLBACK_MODEL,
    NARROW_TOOLS,
    TOP_K_HINT_HEADER,
    DegradationLadder,
    DegradationSettings,
    cap_top_k,
    make_concise,
    narrow_tools,
    pressure,
    swap_model,
)

RETRIEVAL = "retrieval"


@dataclass(frozen=True)
class DegradeResult:
    level: int
    actions: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class _Window:
    def __init__(self, maxlen: int) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, now: float, value: float) -> None:
        self.samples.append((now, value))

    def values(self, since: float) -> list[float]:
        while self.samples and self.samples[0][0] < since:
            self.samples.popleft()
        return [v for _, v in self.samples]


class DegradeEngine:
    """Owns one ladder for the gateway. ``ttft_slo_s`` maps class -> TTFT objective (classes without one
    do not contribute a TTFT ratio)."""

    def __init__(
        self,
        settings: DegradationSettings | None = None,
        *,
        ttft_slo_s: Mapping[str, float] | None = None,
        window_s: float = 30.0,
        eval_interval_s: float = 1.0,
        max_samples: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        on_level_change: Callable[[int, int], None] | None = None,
    ) -> None:
        self.settings = settings or DegradationSettings()
        self._slo = dict(ttft_slo_s or {})
        self._window_s = window_s
        self._eval_interval_s = eval_interval_s
        self._clock = clock
        self._on_level_change = on_level_change
        self._ttft: dict[str, _Window] = {}
        self._waits = _Window(max_samples)
        self._max_samples = max_samples
        self._saturation = 0.0
        self._ladder = DegradationLadder(self.settings, now=clock())
        self._last_eval: float | None = None
        self.last_pressure = 0.0

    # ---- observations -----------------------------------------------------------------------------------
    def observe_ttft(self, klass: str, ttft_s: float) -> None:
        self._ttft.setdefault(klass, _Window(self._max_samples)).add(self._clock(), ttft_s)

    def observe_queue_wait(self, klass: str, wait_s: float) -> None:
        del klass  # one queue-wait signal for the whole gateway; the class is kept for the call's symmetry
        self._waits.add(self._clock(), wait_s)

    def observe_saturation(self, saturation: float) -> None:
        self._saturation = saturation

    # ---- control ----------------------------------------------------------------------------------------
    def evaluate(self) -> int:
        """Recompute the pressure and step the ladder now; returns the (unpinned) ladder level."""
        now = self._clock()
        self._last_eval = now
        since = now - self._window_s
        ratios = [p95(w.values(since)) / self._slo[k] for k, w in self._ttft.items() if self._slo.get(k)]
        self.last_pressure = pressure(
            ttft_ratio=max(ratios, default=0.0),
            queue_wait_s=p95(self._waits.values(since)),
            saturation=self._saturation,
            settings=self.settings,
        )
        old = self._ladder.level
        new = self._ladder.update(self.last_pressure, now)
        if new != old and self._on_level_change is not None:
            self._on_level_change(old, new)
        return new

    def _maybe_evaluate(self) -> None:
        if self._last_eval is None or self._clock() - self._last_eval >= self._eval_interval_s:
            self.evaluate()

    def current_level(self, klass: str) -> int:
        """The level ``klass`` sees now (pin and class offset applied)."""
        self._maybe_evaluate()
        return self._ladder.level_for(klass)

    @property
    def level(self) -> int:
        """The ladder level (pinned value when pinned), for the gauge."""
        return self._ladder.effective_level

    def pin(self, level: int | None) -> None:
        """Admin: hold ``level`` (0..4), or None to follow the signals again."""
        self._ladder.pin(level)

    def apply(self, klass: str, body: dict[str, Any], *, kind: str = "chat",
              fallback_model: str | None = None) -> DegradeResult:
        """Degrade ``body`` (parsed JSON, changed in place) per the class's level. ``kind`` "retrieval" for
        retrieval calls (only ``compress_retrieval`` applies); ``fallback_model`` the pool's configured
        smaller model (None: level 4 does nothing)."""
        self._maybe_evaluate()
        s = self.settings
        level = self._ladder.level_for(klass)
        actions = self._ladder.actions_for(klass)
        applied: list[str] = []
        headers: dict[str, str] = {}
        if COMPRESS_RETRIEVAL in actions:
            if kind == RETRIEVAL:
                if cap_top_k(body, s.top_k_cap):
                    applied.append(COMPRESS_RETRIEVAL)
            else:
                headers[TOP_K_HINT_HEADER] = str(s.top_k_cap)
        if kind != RETRIEVAL:
            if NARROW_TOOLS in actions and narrow_tools(body, s.max_tools):
                applied.append(NARROW_TOOLS)
            cap = s.concise_max_tokens.get(klass, s.default_concise_max_tokens)
            if CONCISE in actions and make_concise(body, cap, s.concise_instruction):
                applied.append(CONCISE)
            if FALLBACK_MODEL in actions and swap_model(body, fallback_model):
                applied.append(FALLBACK_MODEL)
        return DegradeResult(level, tuple(applied), headers)

    def snapshot(self) -> dict[str, Any]:
        return {
            "level": self._ladder.level,
            "pinned": self._ladder.pinned,
            "pressure": self.last_pressure,
            "saturation": self._saturation,
        }
