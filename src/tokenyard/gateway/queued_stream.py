"""Heartbeats while a streaming request waits in the admission queue.

A queued request has no response yet, so nothing keeps proxies, NATs and VPNs from closing an idle connection.
A *streaming* request still queued after ``streams.heartbeat_s`` therefore gets its response committed: status
200 and the SSE headers (``x-request-id``, ``x-tokenyard-class``, and ``x-tokenyard-resume`` for a class with a
resume window; the backend and the queue time are not known yet and are left out), then a ``: keep-alive``
comment every ``heartbeat_s`` while it waits. Once admitted, the relay writes the answer on that same response
(``QUEUED_STREAM``, never a second head). A refusal after that point (shed, queue timeout, deadline) can no
longer be a status code: the client gets an SSE ``error`` event with the same OpenAI error object, and the stream
ends without ``[DONE]``. Requests refused before ``heartbeat_s`` keep their 429/503/504 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import msgspec
from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.heartbeat import KEEP_ALIVE, QUEUED_STREAM
from tokenyard.gateway.relay import SSE_CONTENT_TYPE, gateway_headers
from tokenyard.traffic.admission import Lease


class ClientGone(Exception):
    """A heartbeat could not be written: the client left while queued (its place was given back)."""


def queued_stream(ctx: RequestContext) -> web.StreamResponse | None:
    """The SSE response committed while the request was queued, or None."""
    return ctx.request.get(QUEUED_STREAM)


async def _commit(ctx: RequestContext, resume_path: str | None) -> web.StreamResponse:
    headers = gateway_headers(ctx)
    headers.pop("x-tokenyard-queue-ms", None)  # still waiting: unknown
    headers["Content-Type"] = SSE_CONTENT_TYPE
    headers["Cache-Control"] = "no-cache"
    if resume_path is not None:
        headers["x-tokenyard-resume"] = resume_path
    resp = web.StreamResponse(status=200, headers=headers)
    ctx.request[QUEUED_STREAM] = resp
    ctx.status = 200
    await resp.prepare(ctx.request)
    return resp


async def admit_with_heartbeats(ctx: RequestContext, admit: Coroutine[Any, Any, Lease], heartbeat_s: float,
                                resume_path: str | None = None) -> Lease:
    """``await admit``, committing the SSE response and writing heartbeats while it waits (see the module doc).

    Only for streaming requests with ``heartbeat_s`` > 0; otherwise the same as ``await admit``. The admission
    wait runs in its own task so a heartbeat can be written meanwhile; whatever ends this wait early (the client
    leaving, a gateway abort) cancels that task, and the controller takes the request out of the queue (or gives
    back a lease granted in the same instant). Raises ``ClientGone`` when a heartbeat write fails.
    """
    if not ctx.stream or heartbeat_s <= 0:
        return await admit
    waiting = asyncio.ensure_future(admit)
    try:
        while True:
            done, _ = await asyncio.wait((waiting,), timeout=heartbeat_s)
            if done:
                return waiting.result()
            resp = queued_stream(ctx) or await _commit(ctx, resume_path)
            await resp.write(KEEP_ALIVE)
    except BaseException as exc:
        if not waiting.done():
            waiting.cancel()  # the controller leaves the queue, or releases a lease granted just now
        elif not waiting.cancelled() and waiting.exception() is None:
            waiting.result().release()  # granted in the same instant, but this request is not going on
        if isinstance(exc, ConnectionResetError):
            raise ClientGone() from exc
        raise


async def end_with_error(ctx: RequestContext, resp: web.StreamResponse, error: GatewayError) -> web.StreamResponse:
    """End a committed stream with an SSE ``error`` event carrying ``error``'s OpenAI error object (no
    ``[DONE]``). The access log keeps status 200 (what the client got) and ``error``'s outcome."""
    ctx.outcome = error.outcome
    ctx.status = 200
    try:
        await resp.write(b"id: 1\nevent: error\ndata: %s\n\n" % error.body())
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client left just now: nothing else to tell it
    return resp


def upstream_error(response: web.StreamResponse) -> GatewayError:
    """The error an upstream answered with (a non-200 head, already read whole), to end a committed stream."""
    status = response.status
    message, code = f"the upstream answered {status}", "upstream_error"
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes):
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            document = None
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = str(error.get("code") or code)
    return GatewayError(status, message, code, outcome="rejected" if status < 500 else "error")
