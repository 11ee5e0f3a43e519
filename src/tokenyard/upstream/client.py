"""The upstream HTTP clients of one gateway, timeouts made for streaming.

Requests on the hot path (``post``: every model, retrieval and tool request) go through ``H1Client``, pooled
keep-alive connections on asyncio Protocols and httptools; health probes, load scraping and model listing use
one aiohttp session (``session``), where convenience matters more than microseconds.

There is deliberately no total timeout: a long stream must not be cut. Connect has its own timeout here; time to
first token and the idle gap between chunks are enforced by the relay's watchdog, and the request's own deadline
by the router (see ``tokenyard.gateway.watchdog``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

from tokenyard.config import TimeoutsConfig
from tokenyard.upstream.h1_connection import H1Response
from tokenyard.upstream.h1_pool import H1Client


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model]


class UpstreamClient:
    """Sends requests to upstream endpoints over a shared keep-alive connection pool."""

    def __init__(self, timeouts: TimeoutsConfig) -> None:
        self.timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None
        self.h1 = H1Client(timeouts.connect_ms / 1000.0)
        # ``await post(url, body, headers)``: send ``body`` and wait for the response head; the caller must
        # ``close()`` or ``release()`` it. A cancellation while waiting closes the connection (the upstream sees
        # the disconnect). The H1 client's own method, not a wrapper: one coroutine fewer on every request.
        self.post: Callable[[str, bytes, dict[str, str]], Awaitable[H1Response]] = self.h1.post

    async def start(self) -> None:
        connect_s = self.timeouts.connect_ms / 1000.0
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30.0,
                                         enable_cleanup_closed=False, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_s, sock_connect=connect_s, sock_read=None),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.h1.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._session

    async def list_models(self, base_url: str, timeout_s: float = 5.0) -> list[str]:
        """The model ids ``GET {base_url}/models`` lists; raises on any failure."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.get(base_url + "/models", timeout=timeout) as resp:
            resp.raise_for_status()
            listing = msgspec.json.decode(await resp.read(), type=_ModelList)
        return [m.id for m in listing.data]
