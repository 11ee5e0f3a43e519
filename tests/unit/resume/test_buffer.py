"""The replay buffer of a resumable stream: event boundaries across chunks, bounds, gaps, the final event."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenyard.gateway.resume import EventBuffer, ResumeGap, event_id, is_final
from tokenyard.gateway.sse import SseFramer


def framed(n: int) -> bytes:
    return b"".join(b'id: %d\ndata: {"choices":[{"delta":{"content":"t%d"}}]}\n\n' % (i, i) for i in range(1, n + 1))


def test_events_are_kept_whole_whatever_the_chunking() -> None:
    buffer = EventBuffer(100, 1 << 20)
    data = framed(5)
    done = []
    for i in range(0, len(data), 7):
        done += buffer.feed(data[i:i + 7])
    assert [event_id(e) for e in done] == [1, 2, 3, 4, 5]
    assert b"".join(done) == data
    assert buffer.after(2) == done[2:]
    assert buffer.after(5) == []
    assert buffer.last_id == 5 and not buffer.ended


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=50))
def test_the_framer_output_round_trips_through_the_buffer(cuts: list[int]) -> None:
    upstream = b"".join(b'data: {"choices":[{"delta":{"content":"w%d"}}]}\n\n' % i for i in range(12))
    upstream += b"data: [DONE]\n\n"
    framer = SseFramer()
    buffer = EventBuffer(1000, 1 << 20)
    out = []
    pos = 0
    for cut in cuts * 20:
        if pos >= len(upstream):
            break
        chunk, _ = framer.feed(upstream[pos:pos + cut])
        out.append(chunk)
        buffer.feed(chunk)
        pos += cut
    if pos < len(upstream):
        chunk, _ = framer.feed(upstream[pos:])
        out.append(chunk)
        buffer.feed(chunk)
    assert b"".join(buffer.after(0)) == b"".join(out)
    assert buffer.ended and buffer.last_id == 13


def test_bounds_drop_the_oldest_and_a_resume_behind_them_is_a_gap() -> None:
    buffer = EventBuffer(3, 1 << 20)
    buffer.feed(framed(6))
    assert buffer.oldest_id == 4 and buffer.dropped == 3
    assert [event_id(e) for e in buffer.after(3)] == [4, 5, 6]
    with pytest.raises(ResumeGap) as info:
        buffer.after(1)
    assert (info.value.last_seen, info.value.oldest) == (1, 4)


def test_the_byte_bound_keeps_at_least_the_newest_event() -> None:
    buffer = EventBuffer(100, 10)
    buffer.feed(framed(3))
    assert [event_id(e) for e in buffer.after(2)] == [3]
    with pytest.raises(ResumeGap):
        buffer.after(0)


def test_final_events_and_comments() -> None:
    assert is_final(b"id: 9\ndata: [DONE]\n\n")
    assert is_final(b'id: 9\nevent: error\ndata: {"error":{}}\n\n')
    assert not is_final(b'id: 9\ndata: {"x":"[DONE]"}\n\n')
    buffer = EventBuffer(10, 1000)
    assert buffer.feed(b": keep-alive\n\n") == []  # comments are not part of the replay
    assert event_id(b"data: x\n\n") == -1
    assert event_id(b"id: x\n\n") == -1
