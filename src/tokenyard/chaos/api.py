"""The chaos proxy's control API (aiohttp, its own port): read and replace faults, read counters.

- ``GET /faults`` -> the current faults as JSON (``{"up": {...}, "down": {...}}``).
- ``POST /faults`` with the same shape (missing fields mean "no fault"; ``{"clear": true}`` removes all)
  -> the faults now in force. They apply to connections accepted from then on. Bad input -> 400 in OpenAI's
  error format.
- ``GET /stats`` -> connection and byte counters; ``POST /stats/reset`` zeroes them.
"""

from __future__ import annotations

from aiohttp import web

from tokenyard.chaos.faults import FaultsInvalid, faults_to_dict, parse_faults
from tokenyard.chaos.proxy import ChaosProxy

PROXY_KEY: web.AppKey[ChaosProxy] = web.AppKey("chaos_proxy", ChaosProxy)
MAX_BODY = 64 * 1024


def _error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return web.json_response(body, status=status)


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(faults_to_dict(request.app[PROXY_KEY].faults))


async def _post_faults(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        faults = parse_faults(body)
    except FaultsInvalid as exc:
        return _error(400, f"invalid faults: {exc}", "invalid_faults")
    proxy = request.app[PROXY_KEY]
    proxy.set_faults(faults)
    return web.json_response(faults_to_dict(proxy.faults))


async def _get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[PROXY_KEY].stats.to_dict())


async def _reset_stats(request: web.Request) -> web.Response:
    proxy = request.app[PROXY_KEY]
    proxy.reset_stats()
    return web.json_response(proxy.stats.to_dict())


def build_api(proxy: ChaosProxy) -> web.Application:
    """The control application for one proxy."""
    app = web.Application(client_max_size=MAX_BODY)
    app[PROXY_KEY] = proxy
    app.router.add_get("/faults", _get_faults)
    app.router.add_post("/faults", _post_faults)
    app.router.add_get("/stats", _get_stats)
    app.router.add_post("/stats/reset", _reset_stats)
    return app


class ApiServer:
    """The control API served on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, proxy: ChaosProxy, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(build_api(proxy), access_log=None)
        self._host = host
        self._port = port
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        addresses = self._runner.addresses
        if self._site is None or not addresses:
            raise RuntimeError("API not started")
        return int(addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()

    async def close(self) -> None:
        await self._runner.cleanup()
        self._site = None
