"""The listener of the native server: an aiohttp site whose connections start on ``InferenceProtocol``.

It is an ``aiohttp.web.TCPSite`` (registered with the runner, so ``runner.addresses`` and ``runner.cleanup``
work as before); only the protocol factory differs. ``stop`` is the graceful part: the listener closes, idle
native connections close at once, requests being served get ``grace_s`` to finish (no further request is read
on their connections), then any left are cancelled. Connections handed to aiohttp are drained by aiohttp.
``busy_poll_us`` > 0 keeps the event loop polling, not sleeping, for that long after each request starts and
after each response (``busy_poll``: lower latency for CPU while traffic flows).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from aiohttp import web

from tokenyard.gateway.native.busy_poll import BusyPoll
from tokenyard.gateway.native.protocol import Handler, InferenceProtocol, Settings


class InferenceSite(web.TCPSite):
    """``TCPSite`` serving ``handlers`` (path -> handler) natively, everything else through ``runner``'s app."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, handlers: Mapping[str, Handler], *,
                 max_header_bytes: int, max_body_bytes: int, ssl_context: ssl.SSLContext | None = None,
                 backlog: int = 4096, reuse_port: bool | None = None, grace_s: float = 60.0,
                 busy_poll_us: int = 0) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog, reuse_port=reuse_port)
        assert runner.server is not None
        self._settings = Settings(handlers, runner.server, max_header_bytes, max_body_bytes)
        self._grace_s = grace_s
        self._busy_poll_us = busy_poll_us

    async def start(self) -> None:
        self._runner._reg_site(self)
        settings = self._settings
        loop = asyncio.get_running_loop()
        if self._busy_poll_us > 0:
            settings.busy_poll = BusyPoll(loop, self._busy_poll_us / 1e6)
        self._server = await loop.create_server(
            lambda: InferenceProtocol(settings), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        await super().stop()  # no new connections
        busy_poll, self._settings.busy_poll = self._settings.busy_poll, None
        if busy_poll is not None:
            busy_poll.stop()
        connections = self._settings.connections
        busy = [conn for conn in list(connections) if not conn.close_if_idle()]
        tasks = []
        for conn in busy:
            conn.closing = True
            if conn.task is not None:
                tasks.append(conn.task)
        if tasks:
            await asyncio.wait(tasks, timeout=self._grace_s)
        for conn in busy:
            conn.abort_request()
