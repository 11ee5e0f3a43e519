"""OpenTelemetry traces, on only when ``telemetry.otlp_endpoint`` is set (docs/metrics.md, "Tracing").

OpenTelemetry is an optional extra (``pip install 'tokenyard[tracing]'``): this module imports it only inside
``build_tracing``, so a gateway without an endpoint never loads it and pays one ``None`` check per request.

Per request: one SERVER span (``POST /v1/chat/completions``) that continues the client's W3C ``traceparent``,
with a ``queue`` child span (gateway admission queue), one CLIENT child span per upstream attempt (retries and
hedges each get their own; the attempt's ``traceparent`` goes to the upstream so vLLM's spans join the trace)
and a ``first_token`` event. Spans are batched and sent with OTLP/HTTP (protobuf) from the SDK's worker thread.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenyard.config.errors import ConfigError

if TYPE_CHECKING:
    from tokenyard.config.server import TelemetryConfig
    from tokenyard.gateway.context import RequestContext

TRACES_PATH = "/v1/traces"
EXTRA_HINT = "pip install 'tokenyard[tracing]'"
SHUTDOWN_WAIT_S = 2.0  # at shutdown, how long batched spans may take to go out


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: ``endpoint`` as given when it names ``/v1/traces``, else that path appended
    (``http://collector:4318`` -> ``http://collector:4318/v1/traces``, like ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    if urlsplit(endpoint).path.rstrip("/").endswith(TRACES_PATH):
        return endpoint
    return endpoint.rstrip("/") + TRACES_PATH


def build_tracing(config: TelemetryConfig) -> Tracing | None:
    """The gateway's tracing, or None when ``otlp_endpoint`` is not set (nothing is imported then).

    Raises ``ConfigError`` when the endpoint is set but the ``tracing`` extra is not installed.
    """
    if not config.otlp_endpoint:
        return None
    check_tracing_extra(config)
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # The gateway's own provider, not the process-wide one: several gateways in one process stay separate.
    provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(config.otlp_endpoint))))
    return Tracing(provider, provider.get_tracer("tokenyard.gateway"), TraceContextTextMapPropagator(), trace)


def check_tracing_extra(config: TelemetryConfig) -> None:
    """Raise ``ConfigError`` when ``otlp_endpoint`` is set but the ``tracing`` extra is not installed (``serve``
    checks this before it starts anything, so the error is one clear line)."""
    if not config.otlp_endpoint:
        return
    try:
        for module in ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"):
            importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError([("telemetry.otlp_endpoint",
                            f"traces need OpenTelemetry, which is not installed ({exc.name}): {EXTRA_HINT}")]) from exc


class Tracing:
    """The tracer of one gateway; ``begin(ctx)`` opens a request's server span."""

    def __init__(self, provider: Any, tracer: Any, propagator: Any, api: Any) -> None:
        self._provider = provider
        self._tracer = tracer
        self._propagator = propagator
        self._api = api

    def begin(self, ctx: RequestContext) -> RequestTrace:
        request = ctx.request
        parent = self._propagator.extract(request.headers)  # the client's traceparent, when it sent one
        span = self._tracer.start_span(f"{request.method} {request.path}", context=parent,
                                       kind=self._api.SpanKind.SERVER, start_time=_epoch_ns(ctx.started))
        return RequestTrace(self, span)

    async def close(self) -> None:
        """Send what is still batched, waiting at most ``SHUTDOWN_WAIT_S``. In a daemon thread: the exporter may
        post to a receiver on this loop, and a collector that is down keeps an export retrying for up to its
        10 s timeout, which held every gateway's shutdown that long; the spans it could not send are lost."""
        finished = threading.Event()

        def shutdown() -> None:
            try:
                self._provider.shutdown()
            finally:
                finished.set()

        threading.Thread(target=shutdown, name="tokenyard-tracing-shutdown", daemon=True).start()
        await asyncio.to_thread(finished.wait, SHUTDOWN_WAIT_S)


class RequestTrace:
    """One request's server span and its children (``ctx.trace``; the router opens the attempt spans)."""

    __slots__ = ("_span", "_tracing", "first_sent")

    def __init__(self, tracing: Tracing, span: Any) -> None:
        self._tracing = tracing
        self._span = span
        self.first_sent: float | None = None  # monotonic time the first upstream attempt was sent

    def attempt(self, pool: str, backend: str) -> AttemptTrace:
        """A CLIENT span for one upstream attempt, a child of the server span."""
        now = time.monotonic()
        if self.first_sent is None:
            self.first_sent = now
        tracing = self._tracing
        parent = tracing._api.set_span_in_context(self._span)
        span = tracing._tracer.start_span("upstream attempt", context=parent, kind=tracing._api.SpanKind.CLIENT,
                                          attributes={"tokenyard.pool": pool, "tokenyard.backend": backend})
        return AttemptTrace(tracing, span)

    def end(self, ctx: RequestContext, end: float) -> None:
        """Close the server span with what the request became (``end``: monotonic)."""
        tracing = self._tracing
        span = self._span
        if ctx.queue_s > 0:
            # The queue span ends where the first attempt began (or the request ended, when none was sent).
            queue_end = self.first_sent if self.first_sent is not None else end
            queue = tracing._tracer.start_span("queue", context=tracing._api.set_span_in_context(span),
                                               start_time=_epoch_ns(queue_end - ctx.queue_s))
            queue.end(end_time=_epoch_ns(queue_end))
        attributes: dict[str, str | int | float] = {
            "tokenyard.request_id": ctx.request_id, "tokenyard.tenant": ctx.tenant, "tokenyard.class": ctx.klass,
            "tokenyard.model": ctx.model, "tokenyard.backend": ctx.backend, "tokenyard.outcome": ctx.outcome,
            "http.response.status_code": ctx.status, "tokenyard.queue_ms": round(ctx.queue_s * 1000.0, 3),
            "gen_ai.usage.input_tokens": ctx.prompt_tokens, "gen_ai.usage.output_tokens": ctx.completion_tokens,
        }
        if ctx.ttft is not None:
            attributes["tokenyard.ttft_ms"] = round(ctx.ttft * 1000.0, 3)
            span.add_event("first_token", timestamp=_epoch_ns(ctx.started + ctx.ttft))
        for phase, seconds in (ctx.phases or {}).items():
            attributes[f"tokenyard.phase.{phase}_ms"] = round(seconds * 1000.0, 3)
        span.set_attributes(attributes)
        if ctx.status >= 500:
            span.set_status(tracing._api.Status(tracing._api.StatusCode.ERROR, ctx.outcome or "error"))
        span.end(end_time=_epoch_ns(end))


class AttemptTrace:
    """One upstream attempt's span: ``inject`` its ``traceparent`` into the upstream headers, then ``end``."""

    __slots__ = ("_span", "_tracing")

    def __init__(self, tracing: Tracing, span: Any) -> None:
        self._tracing = tracing
        self._span = span

    def inject(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus this attempt's ``traceparent`` (a copy: the request's headers are shared by tries)."""
        carrier = dict(headers)
        self._tracing._propagator.inject(carrier, context=self._tracing._api.set_span_in_context(self._span))
        return carrier

    def end(self, status: int | None, error: str | None) -> None:
        """The attempt answered with ``status`` (None: no answer) or failed with ``error``."""
        if status is not None:
            self._span.set_attribute("http.response.status_code", status)
        if error is not None:
            api = self._tracing._api
            self._span.set_status(api.Status(api.StatusCode.ERROR, error))
        self._span.end()


def _epoch_ns(monotonic_s: float) -> int:
    """A ``time.monotonic()`` instant as the epoch nanoseconds spans carry."""
    return time.time_ns() - int((time.monotonic() - monotonic_s) * 1e9)
