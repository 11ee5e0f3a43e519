"""The access log: one JSON line per request, written when the request ends."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import msgspec

from tokenyard.config import AccessLogConfig
from tokenyard.telemetry.transcript import clip, completion_text

if TYPE_CHECKING:
    from tokenyard.gateway.context import RequestContext


class AccessLine(msgspec.Struct):
    request_id: str
    tenant: str
    klass: str = msgspec.field(name="class")
    model: str
    backend: str
    outcome: str
    status: int
    duration_ms: float
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    queue_ms: float = 0.0
    abort_reason: str = ""
    phases_ms: dict[str, float] | None = None
    tcp_retransmits: int = 0


class TranscriptLine(AccessLine):
    """An access line with the prompt and completion, for tenants whose prompts may be logged."""

    prompt: str = ""
    completion: str = ""


class AccessLog:
    """Writes ``AccessLine``s to stdout, stderr or a file (opened at start, closed with ``close``)."""

    def __init__(self, config: AccessLogConfig) -> None:
        self._owned: IO[bytes] | None = None
        if config.path == "stdout":
            self._out: IO[bytes] = sys.stdout.buffer
        elif config.path == "stderr":
            self._out = sys.stderr.buffer
        else:
            self._owned = self._out = open(config.path, "ab")  # noqa: SIM115 - closed by close()
        self._encoder = msgspec.json.Encoder()

    def write(self, ctx: RequestContext, end: float) -> None:
        line = AccessLine(
            request_id=ctx.request_id, tenant=ctx.tenant, klass=ctx.klass,
            model=ctx.parsed.model if ctx.parsed is not None else "", backend=ctx.backend,
            outcome=ctx.outcome or "error", status=ctx.status, duration_ms=round((end - ctx.started) * 1000, 3),
            ttft_ms=round(ctx.ttft * 1000, 3) if ctx.ttft is not None else None,
            prompt_tokens=ctx.prompt_tokens, completion_tokens=ctx.completion_tokens,
            queue_ms=round(ctx.queue_s * 1000, 3), abort_reason=ctx.abort_reason,
            phases_ms={k: round(v * 1000, 3) for k, v in ctx.phases.items()} if ctx.phases else None,
            tcp_retransmits=ctx.tcp_retransmits,
        )
        if ctx.transcript is not None:  # only tenants that opted in, on a log that allows it (classify)
            prompt = ctx.parsed.prompt_text if ctx.parsed is not None else ""
            line = TranscriptLine(**msgspec.structs.asdict(line), prompt=clip(prompt),
                                  completion=clip(completion_text(ctx.transcript)))
        self._out.write(self._encoder.encode(line) + b"\n")
        self._out.flush()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
