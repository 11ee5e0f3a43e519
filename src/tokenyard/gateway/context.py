"""``RequestContext``: everything the stages learn about one request, in one slotted object."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from tokenyard.config import KeyConfig, ModelConfig, TenantConfig
    from tokenyard.schema import ParsedRequest
    from tokenyard.telemetry.tracing import RequestTrace
    from tokenyard.traffic.router import Attempt
    from tokenyard.upstream.pools import Pool

# The API operations the gateway relays, by path.
CHAT = "chat"
COMPLETION = "completion"
EMBEDDING = "embedding"


class RequestContext:
    """One request on its way through the stage chain.

    Stages fill fields in order: ``request_id`` (request id stage), ``key``/``tenant`` (auth), ``body``/``parsed``
    (validate), ``klass``/``deadline`` (classify), ``model_config``/``pool``/``upstream_model`` (model), and the
    router sets ``backend`` and the measurements read by the access log and metrics. ``deadline`` is an absolute
    ``time.monotonic()`` or None (every time in the context is on that clock). ``outcome`` is set by whoever
    ends the request (see ``telemetry.metrics.OUTCOMES``).
    """

    __slots__ = (
        "abort_reason",
        "abort_started",
        "attempt",
        "backend",
        "body",
        "completion_tokens",
        "deadline",
        "key",
        "klass",
        "model",
        "model_config",
        "operation",
        "outcome",
        "parsed",
        "phases",
        "pool",
        "prompt_tokens",
        "queue_s",
        "request",
        "request_id",
        "response_headers",
        "started",
        "status",
        "task",
        "tcp_retransmits",
        "tenant",
        "tenant_config",
        "trace",
        "transcript",
        "ttft",
        "upstream_headers",
        "upstream_model",
    )

    def __init__(self, request: web.BaseRequest, operation: str, started: float) -> None:
        self.request = request
        self.operation = operation
        self.started = started
        self.request_id = ""
        self.tenant = ""
        self.tenant_config: TenantConfig | None = None
        self.key: KeyConfig | None = None
        self.body = b""
        self.parsed: ParsedRequest | None = None
        self.model = ""
        self.klass = ""
        self.deadline: float | None = None
        self.model_config: ModelConfig | None = None
        self.pool: Pool | None = None
        self.upstream_model: str | None = None
        self.upstream_headers: dict[str, str] | None = None  # extra headers a stage wants sent upstream
        self.backend = ""
        self.attempt: Attempt | None = None  # the upstream answer, finished after the response is written
        self.outcome = ""
        self.status = 0
        self.ttft: float | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.queue_s = 0.0
        self.task: asyncio.Task[object] | None = None
        self.abort_reason = ""  # set when the gateway itself cancels the request (admin, deadline)
        self.abort_started = 0.0
        self.response_headers: dict[str, str] = {}
        self.phases: dict[str, float] | None = None  # latency attribution (upstream.attribution), seconds
        self.tcp_retransmits = 0  # upstream TCP retransmits while answering (TCP_INFO)
        # The response bytes, kept only for tenants whose prompts and completions may be logged (classify).
        self.transcript: bytearray | None = None
        self.trace: RequestTrace | None = None  # the OpenTelemetry server span, when tracing is on

    def cancel(self, reason: str, now: float) -> bool:
        """Stop this request from the gateway side (``admin``, ``deadline``, ``upstream_timeout``).

        The handler task is cancelled exactly as a client disconnect cancels it; ``abort_reason`` tells the
        handler it was the gateway, so it answers the still-connected client. False when already cancelled.
        """
        if self.abort_reason or self.task is None or self.task.done():
            return False
        self.abort_reason = reason
        self.abort_started = now
        self.task.cancel()
        return True

    @property
    def stream(self) -> bool:
        return self.parsed is not None and self.parsed.stream
