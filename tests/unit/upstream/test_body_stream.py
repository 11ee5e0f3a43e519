"""``BodyStream`` without I/O: ordering, end, errors, and flow control (pause above the high-water mark)."""

from __future__ import annotations

import asyncio

import pytest

from tokenyard.upstream.body import HIGH_WATER, BodyStream


class Switch:
    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pause(self) -> None:
        self.paused += 1

    def resume(self) -> None:
        self.resumed += 1


async def test_readany_returns_everything_buffered_then_the_end() -> None:
    body = BodyStream(Switch().pause, Switch().resume)
    body.feed(b"a")
    body.feed(b"b")
    assert await body.readany() == b"ab"
    waiting = asyncio.create_task(body.readany())
    await asyncio.sleep(0)
    assert not waiting.done()
    body.feed(b"c")
    assert await waiting == b"c"
    body.feed_eof()
    assert await body.readany() == b""
    assert body.is_eof() and body.total_bytes == 3


async def test_an_error_comes_after_the_data_already_buffered() -> None:
    body = BodyStream(Switch().pause, Switch().resume)
    body.feed(b"part")
    body.fail(ConnectionError("cut"))
    assert await body.readany() == b"part"
    with pytest.raises(ConnectionError):
        await body.readany()


async def test_a_failure_after_the_end_is_ignored() -> None:
    body = BodyStream(Switch().pause, Switch().resume)
    body.feed(b"all")
    body.feed_eof()
    body.fail(ConnectionError("late"))
    assert await body.read() == b"all"


async def test_reading_pauses_above_the_high_water_mark_and_resumes_when_drained() -> None:
    switch = Switch()
    body = BodyStream(switch.pause, switch.resume)
    body.feed(b"x" * HIGH_WATER)
    assert switch.paused == 0
    body.feed(b"x")
    body.feed(b"x")
    assert switch.paused == 1  # once, not per chunk
    assert len(await body.readany()) == HIGH_WATER + 2
    assert switch.resumed == 1


async def test_wait_readable_does_not_consume() -> None:
    body = BodyStream(Switch().pause, Switch().resume)
    waiter = asyncio.create_task(body.wait_readable())
    await asyncio.sleep(0)
    body.feed(b"first")
    await waiter
    assert await body.readany() == b"first"


async def test_interrupt_wakes_the_reader_without_data_once() -> None:
    body = BodyStream(Switch().pause, Switch().resume)
    reader = asyncio.create_task(body.next_chunk())
    await asyncio.sleep(0)
    body.interrupt()
    assert await reader is None
    body.feed(b"data")
    assert await body.next_chunk() == b"data"
    body.interrupt()  # while nothing waits: the next read with data buffered still returns the data
    body.feed(b"more")
    assert await body.next_chunk() == b"more"
    body.feed_eof()
    assert await body.next_chunk() == b""
