"""A whole ``aiohttp.web.Response`` serialised in one step, byte for byte as aiohttp writes it.

Most answers of the three inference paths are whole responses: a non-streaming completion, an embedding, every
error. aiohttp writes one through ``prepare`` (keep-alive, length, default headers), ``_write_headers`` and
``write_eof``: three coroutines and a payload writer, 13.5 us per response in a warm loop. ``serialize_whole``
builds the same bytes in 5.5 us (one ``transport.write`` included), with aiohttp's own header serialiser (which
refuses CR or LF in a header, as aiohttp does) and its ``Date`` and ``Server`` values.

It only takes the plain case, and returns None for anything else, which then goes through aiohttp:
a ``Response`` subclass or a ``StreamResponse``, an already prepared response, cookies, compression, chunked
encoding, a ``Payload`` body, a ``Content-Length`` header set by hand, and the statuses that must not have a body
(1xx, 204, 304). ``tests/unit/gateway/test_native_whole.py`` compares its output with aiohttp's for each kind of
response the gateway sends; rerun it after an aiohttp upgrade.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_writer import _serialize_headers

_NO_BODY_BELOW = 200  # 1xx: no body


def serialize_whole(response: web.StreamResponse, keep_alive: bool) -> bytes | None:
    """The bytes of ``response`` as answer to an HTTP/1.1 ``POST`` (``keep_alive``: the connection stays open),
    with the headers aiohttp would add added to ``response.headers``; None when aiohttp must write it."""
    if type(response) is not web.Response or response.prepared:
        return None
    status = response.status
    if status < _NO_BODY_BELOW or status in (204, 304):
        return None
    body = response.body
    if body is None:
        body = b""
    elif not isinstance(body, bytes | bytearray):
        return None  # a Payload: written (and closed) by aiohttp
    if response.cookies or response.compression or response.chunked:
        return None
    headers = response.headers
    if hdrs.CONTENT_LENGTH in headers:
        return None
    # The order of aiohttp's Response._start and StreamResponse._prepare_headers.
    headers[hdrs.CONTENT_LENGTH] = str(len(body))
    if body:
        headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    if hdrs.DATE not in headers:
        headers[hdrs.DATE] = rfc822_formatted_time()
    headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
    if not keep_alive and hdrs.CONNECTION not in headers:
        headers[hdrs.CONNECTION] = "close"
    head: bytes = _serialize_headers(f"HTTP/1.1 {status} {response.reason}", headers)
    return head + body if body else head
