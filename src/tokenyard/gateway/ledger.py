"""Per-request bookkeeping, done while the gateway waits for a model instead of while a client waits for it.

When a request ends, its metrics, access-log line, trace end and latency-attribution histograms are owed. Doing
them right after the response (one ``call_soon``) looks free, but a client that sends its next request at once
(any client at concurrency 1, an agent's next hop) finds that request's first step queued behind them: measured
on the native server with a raw-socket client, 2 of 3 requests waited 50-90 us for the previous one's
bookkeeping. The ledger keeps the owed entries and settles them all

- when a request has just sent its upstream request (``Ledger.settle`` is the upstream client's ``after_send``):
  the gateway has nothing to do until the model answers, at least a round trip and usually milliseconds;
- ``max_delay_s`` after the oldest entry, when no request is sent meanwhile (idle traffic, cache hits, errors);
- before anything reads the metrics (the registry settles first, see ``GatewayMetrics``), and at shutdown.

Nothing is dropped: every entry is settled exactly once, in order. What must not wait (freeing the endpoint's
in-flight slot, the shared budget lease, the health report) is not bookkeeping and is done before ``defer``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tokenyard.gateway")

MAX_DELAY_S = 0.005  # the longest an entry waits when no upstream request is sent meanwhile


class Ledger:
    """Owed bookkeeping callbacks, settled off the request path (module docstring)."""

    __slots__ = ("_loop", "_owed", "_timer", "max_delay_s")

    def __init__(self, max_delay_s: float = MAX_DELAY_S) -> None:
        self.max_delay_s = max_delay_s
        self._owed: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def defer(self, callback: Callable[..., None], *args: Any) -> None:
        """Owe ``callback(*args)``; it runs within ``max_delay_s``, or sooner (module docstring)."""
        self._owed.append((callback, args))
        if self._timer is None:
            # Armed at most once per max_delay_s, not per request: a settle by an upstream send leaves it armed,
            # and any timer armed before an entry fires within max_delay_s of it.
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.max_delay_s, self._on_timer)

    @property
    def owed(self) -> int:
        return len(self._owed)

    def close(self) -> None:
        """Settle what is owed and stop the timer (the gateway's shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.settle()

    def _on_timer(self) -> None:
        self._timer = None
        self.settle()

    def settle(self) -> None:
        """Run every owed callback now, oldest first; one that raises is logged and the rest still run."""
        while self._owed:  # a callback may owe more (it then runs in this same pass)
            owed, self._owed = self._owed, []
            for callback, args in owed:
                try:
                    callback(*args)
                except Exception:
                    log.exception("deferred bookkeeping failed")
