"""One timer per request for the upstream phase: time to first token, idle gap between tokens, the deadline.

Times are ``time.monotonic()`` (uvloop's ``loop.time()`` is cached at millisecond resolution). A single
timer handle is rescheduled only when it fires (not per chunk): the relay just stores the time of
the last token in ``last``. When a limit is passed the request is cancelled through ``RequestContext.cancel``,
the same path as a client disconnect, so the upstream request is closed at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic

from tokenyard.gateway.context import RequestContext


class Watchdog:
    """Cancels ``ctx`` when the first token (``first_s``), the next token (``idle_s``) or the deadline is late.

    ``first_s`` None (non-streaming requests: nothing arrives before the whole answer) leaves only the deadline,
    so a long generation is never cut by a total timeout; the client's own timeout still closes the upstream.
    ``clock`` is ``time.monotonic`` (a test drives it by hand).

    A loop timer may fire before its due time (up to the loop clock's resolution), so a firing that finds
    nothing late yet always re-arms the timer: the deadline, and the token limits, stay enforced.
    """

    __slots__ = ("_handle", "clock", "ctx", "deadline", "first_s", "got_first", "idle_s", "last", "loop")

    def __init__(self, ctx: RequestContext, loop: asyncio.AbstractEventLoop, first_s: float | None,
                 idle_s: float, clock: Callable[[], float] = monotonic) -> None:
        self.ctx = ctx
        self.loop = loop
        self.clock = clock
        self.first_s = first_s
        self.idle_s = idle_s
        self.deadline = ctx.deadline
        self.last = clock()
        self.got_first = False
        self._handle: asyncio.TimerHandle | None = None
        self._schedule(None if first_s is None else self.last + first_s)

    def _schedule(self, due: float | None) -> None:
        if self.deadline is not None and (due is None or self.deadline < due):
            due = self.deadline
        if due is not None:
            self._handle = self.loop.call_later(max(0.0, due - self.clock()), self._fire)
        else:
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        now = self.clock()
        if self.deadline is not None and now >= self.deadline:
            self.ctx.cancel("deadline", now)
            return
        if self.first_s is None:
            # Only the deadline is watched, and it is not passed yet: the timer fired early. Wait again.
            self._schedule(None)
            return
        due = self.last + (self.idle_s if self.got_first else self.first_s)
        if now >= due:
            self.ctx.cancel("upstream_timeout", now)
            return
        self._schedule(due)

    def watch_tokens(self, first_s: float) -> None:
        """From now on also watch the stream's tokens: the first within ``first_s``, then gaps of ``idle_s``."""
        self.stop()
        self.first_s = first_s
        self.last = self.clock()
        self._schedule(self.last + first_s)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
