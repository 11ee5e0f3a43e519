"""The simulated model server: OpenAI endpoints over the ``Engine``, plus /metrics in vLLM's names."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from tokenyard.sim.arrival import received_at
from tokenyard.sim.base import SimService, error_response, json_response
from tokenyard.sim.direct import HIGH_WATER, DirectSSE
from tokenyard.sim.engine import REFUSED, Engine, QueueFull, RequestHandle, RequestInvalid
from tokenyard.sim.faults import FaultConfig, FaultDecision
from tokenyard.sim.metrics import render
from tokenyard.sim.openai_io import DONE, BadRequest, ChunkWriter, Completion, full_response, parse_request
from tokenyard.sim.params import SimParams
from tokenyard.sim.text import answer_text

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class LLMSim(SimService):
    """One simulated vLLM-class engine behind an OpenAI-compatible API."""

    kind = "llm"

    def __init__(self, params: SimParams, faults: FaultConfig | None = None) -> None:
        super().__init__(faults or FaultConfig(), params.seed)
        self.params = params
        self.engine = Engine(params)
        self.apply_faults(self.faults.config)

    def apply_faults(self, config: FaultConfig) -> None:
        super().apply_faults(config)
        self.engine.set_slots(config.capacity_slots)

    async def on_start(self) -> None:
        self.engine.start()

    async def on_stop(self) -> None:
        await self.engine.stop()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)

    def stats(self) -> dict[str, Any]:
        data = self.engine.stats()
        data["params"] = self.params.as_dict()
        return data

    def reset(self) -> None:
        self.engine.reset()

    # -- endpoints ----------------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        model = self.params.model_name
        return json_response({"object": "list", "data": [
            {"id": model, "object": "model", "created": int(time.time()), "owned_by": "tokenyard-sim",
             "root": model, "parent": None, "max_model_len": self.params.max_model_len}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        text = render(self.params.model_name, self.engine.stats(), self.engine.hist)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            req = parse_request(await request.read(), chat, self.params.model_name)
        except BadRequest as exc:
            return error_response(exc.message, exc.status, exc.param)
        fault = self.faults.decide()
        if fault.any:
            self.engine.injected_faults += 1
        if fault.error_status is not None:
            return error_response(f"injected fault: {fault.error_status}", fault.error_status)
        if fault.hang:
            await self.hang()
        try:
            handle = self.engine.submit(req.prompt_text, req.max_tokens, req.salt, fault.ttft_inflation_ms,
                                        received_at(request.transport, asyncio.get_running_loop().time()))
        except RequestInvalid as exc:
            return error_response(str(exc), 400, "messages" if chat else "prompt")
        except QueueFull as exc:
            return error_response(str(exc), 429)
        try:
            if req.stream:
                return await self._stream(request, req, handle, fault)
            return await self._whole(request, req, handle, fault)
        except ConnectionResetError:
            return web.Response(status=499)  # the client is gone; nothing more is sent
        finally:
            if not handle.seq.done:
                self.engine.abort(handle)  # a no-op for the engine under --no-abort-on-disconnect

    def _drop(self, request: web.Request, handle: RequestHandle,
              resp: web.StreamResponse | None = None) -> web.StreamResponse:
        """The drop fault: cut the connection (no [DONE], no error event) and free the sequence."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        self.engine.abort(handle)
        return resp if resp is not None else web.Response(status=499)

    async def _stream(self, request: web.Request, req: Completion, handle: RequestHandle,
                      fault: FaultDecision) -> web.StreamResponse:
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        engine = self.engine
        chunks = ChunkWriter(req)
        target = handle.seq.target_output
        limit = target if fault.drop_after is None else min(fault.drop_after, target)
        spike = fault.spike_ms
        sent = 0
        direct: DirectSSE | None = None
        while sent < target:
            if direct is not None:
                sent = direct.sent
                if handle.direct is None or sent >= limit or handle.aborted:
                    direct = None  # the engine handed the stream back to this handler
                    continue
            elif sent >= limit:
                return self._drop(request, handle, resp)  # only reachable with a drop fault
            elif handle.aborted:
                break  # the engine dropped the sequence: never spin
            await handle.wait_beyond(sent)
            if direct is not None or handle.available <= sent:
                continue
            upto = min(handle.available, limit)
            await resp.write(chunks.render(handle, sent, upto, target, handle.seq.finish_reason or "length"))
            engine.delivered_tokens += upto - sent
            sent = upto
            if spike:
                await asyncio.sleep(spike / 1000.0)  # latency spike: the stream stalls once
                spike = 0.0
            transport = request.transport
            # A client that does not read: keep its tokens here rather than in the socket buffer. (The transport
            # offers no awaitable for "drained below a mark", hence the short poll on this rare path.)
            while transport is not None and not transport.is_closing() and \
                    transport.get_write_buffer_size() > HIGH_WATER:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            if not spike and sent < limit and transport is not None and not transport.is_closing():
                # Headers and the first chunk are out: from now on the engine writes the tokens itself.
                chunked = resp.headers.get("Transfer-Encoding", "") == "chunked"
                direct = DirectSSE(engine, handle, chunks, transport, chunked, sent, limit)
                handle.direct = direct
                if direct.push() == REFUSED:  # tokens that arrived while this handler was writing
                    handle.direct = direct = None
        handle.direct = None
        tail = chunks.usage(handle.seq.prompt_tokens, sent) + DONE if req.include_usage else DONE
        await resp.write(tail)
        await resp.write_eof()
        return resp

    async def _whole(self, request: web.Request, req: Completion, handle: RequestHandle,
                     fault: FaultDecision) -> web.StreamResponse:
        seq = handle.seq
        drop_after = fault.drop_after
        while not handle.finished and not handle.aborted:
            if drop_after is not None and handle.available >= drop_after:
                return self._drop(request, handle)
            # Wait for the token that matters next: the drop point, else the last one. Once every token is
            # available, wait for ``finished`` itself: the engine reports it in a later phase of the same step,
            # after yielding, so waiting "beyond target - 1" would return at once and spin without yielding.
            have = handle.available if drop_after is not None else max(seq.target_output - 1, handle.available)
            await handle.wait_beyond(have)
        if fault.spike_ms:
            await asyncio.sleep(fault.spike_ms / 1000.0)
        text = answer_text(handle.text_start, handle.text_stride, seq.num_output)
        body = full_response(req, text, seq.finish_reason or "length", seq.prompt_tokens, seq.num_output)
        resp = web.Response(body=body, content_type="application/json")
        await resp.prepare(request)
        await resp.write_eof()
        self.engine.delivered_tokens += seq.num_output
        return resp
