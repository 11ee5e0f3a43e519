"""What every simulated service shares: the aiohttp runner, /health, /sim/faults, /sim/reset and /sim/stats.

The runner is built with ``handler_cancellation=True``: when a client disconnects, aiohttp cancels the handler
task whatever it is awaiting (queued, in prefill, between tokens), and the handler's ``finally`` aborts the
sequence. Without it a handler that writes nothing would never notice the disconnect.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tokenyard.sim.faults import FaultConfig, FaultInjector, parse_faults
from tokenyard.sim.openai_io import error_body, loads_json

JSON = "application/json"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type=JSON)


def error_response(message: str, status: int, param: str | None = None) -> web.Response:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return web.Response(body=error_body(message, status, param), status=status, content_type=JSON, headers=headers)


class SimService:
    """Base class: subclasses add their routes in ``routes`` and their numbers in ``stats``."""

    kind = "service"
    name = "tokenyard sim"

    def __init__(self, faults: FaultConfig, seed: int) -> None:
        self.faults = FaultInjector(faults, seed)
        self.hung = 0  # requests currently held by the hang fault
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def apply_faults(self, config: FaultConfig) -> None:
        self.faults.config = config

    async def on_start(self) -> None:
        """Start background work (the engine loop) once the event loop runs."""

    async def on_stop(self) -> None:
        """Stop background work."""

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_get("/sim/faults", self._get_faults)
        app.router.add_post("/sim/faults", self._set_faults)
        app.router.add_post("/sim/reset", self._reset)
        self.routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        await self.on_start()
        runner = web.AppRunner(self.build_app(), handler_cancellation=True, access_log=None,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        self._runner = runner
        self.host = host
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.on_stop()

    async def hang(self) -> None:
        """The hang fault: hold the request until the client gives up (or the server stops)."""
        self.hung += 1
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.hung -= 1

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _stats(self, request: web.Request) -> web.Response:
        data = self.stats()
        data["kind"] = self.kind
        data["faults"] = self.faults.config.as_dict()
        data["hung"] = self.hung
        return json_response(data)

    async def _get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.faults.config.as_dict())

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            body = loads_json(await request.read() or b"{}")
            config = parse_faults(body, self.faults.config)
        except ValueError as exc:
            return error_response(str(exc) or "invalid JSON", 400)
        self.apply_faults(config)
        return json_response(config.as_dict())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"reset": True})
