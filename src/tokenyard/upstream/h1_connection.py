"""One HTTP/1.1 keep-alive connection to an upstream, as an asyncio ``Protocol`` parsed by ``httptools``.

Why not aiohttp's client: the gateway's hot path sends one POST and relays one answer per request, and
aiohttp's general-purpose client (request objects, tracing hooks, cookie and redirect handling, URL objects) cost
about a fifth of the gateway's CPU per request. This is the approach ARCHITECTURE.md measured (Protocols +
httptools), kept to what the gateway needs: one request at a time per connection, ``Content-Length`` request
bodies, responses framed by ``Content-Length``, chunked encoding or the end of the connection.

Errors keep aiohttp's exception types, so every caller handles them as before: ``ServerDisconnectedError``
when the connection ends before the response head, ``ClientPayloadError`` when the body is cut off or malformed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic
from typing import cast

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from tokenyard.upstream.attribution import TcpInfo, tcp_info
from tokenyard.upstream.body import BodyStream

_NO_BODY_STATUSES = frozenset((204, 304))
# TCP_INFO is read from the kernel at most this often per connection (see H1Response.tcp_sample).
TCP_SAMPLE_INTERVAL_S = 0.05


class H1Response:
    """The answer to one upstream request: ``status``, ``headers``, ``content`` (a ``BodyStream``), and the
    connection facts the latency attribution reads (``connect_s``: 0 on a reused connection, ``socket``).

    The caller must end it with ``release()`` (the connection goes back to the pool when the body was read to
    its end and the server keeps it alive; otherwise it is closed) or ``close()`` (closed at once, never
    reused: how an abort reaches the model server).
    """

    __slots__ = ("_body", "_conn", "connect_s", "content", "headers", "status")

    def __init__(self, conn: H1Connection, status: int, headers: CIMultiDictProxy[str], content: BodyStream) -> None:
        self._conn = conn
        self._body: bytes | None = None
        self.status = status
        self.headers = headers
        self.content = content
        self.connect_s = 0.0  # set by the pool when this request opened the connection

    def tcp_sample(self, now: float) -> tuple[TcpInfo | None, int]:
        """The connection's ``TCP_INFO`` at the end of this answer (``now``, ``time.monotonic()``), and the
        segments retransmitted since the previous sample on this connection.

        The kernel is asked (one ``getsockopt``) only when the connection's last sample is at least
        ``TCP_SAMPLE_INTERVAL_S`` old; otherwise the last sample stands (a smoothed RTT moves slowly). Read once per
        request (through uvloop's socket stand-in: a socket object, a ``getsockname`` and a ``getsockopt`` per
        call), it cost the gateway about 24 us of CPU per request (docs/benchmarks.md, sixth session). A connection
        carries one request at a time, so an answer that took longer than the interval always gets a fresh
        sample of its own, and with it every retransmission made while it was answered (a retransmission timeout
        is at least 200 ms on Linux). Only a fast retransmit or tail-loss probe within a shorter answer can be
        counted on the next sampled request of the same connection instead; the totals stay exact.
        """
        conn = self._conn
        if conn.sock is not None and now - conn.sampled_at >= TCP_SAMPLE_INTERVAL_S:
            conn.sampled_at = now
            fresh = tcp_info(conn.sock)
            if fresh is not None:
                conn.last_tcp = fresh
        info = conn.last_tcp
        if info is None:
            return None, 0
        retransmits = max(0, info.total_retrans - conn.retrans_seen)
        conn.retrans_seen = info.total_retrans
        return info, retransmits

    @property
    def closed(self) -> bool:
        """Released, closed, or the connection is gone."""
        return self._conn.response is not self or self._conn.lost

    async def read(self) -> bytes:
        """The whole body; read once, then the same bytes again (the router reads a non-streaming answer
        before it is relayed, so a death mid-body can still be retried)."""
        if self._body is None:
            self._body = await self.content.read()
        return self._body

    def release(self) -> None:
        """Done with the answer: reuse the connection when it is clean, else close it."""
        conn = self._conn
        if conn.response is not self:
            return
        conn.response = None
        if self.content.is_eof() and conn.keep_alive and not conn.lost:
            conn.idle()
        else:
            conn.close()

    def close(self) -> None:
        """Close the connection now (an abort): the upstream sees the disconnect at once."""
        conn = self._conn
        if conn.response is not self:
            return
        conn.response = None
        conn.close()


class H1Connection(asyncio.Protocol):
    """The protocol of one upstream connection; ``send`` starts a request, ``head`` resolves to its response."""

    def __init__(self, on_idle: Callable[[H1Connection], None], on_lost: Callable[[H1Connection], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.sock: object | None = None  # for TCP_INFO (latency attribution)
        self.retrans_seen = 0  # the socket's total retransmits when the previous request ended
        # The latest sample; the last one is read just before we close the connection (the fd may be reused after).
        self.last_tcp: TcpInfo | None = None
        self.sampled_at = float("-inf")
        self._on_idle = on_idle
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[H1Response] | None = None
        self._header_list: list[tuple[str, str]] = []
        self._body: BodyStream | None = None
        self._message_done = True
        self._eof_framed = False  # the body ends with the connection (no length, not chunked)
        self.response: H1Response | None = None  # the answer being read (None when idle)
        self.keep_alive = False
        self.lost = False
        self.idle_since = monotonic()

    # ----- driving a request -----

    def send(self, data: bytes) -> asyncio.Future[H1Response]:
        """Write one whole request; the future resolves when the response head is in."""
        assert self.transport is not None and self._message_done
        self._message_done = False
        self._header_list = []
        self._body = None
        self._eof_framed = False
        self.keep_alive = False
        self._head = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._head

    def idle(self) -> None:
        self.idle_since = monotonic()
        self._on_idle(self)

    def close(self) -> None:
        if self.sock is not None:
            self.last_tcp = tcp_info(self.sock) or self.last_tcp
            self.sock = None
        if self.transport is not None:
            self.transport.close()
        self.lost = True

    # ----- asyncio.Protocol -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        if self._message_done:
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(aiohttp.ClientPayloadError(f"malformed upstream response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.transport = None
        self.sock = None  # its descriptor is closed and may belong to another socket soon
        if not self._message_done:
            if self._body is not None and self._eof_framed:
                self._message_done = True
                self._body.feed_eof()  # the end of the connection is the end of this body
            else:
                self._broken(aiohttp.ClientPayloadError("response payload is not completed") if self._body
                             else aiohttp.ServerDisconnectedError())
        self._on_lost(self)

    def _broken(self, error: Exception) -> None:
        self._message_done = True
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        elif self._body is not None:
            self._body.fail(error)

    # ----- httptools callbacks -----

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an informational answer (103 Early Hints): the real head follows
            self._header_list = []
            return
        headers: CIMultiDict[str] = CIMultiDict(self._header_list)
        transport = self.transport
        assert transport is not None  # parser callbacks run inside data_received
        body = BodyStream(transport.pause_reading, transport.resume_reading)
        self._body = body
        self._eof_framed = ("Content-Length" not in headers and "Transfer-Encoding" not in headers
                            and status not in _NO_BODY_STATUSES)
        response = H1Response(self, status, CIMultiDictProxy(headers), body)
        self.response = response
        head = self._head
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)

    def on_message_complete(self) -> None:
        if self._body is None:  # the end of an informational answer, not of ours
            return
        self._message_done = True
        self.keep_alive = self._parser.should_keep_alive() and not self._eof_framed
        self._body.feed_eof()
