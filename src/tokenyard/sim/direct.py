"""The streaming hot path: token chunks written to the socket from the engine loop.

A stream at 2,000 concurrent connections costs one handler wake-up per token if the handler writes each token
itself; here, once the response headers and first chunk are out (through aiohttp's own writer), the engine
hands every later token straight to the transport, framed as an HTTP/1.1 chunk when the response is chunked.
The handler sleeps until the stream ends. When the client stops reading (write buffer above
``HIGH_WATER``) or the connection is closing, ``push`` refuses and the handler takes over with aiohttp's
flow-controlled ``write``.
"""

from __future__ import annotations

import asyncio

from tokenyard.sim.engine import REFUSED, SENT, SENT_WAKE, Engine, RequestHandle
from tokenyard.sim.openai_io import ChunkWriter

HIGH_WATER = 256 * 1024


class DirectSSE:
    __slots__ = ("chunked", "chunks", "engine", "handle", "limit", "sent", "target", "transport")

    def __init__(self, engine: Engine, handle: RequestHandle, chunks: ChunkWriter, transport: asyncio.Transport,
                 chunked: bool, sent: int, limit: int | None) -> None:
        self.engine = engine
        self.handle = handle
        self.chunks = chunks
        self.transport = transport
        self.chunked = chunked
        self.sent = sent
        self.target = handle.seq.target_output
        self.limit = self.target if limit is None else min(limit, self.target)

    def push(self) -> int:
        transport = self.transport
        if transport.is_closing() or transport.get_write_buffer_size() > HIGH_WATER:
            return REFUSED
        handle = self.handle
        sent = self.sent
        upto = handle.available
        upto = min(upto, self.limit)
        if upto > sent:
            if upto == sent + 1 and upto < self.target:  # the usual case: one token, not the last
                data = self.chunks.token(handle.token_index(sent))
            else:
                data = self.chunks.render(handle, sent, upto, self.target, handle.seq.finish_reason or "length")
            transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)
            self.engine.delivered_tokens += upto - sent
            self.sent = upto
        return SENT_WAKE if upto >= self.limit else SENT
