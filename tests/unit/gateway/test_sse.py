"""SSE framing: ``id:`` before every event, whatever the chunking; event inspection."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from tokenyard.gateway.sse import SseFramer, Usage, find_usage, has_content, scan_events

EVENTS = [b'data: {"delta":{"role":"assistant","content":""}}\n\n', b'data: {"delta":{"content":"a"}}\n\n',
          b'data: {"delta":{"content":"b"}}\n\n', b"data: [DONE]\n\n"]
STREAM = b"".join(EVENTS)
EXPECTED = b"".join(b"id: %d\n" % (i + 1) + e for i, e in enumerate(EVENTS))


def test_whole_stream_in_one_chunk() -> None:
    out, events = SseFramer().feed(STREAM)
    assert out == EXPECTED
    assert events == EVENTS


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True, max_size=12))
def test_any_chunking_gives_the_same_bytes_and_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    framer = SseFramer()
    out = b""
    events: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        piece, done = framer.feed(STREAM[start:end])
        out += piece
        events += done
    assert out == EXPECTED
    assert events == EVENTS
    assert framer.at_event_start


def test_error_event_closes_an_open_event_and_carries_an_id() -> None:
    framer = SseFramer()
    framer.feed(b'data: {"delta":{"content":"a"}}\n\ndata: {"partial')
    event = framer.error_event("gone", "upstream_interrupted")
    assert event.startswith(b"\n\nid: 3\nevent: error\ndata: {")
    assert event.endswith(b"\n\n") and b'"code":"upstream_interrupted"' in event


def test_content_detection() -> None:
    assert has_content(b'data: {"choices":[{"delta":{"content":"x"}}]}')
    assert not has_content(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}')
    assert has_content(b'data: {"choices":[{"text":" y"}]}')
    assert not has_content(b'data: {"choices":[{"text":""}]}')
    assert not has_content(b"data: [DONE]")


def test_usage_found_only_when_present_and_not_null() -> None:
    assert find_usage(b'data: {"usage":null}') is None
    assert find_usage(b'{"id":"x"}') is None
    usage = find_usage(b'{"usage": {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13}}')
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (4, 9)
    assert find_usage(b'data: {"usage":{"broken"') is None


def test_scan_events_counts_text_finds_usage_and_done() -> None:
    events = [
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n',
        b'data: {"choices":[{"text":"there"}]}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    ]
    assert scan_events(events, None) == (False, 2, Usage(prompt_tokens=3, completion_tokens=2))
    known = Usage(prompt_tokens=1, completion_tokens=1)
    assert scan_events([*events[3:], b"data: [DONE]\n\n"], known) == (True, 0, known)  # the first usage is kept
