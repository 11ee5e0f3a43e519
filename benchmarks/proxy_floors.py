"""Two reference proxies that bound what a Python gateway hop can cost on this machine, for ``gateway_ab.py``.

    python benchmarks/proxy_floors.py relay UPSTREAM_URL    # prints "... listening on http://127.0.0.1:PORT"
    python benchmarks/proxy_floors.py core UPSTREAM_URL
    python benchmarks/proxy_floors.py lean UPSTREAM_URL

- ``relay``: a byte relay on uvloop ``Protocol``s, one upstream connection per client connection, no HTTP
  parsing at all. It is the floor of any proxy hop: two more socket reads, two more writes and two more wake-ups.
- ``core``: tokenyard's own server and upstream client (``gateway.native`` and ``upstream.h1_pool``) with a
  handler that reads the body, posts it upstream and answers with the upstream's body: the HTTP work every
  request needs, without the stage chain, the router, the accounting or the access log.

The gateway's added latency minus ``core``'s is what its features cost; ``core``'s minus ``relay``'s is what
parsing and building HTTP messages in Python costs, and ``core``'s minus ``lean``'s what aiohttp's request and
response objects add to that.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import urlsplit

from aiohttp import web

from tokenyard import runtime
from tokenyard.gateway.native.head import Head, head_end, parse_head
from tokenyard.gateway.native.site import InferenceSite
from tokenyard.upstream.h1_pool import H1Client

PATH = "/v1/chat/completions"
PATHS = frozenset((PATH.encode(),))
MAX_HEADER_BYTES = 65536


async def _forward(client: H1Client, url: str, body: bytes) -> tuple[int, str, bytes]:
    """Post ``body`` upstream and read the whole answer: its status, content type and body."""
    answer = await client.post(url, body, {"Content-Type": "application/json"})
    try:
        data = await answer.read()
    finally:
        answer.release()
    return answer.status, answer.headers.get("Content-Type", "application/json"), data


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.pending: list[bytes] = []
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.task = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        _, upstream = await asyncio.get_running_loop().create_connection(lambda: _Upstream(self), self.host,
                                                                         self.port)
        self.upstream = upstream
        assert upstream.transport is not None
        for data in self.pending:
            upstream.transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None or self.upstream.transport is None:
            self.pending.append(data)
        else:
            self.upstream.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def relay(upstream: str) -> None:
    parts = urlsplit(upstream)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    server = await asyncio.get_running_loop().create_server(lambda: _Client(host, port), "127.0.0.1", 0)
    print(f"relay listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await runtime.wait_for_shutdown()
    server.close()


async def core(upstream: str) -> None:
    client = H1Client(connect_timeout_s=5.0)
    url = upstream.rstrip("/") + PATH

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        status, content_type, data = await _forward(client, url, await request.read())
        return web.Response(status=status, body=data, headers={"Content-Type": content_type})

    runner = web.AppRunner(web.Application(), access_log=None)
    await runner.setup()
    site = InferenceSite(runner, "127.0.0.1", 0, {PATH: handle}, max_header_bytes=MAX_HEADER_BYTES,
                         max_body_bytes=1 << 20)
    await site.start()
    print(f"core listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await runtime.wait_for_shutdown()
    await runner.cleanup()
    await client.close()


class _LeanProtocol(asyncio.Protocol):
    def __init__(self, client: H1Client, url: str) -> None:
        self.client, self.url = client, url
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next()

    def _next(self) -> None:
        end = head_end(self.buf)
        if end < 0:
            return
        head = parse_head(bytes(self.buf[:end]), PATHS, MAX_HEADER_BYTES)
        if not isinstance(head, Head):  # lean serves plain POSTs on PATH only
            if self.transport is not None:
                self.transport.close()
            return
        if len(self.buf) < end + head.content_length:
            return  # the rest of the body is on its way
        body = bytes(self.buf[end:end + head.content_length])
        del self.buf[:end + head.content_length]
        self.task = asyncio.get_running_loop().create_task(self._serve(body))

    async def _serve(self, body: bytes) -> None:
        status, content_type, data = await _forward(self.client, self.url, body)
        self.task = None
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 %d OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                                 % (status, content_type.encode(), len(data), data))
            self._next()


async def lean(upstream: str) -> None:
    client = H1Client(connect_timeout_s=5.0)
    url = upstream.rstrip("/") + PATH
    server = await asyncio.get_running_loop().create_server(lambda: _LeanProtocol(client, url), "127.0.0.1", 0)
    print(f"lean listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await runtime.wait_for_shutdown()
    server.close()
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=("relay", "core", "lean"))
    parser.add_argument("upstream", help="the upstream's base URL, e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    runtime.run({"relay": relay, "core": core, "lean": lean}[args.kind](args.upstream))


if __name__ == "__main__":
    main()
