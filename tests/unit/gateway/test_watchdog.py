"""``Watchdog`` on a hand-driven timer and a hand-set clock: a timer that fires before its due time (asyncio's
loop timers may, by up to the clock's resolution) re-arms, so the deadline is still enforced on non-streaming
requests, and the first-token limit on streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tokenyard.gateway.context import CHAT, RequestContext
from tokenyard.gateway.watchdog import Watchdog

START = 100.0
EARLY = 0.0005  # how early the loop ran the timer (0.1-0.75 ms was seen with uvloop)


class Handle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """``call_later`` only, on the hand-set clock ``now``; ``fire(early)`` runs the next timer ``early`` seconds
    before it is due, as a real loop may."""

    def __init__(self) -> None:
        self.now = START
        self.timers: list[Handle] = []

    def call_later(self, delay: float, callback: Callable[[], object], *args: Any) -> Handle:
        handle = Handle(self.now + delay, callback)
        self.timers.append(handle)
        return handle

    def pending(self) -> list[Handle]:
        return [h for h in self.timers if not h.cancelled]

    def fire(self, early: float = 0.0) -> None:
        handle = min(self.pending(), key=lambda h: h.when)
        self.timers.remove(handle)
        self.now = max(self.now, handle.when - early)
        handle.callback()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def ctx() -> Iterator[RequestContext]:
    request: Any = None
    context = RequestContext(request, CHAT, START)
    aloop = asyncio.new_event_loop()
    try:
        context.task = aloop.create_task(asyncio.sleep(60))
        yield context
    finally:
        assert context.task is not None
        context.task.cancel()
        aloop.run_until_complete(asyncio.gather(context.task, return_exceptions=True))
        aloop.close()


def watch(ctx: RequestContext, loop: Loop, first_s: float | None, deadline_s: float | None) -> Watchdog:
    ctx.deadline = None if deadline_s is None else START + deadline_s
    loop_any: Any = loop
    return Watchdog(ctx, loop_any, first_s, 30.0, clock=lambda: loop.now)


def test_non_streaming_deadline_holds_when_the_timer_fires_early(ctx: RequestContext, loop: Loop) -> None:
    watchdog = watch(ctx, loop, None, 0.020)
    loop.fire(early=EARLY)
    assert ctx.abort_reason == ""  # not late yet: no cancel ...
    assert len(loop.pending()) == 1  # ... but the deadline is still watched
    loop.fire()
    assert ctx.abort_reason == "deadline" and ctx.abort_started == pytest.approx(START + 0.020)
    assert not loop.pending()
    watchdog.stop()


def test_non_streaming_deadline_on_time(ctx: RequestContext, loop: Loop) -> None:
    watch(ctx, loop, None, 0.020)
    loop.fire()
    assert ctx.abort_reason == "deadline" and not loop.pending()


def test_no_deadline_and_no_first_token_limit_sets_no_timer(ctx: RequestContext, loop: Loop) -> None:
    watchdog = watch(ctx, loop, None, None)
    assert not loop.pending()
    watchdog.stop()


def test_stream_first_token_limit_holds_when_the_timer_fires_early(ctx: RequestContext, loop: Loop) -> None:
    watch(ctx, loop, 1.0, None)
    loop.fire(early=EARLY)
    assert ctx.abort_reason == "" and len(loop.pending()) == 1
    loop.fire()
    assert ctx.abort_reason == "upstream_timeout"


def test_stop_cancels_the_timer(ctx: RequestContext, loop: Loop) -> None:
    watchdog = watch(ctx, loop, None, 0.020)
    watchdog.stop()
    assert not loop.pending()
