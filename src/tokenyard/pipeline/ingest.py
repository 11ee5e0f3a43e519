"""The worker's HTTP side: event ingest with backpressure, control, lineage lookup and /metrics.

- ``POST /v1/events``: one event object or ``{"events": [...]}``; each ``{"data": {...}, "id"?, "key"?,
  "tenant"?, "ttl_ms"?, "deadline_ms"?}``. 202 ``{"ids": [...]}`` (log entry ids). When the source stream's lag
  (entries the group has not finished) is at ``max_lag`` or more: 429 with ``Retry-After``; nothing is appended.
- ``POST /v1/control``: ``{"action": "abort", "event_id" | "key"}``, ``{"action": "pause" | "resume"}``.
- ``GET /v1/lineage/{event_id}``: the lineage record (404 before the event finished).
- ``GET /metrics``, ``GET /healthz``.

While the event log is unavailable (Redis down) the endpoints that need it answer 503 ``event_log_unavailable``
with ``Retry-After``; a batch of events is appended in one call, so it is accepted whole or not at all.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from tokenyard.pipeline.control import control_fields
from tokenyard.pipeline.event import encode_event
from tokenyard.pipeline.eventlog import EventLog, EventLogUnavailable
from tokenyard.pipeline.lineage import Lineage
from tokenyard.pipeline.logs import lag as group_lag
from tokenyard.pipeline.metrics import PipelineMetrics
from tokenyard.pipeline.spec import HttpIngestSpec, PipelineSpec

MAX_BATCH = 1000
LAG_CACHE_S = 0.05  # one lag query per 50 ms at most, however many producers post
_KNOWN = frozenset(("data", "id", "key", "tenant", "ttl_ms", "deadline_ms"))
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
# What a JSON body can raise besides ValueError: RecursionError for arrays or objects nested past Python's limit.
_BAD_JSON = (ValueError, UnicodeDecodeError, RecursionError)


def error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = {429: "rate_limit_error", 503: "service_unavailable"}.get(status, "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _parse_event(item: Any, index: int) -> dict[str, str]:
    if not isinstance(item, dict):
        raise ValueError(f"events[{index}] must be an object")
    unknown = set(item) - _KNOWN
    if unknown:
        raise ValueError(f"events[{index}]: unknown field(s) {', '.join(sorted(unknown))}")
    data = item.get("data", {})
    if not isinstance(data, dict):
        raise ValueError(f"events[{index}].data must be an object")
    for name in ("id", "key", "tenant"):
        if name in item and not isinstance(item[name], str):
            raise ValueError(f"events[{index}].{name} must be a string")
        try:
            item.get(name, "").encode()
        except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no text a log can store
            raise ValueError(f"events[{index}].{name} must be valid Unicode text (no lone surrogates)") from None
    for name in ("ttl_ms", "deadline_ms"):
        value = item.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ValueError(f"events[{index}].{name} must be a finite non-negative number")
    return encode_event(data, event_id=item.get("id"), key=item.get("key", ""), tenant=item.get("tenant", ""),
                        ttl_ms=item.get("ttl_ms"), deadline_ms=item.get("deadline_ms"))


class _LagGauge:
    def __init__(self, log: EventLog, stream: str, group: str) -> None:
        self.log, self.stream, self.group = log, stream, group
        self._at = 0.0
        self._value = 0

    async def value(self) -> int:
        now = time.monotonic()
        if now - self._at >= LAG_CACHE_S:
            self._value = await group_lag(self.log, self.stream, self.group)
            self._at = now
        return self._value

    def add(self, n: int) -> None:
        self._value += n


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _log_unavailable(retry_after_s: int) -> Middleware:
    """A log outage is the server's state, not a bug: a 503 the client can retry, not aiohttp's bare 500 and a
    logged traceback."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except EventLogUnavailable:
            return error(503, "the pipeline's event log is unavailable; retry later", "event_log_unavailable",
                         {"Retry-After": str(retry_after_s)})
        except web.HTTPException as exc:  # aiohttp's own 404, 405, 413 (body over the limit): OpenAI-shaped too
            if exc.status < 400:
                raise
            return error(exc.status, exc.text or exc.reason, _HTTP_CODES.get(exc.status, "invalid_request"),
                         {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)

    return middleware


def build_http_app(spec: PipelineSpec, log: EventLog, metrics: PipelineMetrics,
                   ingest: HttpIngestSpec | None) -> web.Application:
    retry_after_s = ingest.retry_after_s if ingest is not None else 1
    app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[_log_unavailable(retry_after_s)])
    stream = spec.source.stream
    lag = _LagGauge(log, stream, spec.source.group)
    lineage = Lineage(log, spec.lineage_stream)

    async def post_events(request: web.Request) -> web.Response:
        assert ingest is not None
        try:
            body = json.loads(await request.read())
            items = body["events"] if isinstance(body, dict) and "events" in body else [body]
            if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
                raise ValueError(f"'events' must be a list of 1 to {MAX_BATCH} events")
            encoded = [_parse_event(item, i) for i, item in enumerate(items)]
        except _BAD_JSON as exc:
            metrics.ingest["invalid"].inc()
            return error(400, str(exc), "invalid_event")
        if len(encoded) > ingest.max_lag:  # a 429 here would be retried forever: this batch can never fit
            metrics.ingest["invalid"].inc()
            return error(400, f"a batch of {len(encoded)} events can never fit max_lag {ingest.max_lag}; send "
                         "smaller batches", "batch_too_large")
        current = await lag.value()
        if current + len(encoded) > ingest.max_lag:
            metrics.ingest["refused"].inc()
            return error(429, f"pipeline lag {current} is at its bound {ingest.max_lag}; retry later",
                         "pipeline_backpressure", {"Retry-After": str(ingest.retry_after_s)})
        ids = await log.append_many(stream, encoded)  # one call: the whole batch is appended, or none of it
        lag.add(len(ids))
        metrics.ingest["accepted"].inc()
        return web.json_response({"ids": ids}, status=202)

    async def post_control(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("expected an object")
            fields = control_fields(body)
        except _BAD_JSON as exc:
            return error(400, str(exc), "invalid_control")
        entry_id = await log.append(spec.control_stream, fields)
        return web.json_response({"id": entry_id}, status=202)

    async def get_lineage(request: web.Request) -> web.Response:
        found = await lineage.find(request.match_info["event_id"])
        if not found:
            return error(404, "no lineage for this event (not finished, or unknown)", "not_found")
        return web.json_response({"event_id": request.match_info["event_id"], "records": found})

    async def get_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    if ingest is not None:
        app.router.add_post("/v1/events", post_events)
    app.router.add_post("/v1/control", post_control)
    app.router.add_get("/v1/lineage/{event_id}", get_lineage)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    return app
