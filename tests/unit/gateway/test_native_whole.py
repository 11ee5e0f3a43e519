"""serialize_whole against aiohttp itself: for each kind of whole response the gateway sends, the bytes it builds
are the bytes aiohttp's prepare + write_eof write (the Date value aside); what it does not take, it leaves alone.

Rerun after an aiohttp upgrade: the native server's whole responses rely on this equality."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.native.whole import serialize_whole


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, data: Any) -> None:
        self.data += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.data += chunk

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _Protocol(BaseProtocol):
    # What BaseRequest reads of the native server's protocol: plain text, loopback.
    ssl_context = None
    peername = ("127.0.0.1", 50000)
    sockname = ("127.0.0.1", 8080)


async def _aiohttp_bytes(response: web.StreamResponse, close: bool) -> bytes:
    """What aiohttp writes for ``response`` to a ``POST`` (``close``: the client sent ``Connection: close``)."""
    loop = asyncio.get_running_loop()
    transport = _Transport()
    protocol = _Protocol(loop)
    protocol.connection_made(transport)
    headers = CIMultiDictProxy(CIMultiDict({"Connection": "close"} if close else {}))
    message = RawRequestMessage("POST", "/v1/chat/completions", HttpVersion11, headers, (), close, None, False,
                                False, URL.build(path="/v1/chat/completions", encoded=True))
    payload = StreamReader(protocol, 2**16, loop=loop)
    payload.feed_eof()
    task = asyncio.current_task()
    assert task is not None
    request = web.BaseRequest(message, payload, protocol, StreamWriter(protocol, loop), task, loop)  # type: ignore[arg-type]
    await response.prepare(request)
    await response.write_eof()
    return bytes(transport.data)


def _undated(data: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*\r\n", b"\r\nDate: -\r\n", data)


def _json() -> web.Response:  # relay_whole's answer
    return web.Response(status=200, body=b'{"id":"x","choices":[]}',
                        headers={"x-request-id": "r-1", "x-tokenyard-class": "standard", "x-tokenyard-backend": "b:1",
                                 "x-tokenyard-queue-ms": "0", "Content-Type": "application/json"})


KINDS: dict[str, Callable[[], web.Response]] = {
    "completion": _json,
    "openai error 400": lambda: GatewayError(400, "bad", "invalid_value").response(),
    "error with Retry-After": lambda: GatewayError(429, "slow down", "rate_limited",
                                                   headers={"Retry-After": "1"}).response(),
    "text": lambda: web.Response(text="hello", content_type="text/plain"),
    "bytearray body": lambda: web.Response(body=bytearray(b"abc"), content_type="application/json"),
    "empty body": lambda: web.Response(status=200),
    "no content type": lambda: web.Response(status=502, body=b"upstream said no"),
    "status without a reason phrase": lambda: web.Response(status=499, body=b"{}", content_type="application/json"),
    "custom reason": lambda: web.Response(status=200, reason="Fine", body=b"{}"),
}


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_the_bytes_are_aiohttps(kind: str, close: bool) -> None:
    ours = serialize_whole(KINDS[kind](), keep_alive=not close)
    assert ours is not None
    assert _undated(ours) == _undated(await _aiohttp_bytes(KINDS[kind](), close))


def _with_cookie() -> web.Response:
    response = _json()
    response.set_cookie("a", "b")
    return response


def _compressed() -> web.Response:
    response = _json()
    response.enable_compression()
    return response


def _chunked() -> web.Response:
    response = web.Response(body=b"x")
    response.enable_chunked_encoding()
    return response


def _force_closed() -> web.Response:
    response = _json()
    response.force_close()
    return response


LEFT_TO_AIOHTTP: dict[str, Callable[[], web.StreamResponse]] = {
    "a stream": lambda: web.StreamResponse(status=200),
    "204": lambda: web.Response(status=204),
    "304": lambda: web.Response(status=304),
    "101": lambda: web.Response(status=101),
    "cookies": _with_cookie,
    "compression": _compressed,
    "chunked": _chunked,
    "a Payload body": lambda: web.Response(body="text payload"),
    "Content-Length set by hand": lambda: web.Response(body=b"abc", headers={"Content-Length": "3"}),
}


@pytest.mark.parametrize("kind", list(LEFT_TO_AIOHTTP))
def test_what_it_does_not_take_is_left_untouched(kind: str) -> None:
    response = LEFT_TO_AIOHTTP[kind]()
    before = list(response.headers.items())
    assert serialize_whole(response, keep_alive=True) is None
    assert list(response.headers.items()) == before


async def test_a_prepared_response_is_left_to_aiohttp() -> None:
    response = _json()
    await _aiohttp_bytes(response, close=False)
    assert serialize_whole(response, keep_alive=True) is None


def test_a_header_with_a_line_break_is_refused_as_aiohttp_refuses_it() -> None:
    response = web.Response(body=b"{}", headers={"x-a": "1\r\nInjected: yes"})
    with pytest.raises(ValueError):
        serialize_whole(response, keep_alive=True)


async def test_force_close_is_kept_by_the_caller() -> None:
    # The server passes keep_alive = response.keep_alive is not False and the client's wish; a forced close ends
    # up as "Connection: close", as with aiohttp.
    response = _force_closed()
    ours = serialize_whole(response, keep_alive=response.keep_alive is not False)
    assert ours is not None and b"\r\nConnection: close\r\n" in ours
    assert _undated(ours) == _undated(await _aiohttp_bytes(_force_closed(), close=False))
