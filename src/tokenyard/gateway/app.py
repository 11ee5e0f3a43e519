"""App assembly: routes for the OpenAI API, health, metrics and admin on one aiohttp application.

``build_app(config)`` builds the app and its ``Gateway`` (nothing at import time). ``running_gateway(config)``
starts one on loopback for tests and the demo. The runner MUST be created with ``handler_cancellation=True``:
that is how a client disconnect cancels the handler (and so closes the upstream) even while nothing is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from time import monotonic

import msgspec
from aiohttp import web

from tokenyard.config import GatewayConfig
from tokenyard.dashboard import add_dashboard_routes
from tokenyard.gateway.admin import add_admin_routes
from tokenyard.gateway.admin_traffic import add_traffic_admin_routes
from tokenyard.gateway.batch import add_batch_routes
from tokenyard.gateway.client_transport import ClientTransportCounter
from tokenyard.gateway.context import CHAT, COMPLETION, EMBEDDING, RequestContext
from tokenyard.gateway.eastwest import add_eastwest_routes
from tokenyard.gateway.native.protocol import Handler
from tokenyard.gateway.native.site import InferenceSite
from tokenyard.gateway.request_ids import install_request_ids
from tokenyard.gateway.resume_routes import add_resume_routes
from tokenyard.gateway.services import Gateway
from tokenyard.gateway.tls import listener_scheme, listener_ssl_context, start_admin_listener
from tokenyard.security.http_guard import install_guard

GATEWAY_KEY = web.AppKey("tokenyard_gateway", Gateway)
# The inference paths' handlers, served natively (gateway/native) on the main listener.
NATIVE_HANDLERS_KEY = web.AppKey("tokenyard_native_handlers", Mapping[str, Handler])
_JSON = "application/json"


def build_app(config: GatewayConfig) -> web.Application:
    """A ready-to-run gateway app; its ``Gateway`` is ``app[GATEWAY_KEY]``."""
    gw = Gateway(config)
    # Bodies above the limit are refused by the validate stage with an OpenAI error (aiohttp's own limit is a
    # backstop one byte above it).
    app = web.Application(client_max_size=config.limits.max_body_bytes + 1)
    app[GATEWAY_KEY] = gw
    install_guard(app, gw)  # header/path limits, auth of non-chain /v1 routes, admin audit, /openapi.json
    install_request_ids(app)  # x-request-id on every answer outside the chain too (the chain sets its own)
    chain = gw.chain
    transports = ClientTransportCounter(gw.metrics)

    def operation(name: str) -> Handler:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            transports.count(request)  # protocol and TLS version of the client path
            return await chain(RequestContext(request, name, monotonic()))

        return handle

    async def models(request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "tokenyard"} for name in gw.model_ids()]
        return web.Response(body=msgspec.json.encode({"object": "list", "data": data}), content_type=_JSON)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=_JSON)

    async def readyz(request: web.Request) -> web.Response:
        if gw.ready:
            return web.Response(body=b'{"status":"ready"}', content_type=_JSON)
        return web.Response(status=503, body=b'{"status":"no healthy upstream"}', content_type=_JSON)

    async def metrics(request: web.Request) -> web.Response:
        # Rendered in a worker thread: the exposition grows with the pools (7 phase histograms per backend; 376 ms
        # and 2.9 MB at 256 backends), and on the event loop it stalled every request in flight at each scrape.
        # prometheus_client's metrics take their own locks; the gauges read by function are thread-safe reads.
        body = await asyncio.to_thread(gw.metrics.render)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    inference = {"/v1/chat/completions": operation(CHAT), "/v1/completions": operation(COMPLETION),
                 "/v1/embeddings": operation(EMBEDDING)}
    for path, handler in inference.items():  # the same handlers behind aiohttp, for connections handed to it
        app.router.add_post(path, handler)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_admin_routes(app, gw)
    add_resume_routes(app, gw)  # GET /v1/streams/{request_id}: resume a dropped stream (docs/resume.md)
    eastwest = add_eastwest_routes(app, gw)  # POST /v1/retrieve, /v1/tools/{name}, workflows (docs/routing.md)
    # The native server has no middlewares: workflow tracking wraps its handlers (aiohttp's middleware does it
    # for the same handlers on connections handed over).
    app[NATIVE_HANDLERS_KEY] = {path: eastwest.tracked(handler) for path, handler in inference.items()}
    add_traffic_admin_routes(app, gw)
    add_dashboard_routes(app, gw.metrics.registry)
    add_batch_routes(app, gw)  # deferred requests: x-tokenyard-defer, /v1/batches (gateway/batch.py)

    async def on_startup(app: web.Application) -> None:
        try:
            await gw.start()
        except BaseException:  # aiohttp runs no on_cleanup after a failed startup: close what start opened
            await gw.close()
            raise

    async def on_cleanup(app: web.Application) -> None:
        await gw.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def inference_site(runner: web.AppRunner, config: GatewayConfig, host: str, port: int,
                   reuse_port: bool | None = None) -> InferenceSite:
    """The main listener: the inference paths served natively, the rest by the app (``gateway.native``)."""
    return InferenceSite(runner, host, port, runner.app[NATIVE_HANDLERS_KEY],
                         max_header_bytes=config.limits.max_header_bytes,
                         max_body_bytes=config.limits.max_body_bytes,
                         ssl_context=listener_ssl_context(config.listen), reuse_port=reuse_port,
                         busy_poll_us=config.listen.busy_poll_us)


class RunningGateway:
    """A started gateway: ``base_url`` (``http://HOST:PORT``) and its ``Gateway``."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, host: str) -> None:
        self.runner = runner
        self.gateway: Gateway = runner.app[GATEWAY_KEY]
        self.port: int = runner.addresses[0][1]
        self.host = host
        self.base_url = f"{listener_scheme(self.gateway.config.listen)}://{host}:{self.port}"
        self.admin_url: str | None = None  # set when the admin API has its own listener


async def start_gateway(config: GatewayConfig, host: str | None = None, port: int | None = None) -> RunningGateway:
    """Start the gateway on ``host:port`` (default: the config's listener); stop it with ``stop_gateway``."""
    host = host if host is not None else config.listen.host
    port = port if port is not None else config.listen.port
    runner = web.AppRunner(build_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:  # every failure from here on (a TLS file that does not load, a port in use) closes what setup opened
        site = inference_site(runner, config, host, port)
        await site.start()
        admin = await start_admin_listener(runner, config)
    except BaseException:
        await runner.cleanup()
        raise
    running = RunningGateway(runner, site, host)
    if admin is not None:
        running.admin_url, running.gateway.security.admin_port = admin
    return running


async def stop_gateway(running: RunningGateway) -> None:
    await running.runner.cleanup()


@asynccontextmanager
async def running_gateway(config: GatewayConfig, host: str = "127.0.0.1", port: int = 0
                          ) -> AsyncIterator[RunningGateway]:
    """``async with running_gateway(config) as gw:`` — a gateway on a free loopback port for tests and the demo."""
    running = await start_gateway(config, host, port)
    try:
        yield running
    finally:
        await stop_gateway(running)
