"""Busy polling: keep the event loop polling instead of sleeping for a short window around each request.

An idle event loop blocks in ``epoll_wait``; the next packet then has to wake the process, which the kernel (and,
in a virtual machine, the hypervisor) does tens to hundreds of microseconds later, on a core whose caches other
processes have used meanwhile. At low concurrency that happens twice per proxied request (the upstream's answer,
then the client's next request) and is a large share of what a gateway adds. HAProxy's ``busy-polling`` and
Linux's ``net.core.busy_poll`` trade CPU for that latency; this is the same trade at the event loop's level.

Contract:

- ``poke()`` marks activity: the native server calls it when a request starts and when its response is out.
- From a poke until ``window_s`` after the latest one, a callback re-schedules itself with ``call_soon`` every
  turn, so the loop polls with a zero timeout instead of blocking. Then it stops and the loop sleeps as usual.
- Nothing else starts a spin: an idle gateway (timers, health checks, scrapes) does not poll.
- The cost is CPU, bounded by the window: at most about ``2 x window_s`` of spinning per request, and a whole
  core while requests keep coming less than ``window_s`` apart. Off unless configured (``listen.busy_poll_us``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class Scheduler(Protocol):
    """What busy polling needs of an event loop."""

    def call_soon(self, callback: Callable[[], object], *args: Any) -> Any: ...


class BusyPoll:
    """Spins ``loop`` until ``window_s`` after the latest ``poke()`` (see the module docstring)."""

    __slots__ = ("_clock", "_handle", "_loop", "_until", "spins", "window_s")

    def __init__(self, loop: Scheduler, window_s: float, *, clock: Callable[[], float] = time.perf_counter) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self._loop = loop
        self.window_s = window_s
        self._clock = clock
        self._handle: Any = None  # the scheduled turn while spinning
        self._until = 0.0
        self.spins = 0  # spin episodes started (for tests and diagnostics)

    @property
    def spinning(self) -> bool:
        return self._handle is not None

    def poke(self) -> None:
        """Activity: poll until ``window_s`` from now (starting a spin if none is going)."""
        self._until = self._clock() + self.window_s
        if self._handle is None:
            self.spins += 1
            self._handle = self._loop.call_soon(self._turn)

    def stop(self) -> None:
        """Stop spinning now (the listener is closing); a later ``poke()`` starts again."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _turn(self) -> None:
        if self._clock() < self._until:
            self._handle = self._loop.call_soon(self._turn)
        else:
            self._handle = None
