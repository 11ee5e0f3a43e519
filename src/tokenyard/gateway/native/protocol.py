"""One client connection of the native server: HTTP/1.1 keep-alive, one request at a time, hand-off to aiohttp.

Contract, the same as aiohttp's server with ``handler_cancellation=True``:

- The request's handler runs in its own task; the client leaving (``connection_lost``) cancels it at once,
  whatever it is waiting on, so the stage chain closes the upstream (no zombie inference).
- The handler gets an ``aiohttp.web.BaseRequest`` and answers with an aiohttp response; a response it did not
  send itself is sent when it returns. A body that came whole with the head is handed over as already read
  (``read()`` returns it; the common case); a body still arriving goes through aiohttp's ``StreamReader``
  (flow controlled: reading pauses while 128 KiB are unread).
- Requests on one connection are served in order. Bytes of a pipelined next request wait (reading pauses past
  ``PIPELINE_LIMIT``); body bytes of a request answered before its body was read are skipped, or the
  connection is closed when more than ``DISCARD_LIMIT`` remain.
- A head that is not HTTP (the parser refuses it) is answered 400 in OpenAI's format and the connection closed;
  a head over aiohttp's limits (a header line over 8190 bytes, more than 128 headers), whatever its path, is
  answered 431 in OpenAI's format and the connection closed (aiohttp would answer a plain-text 400 and log a
  traceback). Both carry an ``x-request-id``.
- A head ``parse_head`` does not accept hands the connection, with every byte received since the end of the
  previous request, to aiohttp's ``RequestHandler``: that request and all later ones on the connection are
  aiohttp's (its router, middlewares and error answers).
- An idle connection is closed after ``keepalive_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.tcp_helpers import tcp_keepalive
from yarl import URL

from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.native.busy_poll import BusyPoll
from tokenyard.gateway.native.head import Head, Malformed, TooLarge, head_end, oversized_lines, parse_head
from tokenyard.gateway.native.whole import serialize_whole
from tokenyard.gateway.request_ids import acceptable_request_id, generated_request_id

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
log = logging.getLogger("tokenyard.gateway")

READ_LIMIT = 2**16  # the body reader pauses the socket past twice this, as aiohttp's does
PIPELINE_LIMIT = 2**16  # bytes of later requests buffered while one is served
DISCARD_LIMIT = 2**16  # unread body bytes worth skipping to keep a connection; more: close it
HEAD_LIMIT = 2**16  # a head not complete within this many bytes is aiohttp's to refuse


class Settings:
    """What every connection of one listener shares (built once by the site)."""

    __slots__ = ("busy_poll", "connections", "fallback", "handlers", "keepalive_s", "max_body_bytes",
                 "max_header_bytes", "paths", "urls")

    def __init__(self, handlers: Mapping[str, Handler], fallback: Callable[[], asyncio.Protocol],
                 max_header_bytes: int, max_body_bytes: int, keepalive_s: float = 75.0) -> None:
        self.handlers = dict(handlers)
        self.paths = frozenset(path.encode() for path in handlers)
        self.urls = {path: URL.build(path=path, encoded=True) for path in handlers}
        self.fallback = fallback  # aiohttp's RequestHandler factory (the runner's server)
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.keepalive_s = keepalive_s
        self.connections: set[InferenceProtocol] = set()
        self.busy_poll: BusyPoll | None = None  # set by the site while listening, when configured


class InferenceProtocol(BaseProtocol):
    """The server side of one connection (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(asyncio.get_running_loop())
        self._settings = settings
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._payload: StreamReader | None = None
        self._body_left = 0  # body bytes of the request being served still to arrive
        self._discard = 0  # body bytes of an answered request still to skip
        self._idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._holds: set[str] = set()  # why reading from the socket is paused (none: reading)
        self.closing = False  # set by the site at shutdown: no further request on this connection
        # Read by aiohttp's BaseRequest.
        self.ssl_context: Any = None
        self.peername: Any = None
        self.sockname: Any = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task serving the current request, if one is being served."""
        return self._task

    # ----- connection events -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # TCP_NODELAY
        assert self.transport is not None
        tcp_keepalive(self.transport)
        self.ssl_context = transport.get_extra_info("sslcontext")
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        self._settings.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._settings.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        payload = self._payload
        if payload is not None and self._body_left:
            payload.set_exception(ConnectionResetError("the client closed the connection while sending its body"))
        if self._task is not None:
            self._task.cancel()  # the client left: stop the request's work, upstream included

    def data_received(self, data: bytes) -> None:
        if self._body_left:
            data = self._feed_body(data)
        if self._discard and data:
            skip = min(self._discard, len(data))
            self._discard -= skip
            data = data[skip:]
        if data:
            self._buf += data
        if self._task is None:
            self._next_request()
        elif len(self._buf) > PIPELINE_LIMIT:
            self._hold_reading("pipeline")

    def eof_received(self) -> bool:
        return False  # a half-closed client has left: close (and cancel its request), as aiohttp does

    # Flow control asked for by the body's StreamReader (aiohttp's BaseProtocol routes it to its parser).
    def pause_reading(self) -> None:
        self._hold_reading("body")

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._release_reading("body")

    def _hold_reading(self, reason: str) -> None:
        """Stop reading the socket for ``reason`` ("body": unread body bytes; "pipeline": later requests)."""
        if not self._holds and self.transport is not None:
            self.transport.pause_reading()
        self._holds.add(reason)

    def _release_reading(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and self.transport is not None:
            self.transport.resume_reading()

    # ----- requests -----

    def _feed_body(self, data: bytes) -> bytes:
        """Give the current request's body its part of ``data``; return what follows it."""
        take = min(self._body_left, len(data))
        self._body_left -= take
        assert self._payload is not None
        if take == len(data):
            self._payload.feed_data(data)
            rest = b""
        else:
            self._payload.feed_data(data[:take])
            rest = data[take:]
        if not self._body_left:
            self._payload.feed_eof()
        return rest

    def _next_request(self) -> None:
        buf = self._buf
        if not buf or self.transport is None:
            return
        end = head_end(buf)  # bare LF lines too: the parser refuses them (400), never a wait
        if end < 0:
            if len(buf) > HEAD_LIMIT:
                too_large = oversized_lines(buf)
                if too_large is not None:
                    self._refuse_too_large(too_large)
                else:
                    self._hand_off()
            return
        settings = self._settings
        head = parse_head(bytes(buf[:end]), settings.paths, settings.max_header_bytes)
        if isinstance(head, Malformed):
            self._refuse(head)
            return
        if isinstance(head, TooLarge):
            self._refuse_too_large(head)
            return
        if head is None:
            self._hand_off()
            return
        if self.closing:
            self.transport.close()
            return
        del buf[:end]
        self._start(head)

    def _start(self, head: Head) -> None:
        loop = self._loop
        if self._settings.busy_poll is not None:
            self._settings.busy_poll.poke()  # poll, not sleep, while the upstream is likely to answer soon
        length = head.content_length
        buf = self._buf
        body: bytes | None = None
        if length <= len(buf):
            # The whole body came with the head (the common case): the request gets it as already read, with no
            # body reader to feed and drain. What follows it is a pipelined next request, served after this one.
            body = bytes(buf[:length])
            del buf[:length]
            payload: StreamReader = EMPTY_PAYLOAD
        else:
            payload = self._payload = StreamReader(self, READ_LIMIT, loop=loop)
            self._body_left = length
            if buf:
                rest = self._feed_body(bytes(buf))
                self._buf = bytearray(rest)
        settings = self._settings
        message = RawRequestMessage("POST", head.path, HttpVersion11, head.headers, head.raw_headers,
                                    not head.keep_alive, None, False, False, settings.urls[head.path])
        self._task = loop.create_task(self._serve(message, payload, body, settings.handlers[head.path]))

    async def _serve(self, message: RawRequestMessage, payload: StreamReader, body: bytes | None,
                     handler: Handler) -> None:
        loop = self._loop
        writer = StreamWriter(self, loop)
        task = asyncio.current_task()
        assert task is not None
        request = web.BaseRequest(message, payload, self, writer, task, loop,  # type: ignore[arg-type]
                                  client_max_size=self._settings.max_body_bytes + 1)
        if body is not None:
            request._read_bytes = body  # what BaseRequest.read() returns once it has read the body
        keep_alive = False
        try:
            # The chain's outermost stage answers every error itself; an exception escaping it is a bug whose
            # response may be half sent: it is logged below and the connection closed.
            response = await handler(request)
            reusable = response.keep_alive is not False and not message.should_close
            whole = serialize_whole(response, reusable)
            if whole is not None:  # the common answer, in one write (whole.py); anything else through aiohttp
                self._write_whole(whole)
                if self._paused:
                    await self._drain_helper()
            else:
                if not response.prepared:
                    await response.prepare(request)
                await response.write_eof()
                reusable = response.keep_alive is not False and not message.should_close
            keep_alive = reusable  # only once the answer is out: a failed write closes the connection
        except (asyncio.CancelledError, ConnectionError):
            pass  # the client left (connection_lost cancelled us) or a write to it failed
        except Exception:
            log.exception("serving %s failed", message.path)
        finally:
            self._task = None
            self._payload = None
        if self._settings.busy_poll is not None:
            self._settings.busy_poll.poke()  # and while the client's next request is likely to come soon
        self._after_response(keep_alive)

    def _write_whole(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")  # as aiohttp's writer does
        transport.write(data)

    def _after_response(self, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if not keep_alive or self.closing or self._body_left > DISCARD_LIMIT:
            transport.close()
            return
        # The unread rest of an early-answered body, skipped as it arrives (while any is due, every byte received
        # went to the body, so nothing of it is in the buffer).
        self._discard, self._body_left = self._body_left, 0
        self._arm_idle()
        self._release_reading("pipeline")
        self._next_request()

    def _refuse(self, malformed: Malformed) -> None:
        """Answer a head that is not HTTP with a 400 in OpenAI's format and close: nothing after it can be read."""
        error = GatewayError(400, f"malformed HTTP request: {malformed.reason}", "malformed_request")
        self._answer_and_close(b"400 Bad Request", error, generated_request_id())

    def _refuse_too_large(self, too_large: TooLarge) -> None:
        """Answer a head over aiohttp's limits with a 431 in OpenAI's format (the code of the HTTP guard's 431)
        and close: its body, if any, cannot be told from a next request."""
        error = GatewayError(431, f"request headers too large: {too_large.reason}", "headers_too_large")
        given = too_large.request_id
        request_id = given if given is not None and acceptable_request_id(given) else generated_request_id()
        self._answer_and_close(b"431 Request Header Fields Too Large", error, request_id)

    def _answer_and_close(self, status_line: bytes, error: GatewayError, request_id: str) -> None:
        assert self.transport is not None
        body = error.body()
        self.transport.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"x-request-id: %s\r\nConnection: close\r\n\r\n%s"
                             % (status_line, len(body), request_id.encode("ascii"), body))
        self._buf.clear()
        self.transport.close()

    # ----- hand-off and idle connections -----

    def _hand_off(self) -> None:
        """Give the connection, with its unserved bytes, to aiohttp's protocol for good."""
        transport = self.transport
        assert transport is not None and self._task is None
        self._settings.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        data = bytes(self._buf)
        self._buf.clear()
        self.transport = None
        handler = self._settings.fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._holds:
            self._holds.clear()
            transport.resume_reading()
        if data:
            handler.data_received(data)

    def _arm_idle(self) -> None:
        self._idle_since = self._loop.time()
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_at(self._idle_since + self._settings.keepalive_s, self._check_idle)

    def _check_idle(self) -> None:
        # One timer per connection, moved on lazily: no timer is created or cancelled per request.
        self._idle_timer = None
        if self._task is not None or self.transport is None:
            return  # serving: re-armed when the response is out
        deadline = self._idle_since + self._settings.keepalive_s
        if self._loop.time() >= deadline:
            self.transport.close()
        else:
            self._idle_timer = self._loop.call_at(deadline, self._check_idle)

    def close_if_idle(self) -> bool:
        """Close an idle connection (shutdown); False when a request is being served."""
        if self._task is not None:
            return False
        if self.transport is not None:
            self.transport.close()
        return True

    def abort_request(self) -> None:
        """Cancel the request being served and close (shutdown after its grace period)."""
        if self._task is not None:
            self._task.cancel()
        if self.transport is not None:
            self.transport.close()
