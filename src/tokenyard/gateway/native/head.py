"""Parse one HTTP/1.1 request head and decide whether the native server may serve it.

Pure: bytes in, a ``Head`` (or None: hand the connection to aiohttp) out. httptools does the parsing, so the
same strict rules as aiohttp's own parser apply (invalid characters, smuggling tricks such as a
``Content-Length`` next to ``Transfer-Encoding``); anything it refuses is handed over and aiohttp answers it.
"""

from __future__ import annotations

from collections.abc import Collection

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

MAX_FIELD_BYTES = 8190  # aiohttp's per-line limit: a longer header line is refused (431) here
MAX_HEADERS = 128  # aiohttp's limit on the number of headers: more is refused (431) here
# Headers whose requests take a path through aiohttp's middlewares (batch defer) or need its protocol
# (Expect: 100-continue, upgrades, chunked bodies): such a request is handed over.
_HAND_OFF_HEADERS = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"x-tokenyard-defer"))
# The headers parse_head looks at, by lower-case name: one dict lookup per header instead of several compares.
_HAND_OFF, _LENGTH, _CONNECTION = 1, 2, 3
_SPECIAL = {**dict.fromkeys(_HAND_OFF_HEADERS, _HAND_OFF), b"content-length": _LENGTH, b"connection": _CONNECTION}


class Head:
    """A request head the native server serves: path, headers, body length and keep-alive."""

    __slots__ = ("content_length", "headers", "keep_alive", "path", "raw_headers")

    def __init__(self, path: str, raw_headers: list[tuple[bytes, bytes]], headers: list[tuple[str, str]],
                 content_length: int, keep_alive: bool) -> None:
        """``headers`` are ``raw_headers`` decoded (UTF-8 with surrogate escapes, as aiohttp decodes them)."""
        self.path = path
        self.raw_headers = tuple(raw_headers)
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(headers))


class _Collector:
    """httptools callbacks for one head (a fresh parser per head: 1 µs, and no state carried across)."""

    __slots__ = ("headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))


def head_end(buf: bytes | bytearray) -> int:
    """The index just past the head's blank line, or -1 while the head is incomplete.

    Line ends may be CRLF or bare LF (the parser then refuses the head: a 400, never a wait for more bytes). Two
    ``find`` calls instead of a regular expression: a tenth of the time on a typical head.
    """
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n")
    if lf != -1 and (crlf == -1 or lf < crlf):
        return lf + 2
    return -1 if crlf == -1 else crlf + 3


class Malformed:
    """A head that is not HTTP/1.x at all (llhttp, the parser of httptools and of aiohttp, refuses it)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class TooLarge:
    """A head over aiohttp's limits (a header line over ``MAX_FIELD_BYTES``, more than ``MAX_HEADERS`` headers):
    answered 431 in OpenAI's format by the native server, where aiohttp's parser would answer a plain-text 400.
    ``request_id`` is the client's ``x-request-id`` when one was read (None otherwise)."""

    __slots__ = ("reason", "request_id")

    def __init__(self, reason: str, request_id: str | None = None) -> None:
        self.reason = reason
        self.request_id = request_id


def oversized_lines(head: bytes | bytearray) -> TooLarge | None:
    """``TooLarge`` when the header lines of ``head`` (complete or not) break aiohttp's limits, else None."""
    lines = head.split(b"\n")[1:]  # the request line has aiohttp's own limit (a 400 there)
    if len(lines) > MAX_HEADERS + 1:  # the blank line (or the incomplete last line) is one more
        return TooLarge(f"more than {MAX_HEADERS} request headers")
    if any(len(line.rstrip(b"\r")) > MAX_FIELD_BYTES for line in lines):
        return TooLarge(f"a request header line is longer than {MAX_FIELD_BYTES} bytes")
    return None


def _client_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    value = next((v for n, v in headers if n.lower() == b"x-request-id"), None)
    return value.decode("ascii", "replace") if value is not None else None


def _long_line(headers: list[tuple[bytes, bytes]]) -> TooLarge | None:
    """``TooLarge`` when a header line (name, ': ', value) is over ``MAX_FIELD_BYTES``, else None."""
    for name, value in headers:
        if len(name) + len(value) + 2 > MAX_FIELD_BYTES:
            return TooLarge(f"a request header line is longer than {MAX_FIELD_BYTES} bytes", _client_id(headers))
    return None


def parse_head(head: bytes, paths: Collection[bytes], max_header_bytes: int
               ) -> Head | Malformed | TooLarge | None:
    """The head (request line through the blank line) if it is a plain ``POST`` on one of ``paths``.

    ``Malformed``: the parser refuses it (answered 400 in OpenAI's format, then the connection closes).
    ``TooLarge``: a header line or the number of headers is over aiohttp's limits, whatever the method or path
    (answered 431 in OpenAI's format, then the connection closes). None means "hand it over": another method or
    path, HTTP/1.0, a query string, an upgrade, a header in ``_HAND_OFF_HEADERS``, an invalid ``Content-Length``,
    or more header bytes than ``max_header_bytes`` (counted as the HTTP guard counts them; it answers 431 there).
    """
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        return _long_line(collector.headers)
    except httptools.HttpParserError as exc:
        return Malformed(str(exc) or type(exc).__name__)
    headers = collector.headers
    if len(headers) > MAX_HEADERS:
        return TooLarge(f"more than {MAX_HEADERS} request headers", _client_id(headers))
    if parser.get_method() != b"POST" or collector.url not in paths or parser.get_http_version() != "1.1":
        return _long_line(headers)  # handed over, unless aiohttp's parser would refuse it in plain text
    length = 0
    total = 0
    keep_alive = True
    decoded = []
    special = _SPECIAL
    for name, value in headers:
        field = len(name) + len(value)
        if field + 2 > MAX_FIELD_BYTES:  # checked in this loop: the inference path walks its headers once
            return _long_line(headers)
        total += field + 4
        kind = special.get(name.lower())
        if kind is not None:
            if kind == _HAND_OFF:
                return _long_line(headers)
            if kind == _LENGTH:
                if not value.isdigit():  # llhttp refuses a second Content-Length itself
                    return _long_line(headers)
                length = int(value)
            elif b"close" in value.lower():
                keep_alive = False  # Connection: HTTP/1.1 is persistent unless the client says close
        decoded.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))
    if total > max_header_bytes:
        return None
    return Head(collector.url.decode("ascii"), headers, decoded, length, keep_alive)

