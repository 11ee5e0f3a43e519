"""A loopback TCP server that answers each request with scripted bytes, for testing the upstream HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# A script gets the request bytes (head and body as far as read) and the writer; it answers and may close.
Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ScriptedServer:
    url: str
    requests: list[bytes] = field(default_factory=list)  # every request head+body received, in order
    connections: int = 0
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head + body


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[ScriptedServer]:
    """Serve ``script`` for every request on every connection (keep-alive: several requests per connection)."""
    state = ScriptedServer(url="")
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    state.closed_by_client.set()
                    return
                state.requests.append(request)
                await script(request, writer)
                if writer.is_closing():
                    return
        finally:
            writer.close()
            writers.discard(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        await server.wait_closed()


def answer(body: bytes, status: str = "200 OK", extra: bytes = b"") -> Script:
    """A script answering every request with ``body`` and a Content-Length."""

    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n" + extra
                     + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()

    return script
