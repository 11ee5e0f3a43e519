"""The cache stage: answer from the exact or semantic cache, share in-flight identical requests, batch embeddings.

Placed after the rate limit and before degradation and admission: a hit or a coalesced follower never takes a
queue slot or a backend. Hits are outcome ``cached`` (their rate-limit token charge is refunded: no backend) and
count ``tokenyard_cache_requests_total{kind,result}`` and ``tokenyard_cache_tokens_saved_total``. Cached streams
are replayed as the same SSE bytes the first client got, ``id:`` lines included. The response header
``x-tokenyard-cache`` says ``hit``, ``semantic-hit``, ``miss``, ``coalesced`` or ``bypass``. docs/caching.md.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from tokenyard.cache.coalesce import STREAM_TAP, Flight
from tokenyard.cache.normalize import BYPASS, cache_decision, cache_key, normalized_body
from tokenyard.cache.service import ResponseCache
from tokenyard.cache.store import CachedAnswer
from tokenyard.gateway.context import EMBEDDING, RequestContext
from tokenyard.gateway.relay import SSE_CONTENT_TYPE, gateway_headers
from tokenyard.gateway.stages.chain import Next, Stage, pass_through
from tokenyard.gateway.stages.degrade import DEGRADED_HEADER

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

HEADER = "x-tokenyard-cache"
_PROMPT_FIELDS = ("messages", "prompt")


def semantic_namespace(ctx: RequestContext, stream: bool) -> str:
    """Tenant, operation, answer format and a digest of every parameter but the prompt."""
    import hashlib

    assert ctx.parsed is not None  # the cache stage runs after validation
    decoded = msgspec.json.decode(normalized_body(ctx.body, ctx.parsed.model))
    params = {k: v for k, v in decoded.items() if k not in _PROMPT_FIELDS}
    digest = hashlib.sha256(msgspec.json.encode(params, order="sorted")).hexdigest()[:24]
    return f"{ctx.tenant or '_'}|{ctx.operation}|{'s' if stream else 'w'}|{digest}"


async def replay(ctx: RequestContext, answer: CachedAnswer, label: str) -> web.StreamResponse:
    """Answer from a stored answer: the same body (a stream as SSE, its ``id:`` lines included)."""
    ctx.status = answer.status
    headers = gateway_headers(ctx)
    headers[HEADER] = label
    if not answer.stream:
        headers["Content-Type"] = answer.content_type
        return web.Response(status=answer.status, body=answer.body, headers=headers)
    headers["Content-Type"] = SSE_CONTENT_TYPE
    headers["Cache-Control"] = "no-cache"
    resp = web.StreamResponse(status=200, headers=headers)
    await resp.prepare(ctx.request)
    try:
        await resp.write(answer.body)
        await resp.write_eof()
    except ConnectionResetError:
        ctx.outcome = "client_aborted"  # the client left during the replay
    return resp


async def follow(ctx: RequestContext, call_next: Next, flight: Flight) -> web.StreamResponse:
    """A coalesced follower: the leader's answer (a stream: what was sent so far, then live)."""
    try:
        return await _follow(ctx, call_next, flight)
    finally:
        flight.followers -= 1  # a leader whose client left relays on only while some follower still reads


async def _follow(ctx: RequestContext, call_next: Next, flight: Flight) -> web.StreamResponse:
    if not ctx.stream:
        while not flight.done:
            await flight.changed()
        if not flight.ok or flight.answer is None:
            return await call_next(ctx)  # the leader failed: try on our own
        ctx.outcome = "completed"
        ctx.prompt_tokens, ctx.completion_tokens = flight.answer.prompt_tokens, flight.answer.completion_tokens
        return await replay(ctx, flight.answer, "coalesced")
    return await _follow_stream(ctx, call_next, flight)


async def _follow_stream(ctx: RequestContext, call_next: Next, flight: Flight) -> web.StreamResponse:
    resp: web.StreamResponse | None = None
    sent = 0
    try:
        while True:
            if sent < len(flight.chunks):
                if resp is None:
                    headers = gateway_headers(ctx)
                    headers.update({"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache",
                                    HEADER: "coalesced"})
                    resp = web.StreamResponse(status=200, headers=headers)
                    ctx.status = 200
                    await resp.prepare(ctx.request)
                chunk = b"".join(flight.chunks[sent:])
                sent = len(flight.chunks)
                await resp.write(chunk)
            elif flight.done:
                break
            else:
                await flight.changed()
        if resp is None:
            return await call_next(ctx)  # the leader ended before sending anything: go upstream ourselves
        if flight.ok:
            ctx.outcome = "completed"
            if flight.answer is not None:
                ctx.prompt_tokens = flight.answer.prompt_tokens
                ctx.completion_tokens = flight.answer.completion_tokens
        else:
            ctx.outcome = "upstream_interrupted"
            body = msgspec.json.encode({"error": {"message": "the shared upstream stream ended early",
                                                  "type": "upstream_error", "code": "upstream_interrupted"}})
            await resp.write(b"id: %d\nevent: error\ndata: %s\n\n" % (flight.events + 1, body))
        await resp.write_eof()
    except ConnectionResetError:
        if resp is None:
            raise
        ctx.outcome = "client_aborted"  # this follower's client left; the leader and the others go on
    return resp


def _answer_of(ctx: RequestContext, response: web.StreamResponse, flight: Flight) -> CachedAnswer | None:
    """The answer to store, when the request completed."""
    if ctx.status != 200 or (ctx.outcome != "completed" and not (ctx.stream and flight.complete)):
        return None
    if ctx.stream:
        return CachedAnswer(200, SSE_CONTENT_TYPE, flight.body(), True, ctx.prompt_tokens, ctx.completion_tokens)
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        content_type = response.headers.get("Content-Type", "application/json")
        return CachedAnswer(200, content_type, response.body, False, ctx.prompt_tokens, ctx.completion_tokens)
    return None


def cache_stage(gw: Gateway) -> Stage:
    cache: ResponseCache | None = gw.cache
    if cache is None:
        return pass_through
    exact = cache.exact
    flights = cache.flights
    semantic = cache.semantic
    timings = cache.lookup_seconds

    async def lookup(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        if ctx.operation == EMBEDDING:
            return await (cache.batcher.submit(ctx, call_next) if cache.batcher is not None else call_next(ctx))
        parsed = ctx.parsed
        if parsed is None or cache_decision(ctx.request.headers, parsed.deterministic) == BYPASS:
            cache.count("exact", "bypass")
            ctx.response_headers[HEADER] = "bypass"
            return await call_next(ctx)
        started = perf_counter()
        # The model as the client asked (``ctx.model`` is a metric label: ``*`` for any name while a pass-through
        # pool's models are unknown, which would give every model's request the same key).
        key = cache_key(ctx.tenant, ctx.operation, parsed.model, ctx.body, parsed.stream)
        answer = await exact.lookup(key)
        timings.append(perf_counter() - started)
        if answer is not None:
            cache.count("exact", "hit")
            cache.saved("exact", answer.tokens)
            ctx.outcome = "cached"
            return await replay(ctx, answer, "hit")
        cache.count("exact", "miss")
        namespace = ""
        vector = None
        if semantic is not None and parsed.prompt_text:
            namespace = semantic_namespace(ctx, parsed.stream)
            vector = await semantic.embed(parsed.prompt_text)
            found = await semantic.find(namespace, vector)
            similar = await exact.lookup(found[0]) if found is not None else None
            if similar is not None:
                cache.count("semantic", "hit")
                cache.saved("semantic", similar.tokens)
                ctx.outcome = "cached"
                return await replay(ctx, similar, "semantic-hit")
            cache.count("semantic", "miss")
        if flights is not None:
            flight, leader = flights.join(key)
            if not leader:
                return await follow(ctx, call_next, flight)
        else:
            flight = Flight()
        ctx.response_headers[HEADER] = "miss"
        if ctx.stream:
            ctx.request[STREAM_TAP] = flight
        completed: CachedAnswer | None = None
        stored: CachedAnswer | None = None
        try:
            response = await call_next(ctx)
            completed = _answer_of(ctx, response, flight)
            # A degraded answer (concise, fallback model, fewer tools or passages) is not the answer to this
            # body: never stored, never handed to a whole-answer follower (it goes upstream itself).
            stored = completed if DEGRADED_HEADER not in ctx.response_headers else None
        finally:
            if flights is not None:
                flights.end(key, flight, completed is not None, stored)
        if stored is not None and await exact.save(key, stored) and semantic is not None and vector is not None:
            await semantic.add(namespace, vector, key)
        return response

    return lookup
