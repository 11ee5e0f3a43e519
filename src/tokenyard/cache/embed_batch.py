"""Embedding micro-batching: small ``/v1/embeddings`` requests arriving within a short window share one call.

The first small request of a batch key (tenant + every field but ``input``) opens a batch and leads it: it waits
``window_s`` (or until ``max_inputs`` inputs joined), then goes through the rest of the stage chain with the
combined ``input`` list as its body, so the batch is admitted, routed and forwarded like one request. The answer's
``data`` rows are split back by position (re-indexed from 0 for each request) with the usage shared out in
proportion to the inputs. When the batched call fails, or the leader is cancelled, each follower goes upstream on
its own, so batching never loses a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any

import msgspec
from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.relay import gateway_headers

Next = Any  # the stage chain's ``Next`` (kept loose: gateway.stages.chain imports the gateway)


class _Member:
    __slots__ = ("count", "future", "start")

    def __init__(self, start: int, count: int, future: asyncio.Future[tuple[bytes, str, int] | None] | None) -> None:
        self.start = start
        self.count = count
        self.future = future


class _Batch:
    __slots__ = ("full", "inputs", "members")

    def __init__(self) -> None:
        self.inputs: list[Any] = []
        self.members: list[_Member] = []
        self.full = asyncio.Event()


def small_inputs(body: bytes, max_inputs: int) -> tuple[dict[str, Any], list[Any]] | None:
    """The decoded body and its inputs as a list when the request is small enough to batch, else None."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    value = decoded.get("input")
    if isinstance(value, str):
        inputs: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        inputs = list(value)
    else:
        return None  # token-id inputs and empty inputs go upstream as they are
    return (decoded, inputs) if len(inputs) <= max_inputs // 2 else None


def split_answer(body: bytes, members: list[tuple[int, int]]) -> list[tuple[bytes, int]] | None:
    """Split a batched embeddings answer into one body per (start, count); None if it cannot be split."""
    try:
        decoded = msgspec.json.decode(body)
        rows = sorted(decoded["data"], key=lambda row: row["index"])
        total = sum(count for _, count in members)
        if len(rows) != total:
            return None
        usage = decoded.get("usage") or {}
        prompt = int(usage.get("prompt_tokens", 0))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    out: list[tuple[bytes, int]] = []
    for start, count in members:
        share = round(prompt * count / total) if total else 0
        part = [dict(row, index=i) for i, row in enumerate(rows[start:start + count])]
        piece = dict(decoded, data=part, usage={"prompt_tokens": share, "total_tokens": share})
        out.append((msgspec.json.encode(piece), share))
    return out


def _release(batch: _Batch) -> None:
    for member in batch.members:
        if member.future is not None and not member.future.done():
            member.future.set_result(None)


class EmbedBatcher:
    """Open batches by key, in this process."""

    def __init__(self, window_s: float, max_inputs: int) -> None:
        self.window_s = window_s
        self.max_inputs = max_inputs
        self._open: dict[str, _Batch] = {}
        self.upstream_calls = 0  # batched calls made (leaders), for tests and benchmarks

    async def submit(self, ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        found = small_inputs(ctx.body, self.max_inputs)
        if found is None:
            return await call_next(ctx)  # type: ignore[no-any-return]
        decoded, inputs = found
        rest = {k: v for k, v in decoded.items() if k != "input"}
        digest = hashlib.sha256(msgspec.json.encode(rest, order="sorted")).hexdigest()
        key = f"{ctx.tenant}|{ctx.model}|{digest}"
        batch = self._open.get(key)
        if batch is not None:
            return await self._follow(ctx, call_next, batch, inputs)
        batch = self._open[key] = _Batch()
        batch.inputs.extend(inputs)
        batch.members.append(_Member(0, len(inputs), None))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.full.wait(), self.window_s)
        except BaseException:
            _release(batch)  # the leader left while the window was open: each follower goes on its own
            raise
        finally:
            if self._open.get(key) is batch:
                del self._open[key]
        return await self._lead(ctx, call_next, batch, decoded)

    async def _follow(self, ctx: RequestContext, call_next: Next, batch: _Batch,
                      inputs: list[Any]) -> web.StreamResponse:
        future: asyncio.Future[tuple[bytes, str, int] | None] = asyncio.get_running_loop().create_future()
        batch.members.append(_Member(len(batch.inputs), len(inputs), future))
        batch.inputs.extend(inputs)
        if len(batch.inputs) >= self.max_inputs // 2:
            batch.full.set()
        result = await future
        if result is None:
            return await call_next(ctx)  # type: ignore[no-any-return]
        body, backend, tokens = result
        ctx.backend = backend
        ctx.prompt_tokens = tokens
        ctx.outcome = "completed"
        ctx.status = 200
        headers = gateway_headers(ctx)
        headers["Content-Type"] = "application/json"
        headers["x-tokenyard-batched"] = str(len(batch.members))
        return web.Response(status=200, body=body, headers=headers)

    async def _lead(self, ctx: RequestContext, call_next: Next, batch: _Batch,
                    decoded: dict[str, Any]) -> web.StreamResponse:
        followers = [m for m in batch.members if m.future is not None]
        if not followers:
            return await call_next(ctx)  # type: ignore[no-any-return]
        ctx.body = msgspec.json.encode(dict(decoded, input=batch.inputs))
        self.upstream_calls += 1
        pieces: list[tuple[bytes, int]] | None = None
        try:
            response: web.StreamResponse = await call_next(ctx)
            if isinstance(response, web.Response) and response.status == 200 and isinstance(response.body, bytes):
                pieces = split_answer(response.body, [(m.start, m.count) for m in batch.members])
        finally:
            for index, member in enumerate(batch.members):
                if member.future is not None and not member.future.done():
                    member.future.set_result((pieces[index][0], ctx.backend, pieces[index][1])
                                             if pieces is not None else None)
        if pieces is None:
            return response
        body, tokens = pieces[0]
        ctx.prompt_tokens = tokens
        answer = web.Response(status=200, body=body, headers=dict(response.headers))
        answer.headers["x-tokenyard-batched"] = str(len(batch.members))
        return answer
