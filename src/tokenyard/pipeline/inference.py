"""The inference step: one event's prompt through the SAME traffic core as the gateway (rate limits, admission,
router with retries over the configured pools), streamed so tokens are counted as they arrive.

Cancelling ``run`` (an abort, a deadline, a newer event of the key) closes the upstream connection at once: the
model server sees the disconnect and stops generating, so no zombie keeps the GPU busy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from tokenyard.config import GatewayConfig, config_for_upstream, load_config, parse_config
from tokenyard.pipeline.event import Event
from tokenyard.pipeline.spec import InferenceSpec
from tokenyard.pipeline.transforms import PermanentError, TransientError
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.traffic.admission import AdmissionController, Lease
from tokenyard.traffic.admission_setup import admission_ticket, rate_limiter_for, shed_tiers
from tokenyard.traffic.admission_types import Rejected
from tokenyard.traffic.ratelimit import RateTicket
from tokenyard.traffic.router import Attempt, NoUpstream, Router
from tokenyard.upstream.client import UpstreamClient
from tokenyard.upstream.pools import build_pools


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    text: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class ExpiredInFlight(Exception):
    """The event's deadline passed while it waited for admission (504 from the traffic core)."""


@dataclass
class Progress:
    """What the upstream has sent so far; kept by the caller so a cancelled run still reports its tokens."""

    request_id: str
    tokens: int = 0
    parts: list[str] = field(default_factory=list)
    backend: str = ""
    prompt_tokens: int = 0
    completion_tokens: int | None = None
    queue_ms: float = 0.0


def gateway_config_for(spec: InferenceSpec, base_dir: Path) -> GatewayConfig:
    """The traffic-core config: a gateway config file (relative to the pipeline file), inline, or one URL."""
    if spec.upstream is not None:
        return config_for_upstream(spec.upstream)
    if isinstance(spec.gateway, str):
        path = Path(spec.gateway)
        return load_config(path if path.is_absolute() else base_dir / path)
    return parse_config(spec.gateway or {})


class InferenceStep:
    def __init__(self, spec: InferenceSpec, config: GatewayConfig) -> None:
        if spec.klass not in config.classes:
            raise ValueError(f"inference.class: unknown class {spec.klass!r}")
        self.spec = spec
        self.config = config
        self.cls = config.classes[spec.klass]
        self.tier = shed_tiers(config.classes)[spec.klass]
        self.client = UpstreamClient(config.timeouts)
        self.pools = build_pools(config.models, GatewayMetrics())  # endpoint gauges stay private to the step
        pool = self.pools.get(spec.model) or self.pools.get("*")
        if pool is None:
            raise ValueError(f"inference.model: no pool serves {spec.model!r}")
        self.pool = pool
        self.admission = AdmissionController()
        self.admission.set_endpoints(pool.name, [e.name for e in pool.endpoints])
        self.limits = rate_limiter_for(config)
        self.router = Router(self.client, max_attempts=max(1, min(2, config.retries.attempts)))
        self.path = "/chat/completions" if spec.chat else "/completions"
        model = pool.config.upstream_model or spec.model
        self._base: dict[str, Any] = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
        if spec.max_tokens is not None:
            self._base["max_tokens"] = spec.max_tokens
        if spec.temperature is not None:
            self._base["temperature"] = spec.temperature

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.admission.close()
        await self.client.close()

    def new_progress(self) -> Progress:
        return Progress(request_id="pl-" + uuid.uuid4().hex[:20])

    def _body(self, prompt: str) -> bytes:
        body = dict(self._base)
        if self.spec.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return msgspec.json.encode(body)

    async def run(self, event: Event, prompt: str, budget_ms: float | None, progress: Progress) -> str:
        """Generate the answer text; raises ``TransientError`` (retry later), ``PermanentError`` (never
        succeeds), ``ExpiredInFlight``; cancellation closes the upstream."""
        estimate = len(prompt) // 4 + 1
        rate = RateTicket(progress.request_id, "", event.tenant, self.spec.klass,
                          estimate + (self.spec.max_tokens or 0))
        while True:  # a pipeline waits out its rate limit instead of failing the event
            decision = self.limits.check(rate)
            if decision.allowed:
                break
            await asyncio.sleep(min(5.0, float(decision.retry_after_s or 1)))
        try:
            ticket = admission_ticket(request_id=progress.request_id, tenant=event.tenant, klass=self.spec.klass,
                                      cls=self.cls, tier=self.tier, pool=self.pool.name, prompt_tokens=estimate,
                                      max_tokens=self.spec.max_tokens, deadline_ms=budget_ms)
            started = time.monotonic()
            try:
                lease = await self.admission.admit(ticket)
            except Rejected as exc:
                if exc.status == 504:
                    raise ExpiredInFlight(exc.message) from exc
                raise TransientError(f"admission refused: {exc.message}") from exc
            progress.queue_ms = (time.monotonic() - started) * 1000
            async with lease:
                return await self._generate(lease, prompt, progress, started)
        finally:
            self.limits.reconcile(rate, progress.prompt_tokens + progress.tokens)
            self.limits.release(rate)

    async def _generate(self, lease: Lease, prompt: str, progress: Progress, started: float) -> str:
        headers = {"Content-Type": "application/json", "x-request-id": progress.request_id,
                   "x-tokenyard-class": self.spec.klass}
        try:
            attempt: Attempt = await self.router.open(self.pool, self.path, self._body(prompt), headers)
        except NoUpstream as exc:
            lease.record_overload()
            raise TransientError(exc.message) from exc
        response = attempt.response
        lease.bind_endpoint(attempt.endpoint.name)
        progress.backend = attempt.endpoint.name
        try:
            if response.status != 200:
                text = (await response.read())[:300].decode(errors="replace")
                if response.status == 429 or response.status >= 500:
                    lease.record_overload()
                    raise TransientError(f"upstream answered {response.status}: {text}")
                raise PermanentError(f"upstream answered {response.status}: {text}")
            first = True
            async for line in response.content:
                if not line.startswith(b"data: {"):
                    continue
                chunk = _decode_chunk(line[6:])
                for choice in chunk.choices:
                    piece = choice.delta.content if choice.delta is not None else choice.text
                    if piece:
                        progress.parts.append(piece)
                        progress.tokens += 1
                        if first:
                            first = False
                            lease.record_ttft(time.monotonic() - started)
                if chunk.usage is not None:
                    progress.prompt_tokens = chunk.usage.prompt_tokens
                    progress.completion_tokens = chunk.usage.completion_tokens
            return "".join(progress.parts)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, msgspec.DecodeError) as exc:
            response.close()
            raise TransientError(f"upstream {attempt.endpoint.name} failed mid-stream: {exc}") from exc
        except BaseException:
            response.close()  # cancelled (abort, deadline, superseded): close the connection, no zombie
            raise
        finally:
            response.release()
            attempt.finish()
