"""parse_head: which request heads the native server serves, and which it hands to aiohttp."""

from __future__ import annotations

import pytest

from tokenyard.gateway.native.head import (
    MAX_FIELD_BYTES,
    MAX_HEADERS,
    Head,
    Malformed,
    TooLarge,
    head_end,
    oversized_lines,
    parse_head,
)

PATHS = frozenset((b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings"))
LIMIT = 16384


def head(first: str = "POST /v1/chat/completions HTTP/1.1", *headers: str) -> bytes:
    lines = [first, "Host: gw", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_plain_post_is_served_with_its_headers_and_length() -> None:
    parsed = parse_head(head("POST /v1/chat/completions HTTP/1.1", "Content-Length: 42",
                             "Authorization: Bearer k", "X-Request-Id: abc"), PATHS, LIMIT)
    assert isinstance(parsed, Head)
    assert parsed.path == "/v1/chat/completions"
    assert parsed.content_length == 42
    assert parsed.keep_alive
    assert parsed.headers["authorization"] == "Bearer k"
    assert parsed.headers["X-REQUEST-ID"] == "abc"
    assert (b"Authorization", b"Bearer k") in parsed.raw_headers


def test_workflow_hops_are_served_natively() -> None:
    raw = head("POST /v1/chat/completions HTTP/1.1", "Content-Length: 2", "X-Tokenyard-Workflow-Id: w1")
    parsed = parse_head(raw, PATHS, LIMIT)
    assert isinstance(parsed, Head) and parsed.headers["x-tokenyard-workflow-id"] == "w1"


def test_no_content_length_is_an_empty_body_and_connection_close_ends_keep_alive() -> None:
    parsed = parse_head(head("POST /v1/embeddings HTTP/1.1", "Connection: close"), PATHS, LIMIT)
    assert isinstance(parsed, Head)
    assert parsed.content_length == 0
    assert not parsed.keep_alive


@pytest.mark.parametrize("raw", [
    head("GET /v1/chat/completions HTTP/1.1"),  # another method
    head("POST /v1/models HTTP/1.1", "Content-Length: 2"),  # another path
    head("POST /v1/chat/completions?x=1 HTTP/1.1", "Content-Length: 2"),  # a query string
    head("POST /v1/chat/completions HTTP/1.0", "Content-Length: 2"),  # HTTP/1.0
    head("POST /v1/chat/completions HTTP/1.1", "Transfer-Encoding: chunked"),  # chunked body
    head("POST /v1/chat/completions HTTP/1.1", "Content-Length: 2", "Expect: 100-continue"),
    head("POST /v1/chat/completions HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket"),
    head("POST /v1/chat/completions HTTP/1.1", "Content-Length: 2", "x-tokenyard-defer: true"),  # batch
])
def test_unusual_heads_are_handed_to_aiohttp(raw: bytes) -> None:
    assert parse_head(raw, PATHS, LIMIT) is None


@pytest.mark.parametrize(("raw", "reason"), [
    (head("POST /v1/chat/completions HTTP/1.1", "Content-Length: -1"), "Content-Length"),
    (head("POST /v1/chat/completions HTTP/1.1", "Content-Length: 2", "Content-Length: 3"), "Duplicate"),
    (head("POST /v1/chat/completions HTTP/1.1", "Content-Length: 2", "Transfer-Encoding: chunked"),
     "Transfer-Encoding"),  # request smuggling
    (head("POST /v1/chat/completions HTTP/1.1", "Bad Header: x"), "header token"),
    (b"POST /v1/chat/completions HTTP/1.1\nHost: gw\n\n", "CRLF"),  # bare LF line ends
    (b"GET /healthz HTTP/1.1\nHost: gw\n\n", "CRLF"),  # whatever the path
    (b"HELLO THERE\r\n\r\n", "method"),
])
def test_heads_that_are_not_http_are_malformed_with_the_parsers_reason(raw: bytes, reason: str) -> None:
    parsed = parse_head(raw, PATHS, LIMIT)
    assert isinstance(parsed, Malformed) and reason in parsed.reason


def test_the_header_byte_limit_is_counted_as_the_http_guard_counts_it() -> None:
    headers = [f"X-H{i}: {'v' * 90}" for i in range(10)]
    raw = head("POST /v1/chat/completions HTTP/1.1", *headers)
    counted = sum(len(h.split(": ", 1)[0]) + len(h.split(": ", 1)[1]) + 4 for h in ["Host: gw", *headers])
    assert isinstance(parse_head(raw, PATHS, counted), Head)
    assert parse_head(raw, PATHS, counted - 1) is None


@pytest.mark.parametrize("request_line", ["POST /v1/chat/completions HTTP/1.1", "GET /v1/models HTTP/1.1",
                                          "POST /v1/chat/completions HTTP/1.0"])
def test_heads_over_aiohttps_limits_are_too_large_whatever_the_path(request_line: str) -> None:
    many = parse_head(head(request_line, "x-request-id: abc", *(f"X-H{i}: v" for i in range(MAX_HEADERS))),
                      PATHS, 10**6)
    assert isinstance(many, TooLarge) and "headers" in many.reason and many.request_id == "abc"
    for extra in ((), ("Expect: 100-continue",), ("Connection: Upgrade", "Upgrade: websocket")):
        long_line = parse_head(head(request_line, *extra, "X-Big: " + "a" * MAX_FIELD_BYTES), PATHS, 10**6)
        assert isinstance(long_line, TooLarge) and str(MAX_FIELD_BYTES) in long_line.reason
        assert long_line.request_id is None
    at_limit = head(request_line, "X-Big: " + "a" * (MAX_FIELD_BYTES - 7), *(f"X-H{i}: v" for i in range(126)))
    assert not isinstance(parse_head(at_limit, PATHS, 10**6), TooLarge)


def test_an_incomplete_head_is_checked_line_by_line() -> None:
    assert oversized_lines(b"POST / HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * 70_000) is not None
    assert oversized_lines(b"POST / HTTP/1.1\r\n" + b"X: v\r\n" * (MAX_HEADERS + 1)) is not None
    assert oversized_lines(b"POST / HTTP/1.1\r\n" + b"X: " + b"v" * 8000 + b"\r\n" * 2) is None


@pytest.mark.parametrize(("data", "end"), [
    (b"POST / HTTP/1.1\r\nHost: gw\r\n\r\nbody", 29),  # CRLF: just past the blank line, the body not included
    (b"POST / HTTP/1.1\nHost: gw\n\nbody", 26),  # bare LF: found too (the parser then refuses it, 400)
    (b"POST / HTTP/1.1\r\nHost: gw\r\n\n", 28),  # mixed line ends
    (b"POST / HTTP/1.1\nHost: gw\n\r\n", 27),
    (b"a\n\nb\r\n\r\n", 3),  # the first blank line wins, whichever kind
    (b"a\r\n\r\nb\n\n", 5),
    (b"POST / HTTP/1.1\r\nHost: gw\r\n", -1),  # incomplete: wait for more bytes
    (b"", -1),
    (b"\r\n\r", -1),
])
def test_head_end_finds_the_first_blank_line_however_lines_end(data: bytes, end: int) -> None:
    assert head_end(data) == end
    assert head_end(bytearray(data)) == end
