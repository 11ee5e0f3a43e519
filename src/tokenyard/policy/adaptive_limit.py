"""Adaptive per-endpoint concurrency limit, Gradient2-style (Netflix concurrency-limits), plus backoff.

Samples are queue delays (or latencies) in seconds. Every ``interval_s`` the samples of the interval give
``short`` (their mean); ``long`` is an EMA of ``short`` over about ``long_window`` intervals. Then

    g = clamp(long / short, 0.5, 1)
    L <- (1 - smoothing) * L + smoothing * (L * g + sqrt(L)),   clamped to [min_limit, max_limit]

so an unchanged delay grows L by ``smoothing * sqrt(L)`` and a rising delay shrinks it. While the endpoint
is app-limited (peak in-flight of the interval < L / 2) the limit is frozen: an idle endpoint teaches
nothing about its capacity. A backend 429/503, a timeout or KV usage >= ``kv_overload`` multiplies the limit
by ``backoff`` (floored, never below ``min_limit``), at most once per ``interval_s`` so one burst of errors
is one decrease, not twenty.

A queue inside the model server is the one overload that pushes back with neither errors nor (at first) delay
the gradient can see: the server accepts everything and serves it first come, first served, so a premium
request waits there behind batch work that the gateway would have held back. ``observe_queue`` therefore cuts
the limit to this gateway's share of what the server actually runs, ``inflight x running / (running +
waiting)``, as soon as two scrapes in a row show a queue of at least ``queue_cut_share`` of what it runs (and
at least one request). Queued requests then wait in the gateway, in priority order, and the gradient probes
upward from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptiveLimitSettings:
    initial_limit: float = 16.0
    min_limit: float = 2.0
    max_limit: float = 256.0
    smoothing: float = 0.2
    long_window: int = 600
    interval_s: float = 1.0
    backoff: float = 0.9
    kv_overload: float = 0.95
    # The server queue that cuts the limit, as a share of what the server runs (at least one request). A busy
    # server always lists a few requests as waiting: those that arrived during its current step. They are
    # about running / output length, far below a tenth; a queue of a tenth of the batch is a real one, and
    # premium waits behind at most that much inside the server.
    queue_cut_share: float = 0.1


def gradient(long_rtt: float, short_rtt: float) -> float:
    """``clamp(long / short, 0.5, 1)``; a zero short sample means no queueing (g = 1)."""
    if short_rtt <= 0:
        return 1.0
    return min(1.0, max(0.5, long_rtt / short_rtt))


class AdaptiveLimit:
    """One endpoint's limit. Feed ``sample`` with delays and ``overload`` with backend pushback."""

    def __init__(self, settings: AdaptiveLimitSettings | None = None, *, now: float = 0.0) -> None:
        self.settings = settings or AdaptiveLimitSettings()
        s = self.settings
        self._limit = min(s.max_limit, max(s.min_limit, s.initial_limit))
        self.long_rtt: float | None = None
        self._sum = 0.0
        self._count = 0
        self._peak_inflight = 0
        self._window_start = now
        self._last_backoff: float | None = None
        self._last_queue_cut: float | None = None
        self._queue_seen: tuple[float, float] | None = None  # (scraped_at, waiting) of the last scrape seen
        # Called when the whole-number limit changes: the owner caches the sum of its limits (admission reads
        # a pool's capacity on every request; summing hundreds of endpoints' limits each time was O(pool)).
        self.on_change: Callable[[], None] | None = None

    @property
    def limit(self) -> int:
        """The current limit as a whole number of concurrent requests."""
        return int(self._limit)

    @property
    def exact_limit(self) -> float:
        return self._limit

    def sample(self, rtt_s: float, inflight: int, now: float) -> None:
        """Record one delay sample with the in-flight count at that moment; updates once per interval."""
        self._sum += max(0.0, rtt_s)
        self._count += 1
        self._peak_inflight = max(self._peak_inflight, inflight)
        if now - self._window_start >= self.settings.interval_s:
            self.update(self._sum / self._count, self._peak_inflight)
            self._sum, self._count, self._peak_inflight = 0.0, 0, 0
            self._window_start = now

    def update(self, short_rtt: float, inflight: int) -> float:
        """One Gradient2 step with the interval's mean delay and peak in-flight; returns the new limit."""
        s = self.settings
        alpha = 2.0 / (s.long_window + 1)
        long_rtt = short_rtt if self.long_rtt is None else (1 - alpha) * self.long_rtt + alpha * short_rtt
        if short_rtt > 0 and long_rtt / short_rtt > 2.0:
            # The baseline drifted far above today's delays (load fell); decay it so it can recover.
            long_rtt *= 0.95
        self.long_rtt = long_rtt
        if inflight < self._limit / 2:
            return self._limit
        g = gradient(long_rtt, short_rtt)
        target = self._limit * g + math.sqrt(self._limit)
        new = (1 - s.smoothing) * self._limit + s.smoothing * target
        self._set(min(s.max_limit, max(s.min_limit, new)))
        return self._limit

    def overload(self, now: float) -> bool:
        """Backend pushback (429/503/timeout): multiplicative decrease; returns whether it applied."""
        s = self.settings
        if self._last_backoff is not None and now - self._last_backoff < s.interval_s:
            return False
        self._last_backoff = now
        self._set(max(s.min_limit, float(math.floor(self._limit * s.backoff))))
        return True

    def _set(self, limit: float) -> None:
        moved = int(limit) != int(self._limit)
        self._limit = limit
        if moved and self.on_change is not None:
            self.on_change()

    def observe_kv(self, kv_usage: float, now: float) -> bool:
        """Scraped KV usage: at or above ``kv_overload`` it counts as pushback."""
        return kv_usage >= self.settings.kv_overload and self.overload(now)

    def observe_queue(self, running: float, waiting: float, inflight: int, scraped_at: float, now: float) -> bool:
        """A scraped server queue: cut the limit to this gateway's share of the server's running set.

        ``running``/``waiting`` are the server's counts from the scrape taken at ``scraped_at``; ``inflight`` is
        this gateway's in-flight count on the endpoint now. The queue counts only when it is in two consecutive
        scrapes (the smaller of the two) and is at least ``queue_cut_share x running`` (and one request): a
        burst that has just arrived reads as waiting until the server's next step schedules it. A server that
        runs nothing is left alone: it is starting or stuck, which health checks and backoff handle, and it
        says nothing about its capacity. ``inflight x running / (running + waiting)`` is the part of the
        server's running set that is this gateway's (exact when the gateway is the server's only client,
        proportional when several gateways or workers share it). The cut applies only downwards, at most once
        per ``interval_s``, never
        below ``min_limit``. Returns whether the limit moved.
        """
        seen, self._queue_seen = self._queue_seen, (scraped_at, waiting)
        if seen is None or seen[0] == scraped_at:
            if seen is not None:
                self._queue_seen = seen  # the same scrape again: keep the older one to compare the next with
            return False
        sustained = min(seen[1], waiting)
        s = self.settings
        if running < 1 or sustained < max(1.0, s.queue_cut_share * running):
            return False
        if self._last_queue_cut is not None and now - self._last_queue_cut < s.interval_s:
            return False
        share = inflight * running / (running + sustained)
        target = max(s.min_limit, float(math.floor(share)))
        if target >= self._limit:
            return False
        self._last_queue_cut = now
        self._set(target)
        return True
