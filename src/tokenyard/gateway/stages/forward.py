"""The terminal handler: open the upstream request through the router, then relay the answer.

Every early end closes the upstream at once: a cancellation while the router waits for the response head, while
a non-streaming body is read, or while a stream is relayed (``relay``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from tokenyard.gateway.context import CHAT, COMPLETION, EMBEDDING, RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.relay import abort_upstream, gateway_abort_error, relay_stream, relay_whole
from tokenyard.gateway.resume_relay import relay_resumable, resume_window_s
from tokenyard.gateway.route_request import route_request
from tokenyard.gateway.stages.admission import lease_of
from tokenyard.gateway.stages.chain import Next
from tokenyard.gateway.stages.degrade import upstream_headers
from tokenyard.gateway.watchdog import Watchdog
from tokenyard.traffic.router import Attempt, NoUpstream

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

OVERLOAD_STATUSES = frozenset((429, 503))  # the backend pushing back: its adaptive limit shrinks
PATHS = {CHAT: "/chat/completions", COMPLETION: "/completions", EMBEDDING: "/embeddings"}


def forward_terminal(gw: Gateway) -> Next:
    router = gw.router
    metrics = gw.metrics
    timeouts = gw.config.timeouts
    first_s = timeouts.first_token_ms / 1000.0
    idle_s = timeouts.idle_ms / 1000.0
    heartbeat_s = gw.config.streams.heartbeat_s
    windows_ms = {name: c.resume_window_ms for name, c in gw.config.classes.items() if c.resume_window_ms}

    async def forward(ctx: RequestContext) -> web.StreamResponse:
        assert ctx.pool is not None
        loop = asyncio.get_running_loop()
        series = metrics.series(ctx.model, ctx.klass)
        headers = {"Content-Type": "application/json", "x-request-id": ctx.request_id, **upstream_headers(ctx)}
        lease = lease_of(ctx)
        # While the router opens the request only the deadline is watched: each stream attempt has its own
        # limit for its head there (a timed-out attempt is retried elsewhere, not the whole request ended).
        watchdog = Watchdog(ctx, loop, None, idle_s)
        attempt: Attempt | None = None
        try:
            try:
                attempt = await router.open(ctx.pool, PATHS[ctx.operation], ctx.body, headers,
                                           route_request(ctx, gw.config))
            except NoUpstream as exc:
                if exc.code == "upstream_timeout":  # every attempt timed out before its first byte
                    raise GatewayError(504, "the upstream did not answer in time", exc.code,
                                       outcome="error") from exc
                if exc.code != "no_healthy_upstream":  # the shared endpoint budget: no slot in time
                    ctx.abort_reason = exc.code
                    raise GatewayError(503, exc.message, exc.code, outcome="shed",
                                       headers={"Retry-After": "1"}) from exc
                raise GatewayError(503, exc.message, "no_healthy_upstream") from exc
            ctx.backend = attempt.endpoint.name
            upstream = attempt.response
            if lease is not None:
                lease.bind_endpoint(ctx.backend)
                if upstream.status in OVERLOAD_STATUSES:
                    lease.record_overload()
            if ctx.stream and upstream.status == 200:
                watchdog.watch_tokens(first_s)  # the first token, then the gaps, from here on
                window_s = resume_window_s(ctx, windows_ms)
                if window_s > 0:  # the class opted in: the stream outlives a dropped client (docs/resume.md)
                    return await relay_resumable(ctx, upstream, series, metrics, watchdog, gw.resume, window_s,
                                                 heartbeat_s)
                return await relay_stream(ctx, upstream, series, metrics, watchdog, heartbeat_s)
            return await relay_whole(ctx, upstream, series)
        except asyncio.CancelledError:
            if ctx.outcome:  # the relay already handled it
                raise
            abort_upstream(ctx, metrics, attempt.response if attempt else None, loop)
            if lease is not None and ctx.abort_reason == "upstream_timeout":
                lease.record_overload()
            if not ctx.abort_reason:
                ctx.outcome = "client_aborted"
                raise
            raise gateway_abort_error(ctx) from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            # The upstream died while a non-streaming body was read: nothing reached the client yet.
            if attempt is not None:
                attempt.response.close()
            raise GatewayError(503, f"upstream {ctx.backend} failed while answering: {type(exc).__name__}",
                               "upstream_failed", outcome="error") from exc
        finally:
            watchdog.stop()
            if attempt is not None:
                attempt.response.release()
                ctx.attempt = attempt  # finished (slot, budget, latency attribution) by observe's accounting

    return forward
