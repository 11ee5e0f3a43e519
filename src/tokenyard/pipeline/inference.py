"""The inference step: one event's prompt through the SAME traffic core as the gateway (rate limits, admission,
router with retries over the configured pools), streamed so tokens are counted as they arrive.

Cancelling ``run`` (an abort, a deadline, a newer event of the key) closes the upstream connection at once: the
model server sees the disconnect and stops generating, so no zombie keeps the GPU busy.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from tokenyard.config import GatewayConfig, config_for_upstream, load_config, parse_config
from tokenyard.pipeline.event import Event
from tokenyard.pipeline.spec import InferenceSpec
from tokenyard.pipeline.transforms import PermanentError, TransientError
from tokenyard.policy.degradation import FALLBACK_MODEL
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.traffic.admission import Lease
from tokenyard.traffic.admission_setup import admission_ticket
from tokenyard.traffic.admission_types import SHUTTING_DOWN, AdmissionTicket, Rejected
from tokenyard.traffic.control import TrafficControl
from tokenyard.traffic.ratelimit import RateTicket
from tokenyard.traffic.router import Attempt, NoUpstream, Router, RouteRequest
from tokenyard.upstream.client import UpstreamClient
from tokenyard.upstream.pools import Pool, build_pools

MAX_ADMISSION_WAIT_S = 5.0


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
_decode_chunks = msgspec.json.Decoder(list[_Chunk]).decode
# The JSON of every ``data: {...}`` line of a buffer of whole lines, found by one C-level scan.
_DATA_LINES = re.compile(rb"^data: (\{[^\n]*)", re.MULTILINE)


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
    degraded: tuple[str, ...] = ()


def gateway_config_for(spec: InferenceSpec, base_dir: Path) -> GatewayConfig:
    """The traffic-core config: a gateway config file (relative to the pipeline file), inline, or one URL."""
    if spec.upstream is not None:
        return config_for_upstream(spec.upstream)
    if isinstance(spec.gateway, str):
        path = Path(spec.gateway)
        return load_config(path if path.is_absolute() else base_dir / path)
    return parse_config(spec.gateway or {})


class InferenceStep:
    """The traffic core as the gateway builds it (``TrafficControl`` + ``Router`` over ``build_pools``), driven
    for one pipeline. Its gateway metrics stay on a private registry; the pipeline exports its own."""

    def __init__(self, spec: InferenceSpec, config: GatewayConfig) -> None:
        if spec.klass not in config.classes:
            raise ValueError(f"inference.class: unknown class {spec.klass!r}")
        self.spec = spec
        self.config = config
        self.cls = config.classes[spec.klass]
        self.gateway_metrics = GatewayMetrics()
        self.client = UpstreamClient(config.timeouts)
        self.pools = build_pools(config.models, self.gateway_metrics, config.routing)
        pool = self.pools.get(spec.model) or self.pools.get("*")
        if pool is None:
            raise ValueError(f"inference.model: no pool serves {spec.model!r}")
        self.pool = pool
        self.router = Router(self.client, self.pools, config, self.gateway_metrics)
        self.traffic = TrafficControl(config, {name: [(e.name, e.url) for e in p.endpoints]
                                               for name, p in self.pools.items()}, self.gateway_metrics)
        self.tier = self.traffic.tiers[spec.klass]
        self.path = "/chat/completions" if spec.chat else "/completions"
        model = pool.config.upstream_model or spec.model
        self._id_prefix = "pl-" + uuid.uuid4().hex[:12]
        self._id_counter = itertools.count()
        self._base: dict[str, Any] = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
        if spec.max_tokens is not None:
            self._base["max_tokens"] = spec.max_tokens
        if spec.temperature is not None:
            self._base["temperature"] = spec.temperature

    async def start(self) -> None:
        await self.client.start()
        await self.traffic.start(self.client.session)
        await self.router.start()

    async def close(self) -> None:
        await self.router.close()
        await self.traffic.close()
        await self.client.close()

    def new_progress(self) -> Progress:
        # "pl-" + 20 hex digits: a random prefix per step (worker) and a counter, not a uuid4 (a urandom call)
        # per event; unique across workers and redeliveries all the same.
        return Progress(request_id=f"{self._id_prefix}{next(self._id_counter):08x}")

    def _request(self, prompt: str, progress: Progress) -> tuple[Pool, bytes, dict[str, str]]:
        """Pool, body and extra headers; the degradation ladder applies to pipeline requests as to the
        gateway's (the same engine, the class's current level)."""
        body = dict(self._base)
        if self.spec.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        pool, headers = self.pool, {}
        engine = self.traffic.degrade
        if engine is not None and engine.current_level(self.spec.klass) > 0:
            fallback = next((n for n in pool.config.fallback if n in self.pools), None)
            result = engine.apply(self.spec.klass, body, fallback_model=fallback)
            headers = dict(result.headers)
            progress.degraded = tuple(result.actions)
            if FALLBACK_MODEL in result.actions and fallback is not None:
                pool = self.pools[fallback]
                if pool.config.upstream_model is not None:
                    body["model"] = pool.config.upstream_model
        return pool, msgspec.json.encode(body), headers

    async def run(self, event: Event, prompt: str, budget_ms: float | None, progress: Progress) -> str:
        """Generate the answer text; raises ``TransientError`` (retry later), ``PermanentError`` (never
        succeeds), ``ExpiredInFlight``; cancellation closes the upstream."""
        estimate = len(prompt) // 4 + 1
        # No limit configured: every check would allow and charge nothing, so none is made.
        limiter = self.traffic.limiter if self.traffic.limiter.enabled else None
        rate = RateTicket(progress.request_id, "", event.tenant, self.spec.klass,
                          estimate + (self.spec.max_tokens or 0))
        while limiter is not None:  # a pipeline waits out its rate limit instead of failing the event
            decision = limiter.check(rate)
            if decision.allowed:
                break
            await asyncio.sleep(min(5.0, float(decision.retry_after_s or 1)))
        started = time.monotonic()
        deadline = started + budget_ms / 1000.0 if budget_ms is not None else None
        try:
            controller = self.traffic.admission
            if controller is None:  # admission off in the config: straight to the router
                return await self._generate(None, prompt, progress, started, deadline)
            lease = await self._admit(ticket_for=lambda: admission_ticket(
                request_id=progress.request_id, tenant=event.tenant, klass=self.spec.klass, cls=self.cls,
                tier=self.tier, pool=self.pool.name, prompt_tokens=estimate, max_tokens=self.spec.max_tokens,
                deadline_ms=None if deadline is None else (deadline - time.monotonic()) * 1000))
            progress.queue_ms = lease.queue_wait_s * 1000
            dispatched = time.monotonic()
            try:
                return await self._generate(lease, prompt, progress, dispatched, deadline)
            finally:
                if progress.prompt_tokens or progress.tokens:
                    lease.settle(progress.prompt_tokens, progress.completion_tokens or progress.tokens)
                lease.release()
        finally:
            if limiter is not None:
                limiter.reconcile(rate, progress.prompt_tokens + (progress.completion_tokens or progress.tokens))
                limiter.release(rate)

    async def _admit(self, ticket_for: Callable[[], AdmissionTicket]) -> Lease:
        """Admission as the gateway does it; a pipeline event that is shed (429) or times out in the class queue
        (503) asks again in place (backpressure, not a failed attempt) until its own deadline passes: when a slot
        of the pool is released or the saturation signal is refreshed, at the latest after ``Retry-After``."""
        controller = self.traffic.admission
        assert controller is not None
        while True:
            ticket = ticket_for()
            if ticket.deadline_s is not None and ticket.deadline_s <= 0:
                raise ExpiredInFlight("the event's deadline passed while waiting for admission")
            try:
                return await controller.admit(ticket)
            except Rejected as exc:
                if exc.status == 504:
                    raise ExpiredInFlight(exc.message) from exc
                if exc.status not in (429, 503) or exc.reason == SHUTTING_DOWN:
                    raise TransientError(f"admission refused: {exc.message}") from exc
                wait = float(exc.retry_after_s or 1)
                if ticket.deadline_s is not None:
                    wait = min(wait, ticket.deadline_s)
                # Ask again when a slot frees or the load signal is refreshed, at the latest after Retry-After.
                await controller.wait_to_retry(ticket.pool, min(wait, MAX_ADMISSION_WAIT_S))

    @staticmethod
    def _consume(lines: bytes, progress: Progress) -> bool:
        """Count the SSE ``data: {...}`` lines in ``lines`` (whole lines) into ``progress``; True when one carried
        text. One scan for the lines and one decode of them all as a JSON array, not work per line; when the
        decode fails, line by line, so the lines before a broken one still count (that one raises
        ``msgspec.DecodeError``)."""
        payloads = _DATA_LINES.findall(lines)
        if not payloads:
            return False
        try:
            chunks = _decode_chunks(b"[" + b",".join(payloads) + b"]")
        except msgspec.DecodeError:
            for payload in payloads:  # the lines before the broken one still count; the broken one raises
                InferenceStep._count([_decode_chunk(payload)], progress)
            raise
        return InferenceStep._count(chunks, progress)

    @staticmethod
    def _count(chunks: list[_Chunk], progress: Progress) -> bool:
        texted = False
        parts = progress.parts
        for chunk in chunks:
            for choice in chunk.choices:
                piece = choice.delta.content if choice.delta is not None else choice.text
                if piece:
                    parts.append(piece)
                    progress.tokens += 1
                    texted = True
            if chunk.usage is not None:
                progress.prompt_tokens = chunk.usage.prompt_tokens
                progress.completion_tokens = chunk.usage.completion_tokens
        return texted

    def _first_token(self, lease: Lease | None, ttft_s: float) -> None:
        if lease is not None:
            lease.record_ttft(ttft_s)
        if self.traffic.degrade is not None:
            self.traffic.degrade.observe_ttft(self.spec.klass, ttft_s)

    async def _generate(self, lease: Lease | None, prompt: str, progress: Progress, dispatched: float,
                        deadline: float | None) -> str:
        pool, body, extra = self._request(prompt, progress)
        headers = {"Content-Type": "application/json", "x-request-id": progress.request_id,
                   "x-tokenyard-class": self.spec.klass, **extra}
        route = RouteRequest(klass=self.spec.klass, deadline=deadline, stream=True,
                             tokens=len(prompt) // 4 + 1 + (self.spec.max_tokens or 0))
        try:
            attempt: Attempt = await self.router.open(pool, self.path, body, headers, route)
        except NoUpstream as exc:
            raise TransientError(exc.message) from exc
        response = attempt.response
        progress.backend = attempt.endpoint.name
        if lease is not None:
            lease.bind_endpoint(attempt.endpoint.name)
        outcome = "completed"
        first_at: float | None = None
        try:
            if response.status != 200:
                text = (await response.read())[:300].decode(errors="replace")
                if response.status == 429 or response.status >= 500:
                    if lease is not None:
                        lease.record_overload()
                    raise TransientError(f"upstream answered {response.status}: {text}")
                raise PermanentError(f"upstream answered {response.status}: {text}")
            # Whatever arrived at once is counted in one go (its whole lines; a cut line waits for the rest): far
            # cheaper per token than readline() per line.
            rest = b""
            async for data in response.content.iter_any():
                buffer = rest + data if rest else data
                cut = buffer.rfind(b"\n") + 1
                rest = buffer[cut:]
                if cut and self._consume(buffer[:cut] if rest else buffer, progress) and first_at is None:
                    first_at = time.monotonic()
                    self._first_token(lease, first_at - dispatched)
            if self._consume(rest, progress) and first_at is None:
                first_at = time.monotonic()  # a last line without a newline
                self._first_token(lease, first_at - dispatched)
            return "".join(progress.parts)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, msgspec.DecodeError) as exc:
            outcome = "upstream_interrupted"
            response.close()
            raise TransientError(f"upstream {attempt.endpoint.name} failed mid-stream: {exc}") from exc
        except (TransientError, PermanentError):
            raise
        except BaseException:
            outcome = "client_aborted"
            response.close()  # cancelled (abort, deadline, superseded): close the connection, no zombie
            raise
        finally:
            response.release()
            attempt.finish(outcome, first_at)
