"""``H1Client``: pooled keep-alive HTTP/1.1 connections to the upstreams, one request at a time per connection.

The gateway's hot path (``Router``) sends every model, retrieval and tool request through it; health probes,
load scraping and ``/models`` listing stay on aiohttp (not per request). Idle connections are reused newest first
(warm ones stay warm, surplus ones age out) and dropped after ``idle_timeout_s``: shorter than the keep-alive
timeout of the common model servers (uvicorn, which vLLM and SGLang use, closes idle connections after 5 s), so
a request is rarely written onto a connection the server is closing at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from time import monotonic
from urllib.parse import urlsplit

from tokenyard.upstream.h1_connection import H1Connection, H1Response

DEFAULT_IDLE_TIMEOUT_S = 4.0
MAX_IDLE_PER_ORIGIN = 512
_MAX_CACHED_URLS = 4096
_COPY_LIMIT = 1 << 16
# Framing headers are the client's own business: a caller's copy would duplicate or contradict them.
_OWN_HEADERS = frozenset(("host", "content-length", "transfer-encoding", "connection"))


class InvalidUpstreamRequest(ValueError):
    """A header name or value that would break the request framing (CR or LF), or a URL that is not http(s)."""


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    host_header: str
    path: str


class H1Client:
    """``await client.post(url, body, headers)`` -> ``H1Response`` once the response head is in.

    A cancellation before the head arrives closes the connection (the upstream sees the disconnect). Connect
    failures raise ``OSError`` (or ``TimeoutError`` after ``connect_timeout_s``); a connection that ends before
    the head raises ``aiohttp.ServerDisconnectedError``.
    """

    def __init__(self, connect_timeout_s: float, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                 max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_idle_per_origin = max_idle_per_origin
        self._idle: dict[tuple[str, str, int], deque[H1Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._busy: set[H1Connection] = set()
        self._ssl: ssl.SSLContext | None = None
        self.connections_opened = 0

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> H1Response:
        target = self._targets.get(url) or self._target(url)
        head = _request_head(target, len(body), headers)
        conn = self._take_idle(target.origin)
        connect_s = 0.0
        if conn is None:
            started = monotonic()
            conn = await self._connect(target.origin)
            connect_s = monotonic() - started
        self._busy.add(conn)
        try:
            if len(body) < _COPY_LIMIT:
                answered = conn.send(head + body)
            else:  # two writes instead of one concatenation: no copy of a large body
                answered = conn.send(head)
                assert conn.transport is not None
                conn.transport.write(body)
            response = await answered
            response.connect_s = connect_s
            return response
        except BaseException:
            conn.response = None
            conn.close()
            raise

    async def close(self) -> None:
        """Close every connection, idle or busy."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    # ----- connections -----

    def _take_idle(self, origin: tuple[str, str, int]) -> H1Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        expired_before = monotonic() - self.idle_timeout_s
        while idle and idle[0].idle_since < expired_before:  # the oldest are on the left
            idle.popleft().close()
        while idle:
            conn = idle.pop()
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> H1Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if scheme == "https" else None

        def on_idle(conn: H1Connection) -> None:
            self._busy.discard(conn)
            idle = self._idle.setdefault(origin, deque())
            if len(idle) >= self.max_idle_per_origin:
                conn.close()
            else:
                idle.append(conn)

        def on_lost(conn: H1Connection) -> None:
            self._busy.discard(conn)
            idle = self._idle.get(origin)
            if idle is not None and conn.response is None:
                with contextlib.suppress(ValueError):  # not idle: nothing to remove
                    idle.remove(conn)

        async with asyncio.timeout(self.connect_timeout_s):
            _, conn = await loop.create_connection(lambda: H1Connection(on_idle, on_lost), host, port, ssl=context,
                                                   server_hostname=host if context is not None else None)
        self.connections_opened += 1
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidUpstreamRequest(f"not an http(s) URL: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        target = _Target((parts.scheme, host, port), host_header, path)
        if len(self._targets) >= _MAX_CACHED_URLS:
            self._targets.clear()
        self._targets[url] = target
        return target


def _request_head(target: _Target, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\nContent-Length: {length}\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise InvalidUpstreamRequest(f"header {name!r} would break the request framing")
        if name.lower() not in _OWN_HEADERS:
            lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    # Header values the gateway took from a client were decoded by aiohttp as UTF-8 with surrogateescape:
    # encoding them the same way sends the client's bytes unchanged.
    return "".join(lines).encode("utf-8", "surrogateescape")
