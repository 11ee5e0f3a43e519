"""The inference step reads an upstream's SSE stream however it is cut: lines split across reads, CRLF line
ends, comments and a last line without a newline give the same text and token counts (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from tests.conftest import free_port
from tests.integration.pipeline.helpers import produce, results, spec_for, wait_until
from tokenyard.pipeline.eventlog import EventLog, open_event_log
from tokenyard.pipeline.service import running_pipeline

WORDS = ["al", "pha ", "bé", "ta\n", '"g"']  # JSON-escaped on the wire


def _body(crlf: bool) -> bytes:
    end = b"\r\n" if crlf else b"\n"
    out = b": keep-alive" + end + end
    for word in WORDS:
        chunk = {"choices": [{"delta": {"content": word}}]}
        out += b"data: " + json.dumps(chunk).encode() + end + end
    out += b"data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 5}}).encode()
    return out + end + end + b"data: [DONE]"  # the last line has no newline


@asynccontextmanager
async def cutting_upstream(piece: int, crlf: bool) -> AsyncIterator[str]:
    """An OpenAI-style upstream that writes its stream in ``piece``-byte writes (lines cut anywhere)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        body = _body(crlf)
        for i in range(0, len(body), piece):
            await resp.write(body[i:i + piece])
            await asyncio.sleep(0.001)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _has_results(log: EventLog, n: int) -> bool:
    return await log.length("results") >= n


async def test_cut_streams_give_the_whole_text(tmp_path: Path) -> None:
    expected = "".join(WORDS)
    for n, (piece, crlf) in enumerate([(7, False), (13, True), (1, False), (4096, True)]):
        log_url = f"sqlite://{tmp_path / f'log{n}.db'}"
        async with cutting_upstream(piece, crlf) as base:
            log = open_event_log(log_url)
            try:
                await produce(log, 3)
                async with running_pipeline(spec_for(log_url, base)):
                    await wait_until(functools.partial(_has_results, log, 3))
                found = await results(log)
                assert [(r.status, r.output, r.completion_tokens, r.prompt_tokens) for r in found] == [
                    ("completed", expected, 5, 4)] * 3, (piece, crlf)
            finally:
                await log.aclose()
