"""``HeartbeatChunks``: a keep-alive comment after each silent interval, only between events, and no timer left
behind once the body ends."""

from __future__ import annotations

import asyncio
from typing import Any

from tokenyard.gateway.heartbeat import KEEP_ALIVE, HeartbeatChunks
from tokenyard.upstream.body import BodyStream


class Recorder:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.written.append(data)


def _nothing() -> None:
    return None


async def test_silence_gets_heartbeats_and_data_passes_through() -> None:
    body = BodyStream(_nothing, _nothing)
    resp = Recorder()
    resp_any: Any = resp
    chunks = HeartbeatChunks(body, resp_any, lambda: True, 0.05)

    async def produce() -> None:
        await asyncio.sleep(0.2)  # ~4 intervals of silence
        body.feed(b"data: 1\n\n")
        body.feed_eof()

    producer = asyncio.create_task(produce())
    got = [chunk async for chunk in chunks]
    await producer
    assert got == [b"data: 1\n\n"]
    assert 2 <= chunks.sent <= 5 and resp.written == [KEEP_ALIVE] * chunks.sent
    assert chunks._timer is None  # ended with the body


async def test_no_heartbeat_inside_an_event_or_while_data_flows() -> None:
    body = BodyStream(_nothing, _nothing)
    resp = Recorder()
    resp_any: Any = resp
    inside_event = HeartbeatChunks(body, resp_any, lambda: False, 0.02)

    async def produce() -> None:
        await asyncio.sleep(0.1)
        body.feed_eof()

    producer = asyncio.create_task(produce())
    assert [chunk async for chunk in inside_event] == []
    await producer
    assert resp.written == [] and inside_event.sent == 0

    flowing = BodyStream(_nothing, _nothing)
    busy = HeartbeatChunks(flowing, resp_any, lambda: True, 0.5)

    async def fast() -> None:
        for _ in range(20):
            flowing.feed(b"x")
            await asyncio.sleep(0.005)
        flowing.feed_eof()

    producer = asyncio.create_task(fast())
    assert len(b"".join([chunk async for chunk in busy])) == 20
    await producer
    assert busy.sent == 0


async def test_interval_zero_is_plain_reading() -> None:
    body = BodyStream(_nothing, _nothing)
    body.feed(b"a")
    body.feed_eof()
    chunks = HeartbeatChunks(body, None, lambda: True, 0.0)
    assert [c async for c in chunks] == [b"a"] and chunks._timer is None
