"""Simulated retrieval and tool services (``--kind retrieval`` / ``--kind tool``).

Low-volume helpers of an agent or RAG workflow, so each request simply sleeps its seeded latency (unlike the LLM
engine, which has one timer for all requests).

- retrieval: ``POST /v1/retrieve {"query": str, "top_k": int}`` -> ``{"query", "documents": [{"id", "text",
  "score"}], "miss": bool}``; latency ``base_ms + per_item_ms * top_k`` times a lognormal factor (``latency_sigma``);
  with probability ``miss_rate`` no document is found.
- tool: ``POST /v1/tools/{name}`` with any JSON object of arguments -> ``{"tool", "arguments", "result",
  "latency_ms"}``; latency ``base_ms`` times a lognormal factor.

The fault fields apply as for the LLM kind: errors, hangs, a latency spike added to the answer, TTFT inflation
added to every answer, ``drop_rate`` (with ``drop_after_tokens`` set) cuts the connection before answering, and
``capacity_slots`` caps concurrent requests (the rest get 503).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import zlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tokenyard.sim.base import SimService, error_response, json_response
from tokenyard.sim.faults import FaultConfig, FaultDecision
from tokenyard.sim.openai_io import loads_json
from tokenyard.sim.text import VOCAB


@dataclass(frozen=True)
class ServiceParams:
    base_ms: float = 20.0
    per_item_ms: float = 2.0  # retrieval: extra latency per requested document
    latency_sigma: float = 0.25  # lognormal spread of the latency factor (0 = exact)
    miss_rate: float = 0.0  # retrieval: fraction of queries that find nothing
    corpus_size: int = 10_000
    max_top_k: int = 100
    seed: int = 0

    def replace(self, **overrides: Any) -> ServiceParams:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown service parameter(s): {', '.join(unknown)}")
        for name, value in overrides.items():
            # The fields' own types: a string or a bool ("x", true) failed in the range checks below with Python's
            # TypeError text, and a fraction for a count was taken (doc ids "doc-1.5").
            integer = name in _INT_FIELDS
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                raise ValueError(f"{name}: must be {'an integer' if integer else 'a number'}, got {value!r}")
        params = dataclasses.replace(self, **overrides)
        if min(params.base_ms, params.per_item_ms, params.latency_sigma) < 0 or not 0 <= params.miss_rate <= 1:
            raise ValueError("latencies and latency_sigma must be >= 0 and miss_rate in [0, 1]")
        if params.corpus_size < 1 or params.max_top_k < 1:
            raise ValueError("corpus_size and max_top_k must be >= 1")
        return params


_INT_FIELDS = frozenset({"corpus_size", "max_top_k", "seed"})


class _TimedService(SimService):
    """Shared request accounting and fault handling for the two auxiliary kinds."""

    def __init__(self, params: ServiceParams, faults: FaultConfig | None = None) -> None:
        super().__init__(faults or FaultConfig(), params.seed)
        self.params = params
        self._rng = random.Random(params.seed * 31 + 7)
        self.in_flight = 0
        self._zero()

    def _zero(self) -> None:
        self.counts = {"requests": 0, "completed": 0, "errors": 0, "aborted": 0, "misses": 0, "rejected": 0,
                       "injected_faults": 0}

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "in_flight": self.in_flight, "params": dataclasses.asdict(self.params)}

    def reset(self) -> None:
        self._zero()

    def latency_ms(self, nominal: float) -> float:
        sigma = self.params.latency_sigma
        return nominal * (math.exp(self._rng.gauss(0.0, sigma)) if sigma else 1.0)

    async def serve(self, request: web.Request, nominal_ms: float, answer: dict[str, Any]) -> web.StreamResponse:
        """Apply faults, wait the latency, answer; counts every outcome."""
        self.counts["requests"] += 1
        fault: FaultDecision = self.faults.decide()
        latency = self.latency_ms(nominal_ms)  # drawn even on faults, to keep the stream aligned
        if fault.any:
            self.counts["injected_faults"] += 1
        slots = self.faults.config.capacity_slots
        if slots is not None and self.in_flight >= slots:
            self.counts["rejected"] += 1
            return error_response("no capacity (capacity_slots fault)", 503)
        if fault.error_status is not None:
            self.counts["errors"] += 1
            return error_response(f"injected fault: {fault.error_status}", fault.error_status)
        self.in_flight += 1
        try:
            if fault.hang:
                await self.hang()
            await asyncio.sleep((latency + fault.spike_ms + fault.ttft_inflation_ms) / 1000.0)
            if fault.drop_after is not None:
                if request.transport is not None:
                    request.transport.abort()
                self.counts["aborted"] += 1
                return web.Response(status=499)
            answer["latency_ms"] = round(latency + fault.spike_ms + fault.ttft_inflation_ms, 3)
            self.counts["completed"] += 1
            return json_response(answer)
        except asyncio.CancelledError:
            self.counts["aborted"] += 1
            raise
        finally:
            self.in_flight -= 1


class RetrievalSim(_TimedService):
    kind = "retrieval"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/retrieve", self._retrieve)

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        try:
            body = loads_json(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error_response("The request body is not valid JSON.", 400)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return error_response("'query' is required and must be a string.", 400, "query")
        top_k = body.get("top_k", 5)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= self.params.max_top_k:
            return error_response(f"'top_k' must be an integer in [1, {self.params.max_top_k}].", 400, "top_k")
        query: str = body["query"]
        miss = self._rng.random() < self.params.miss_rate
        docs = [] if miss else self._documents(query, top_k)
        if miss:
            self.counts["misses"] += 1
        nominal = self.params.base_ms + self.params.per_item_ms * top_k
        return await self.serve(request, nominal, {"query": query, "documents": docs, "miss": miss})

    def _documents(self, query: str, top_k: int) -> list[dict[str, Any]]:
        docs = []
        base = zlib.crc32(query.encode("utf-8", "surrogatepass"))  # JSON may carry lone surrogates
        for rank in range(top_k):
            doc_id = (base + rank * 2_654_435_761) % self.params.corpus_size
            words = "".join(VOCAB[(doc_id + 7 * j) % len(VOCAB)] for j in range(24)).strip()
            docs.append({"id": f"doc-{doc_id}", "text": words, "score": round(1.0 / (1 + rank), 4)})
        return docs


class ToolSim(_TimedService):
    kind = "tool"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/tools/{name}", self._call)

    async def _call(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        raw = await request.read()
        try:
            args = loads_json(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            return error_response("The request body is not valid JSON.", 400)
        if not isinstance(args, dict):
            return error_response("Tool arguments must be a JSON object.", 400)
        digest = zlib.crc32(name.encode() + json.dumps(args, sort_keys=True).encode())
        result = {"ok": True, "value": "".join(VOCAB[(digest + 3 * j) % len(VOCAB)] for j in range(8)).strip()}
        return await self.serve(request, self.params.base_ms, {"tool": name, "arguments": args, "result": result})
