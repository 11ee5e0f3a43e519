"""The native server of the inference paths, on raw sockets: keep-alive, pipelining, hand-off to aiohttp,
bodies in pieces, early answers, client disconnects and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.integration.gateway.helpers import chat_body, config_for, gateway_for, metric_value, wait_until_idle
from tests.support.pki import TestCA
from tokenyard.gateway.app import start_gateway, stop_gateway
from tokenyard.gateway.native.site import InferenceSite
from tokenyard.sim.testing import running_sim

SLOW = {"ttft_ms": 20.0, "itl_ms": 5.0, "load_factor": 1.0}


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gw", "Content-Type: application/json", f"Content-Length: {len(body)}",
             *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, *headers: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: gw", *headers]) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length or chunked body)."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        assert headers.get("transfer-encoding") == "chunked"
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return status, headers, body


@asynccontextmanager
async def connection(port: int, tls: ssl.SSLContext | None = None
                     ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def chat(model: str, max_tokens: int = 4, stream: bool = False) -> bytes:
    return json.dumps(chat_body(model, max_tokens, stream)).encode()


async def test_one_connection_serves_many_requests_and_pipelined_ones_in_order() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw, connection(gw.port) as (reader, writer):
        for i in range(3):
            writer.write(post("/v1/chat/completions", chat(sim.model), f"x-request-id: seq-{i}"))
            status, headers, body = await read_response(reader)
            assert status == 200 and headers["x-request-id"] == f"seq-{i}"
            assert json.loads(body)["object"] == "chat.completion"
        # Three requests in one write, the last a stream: answered one after the other, in order.
        writer.write(post("/v1/chat/completions", chat(sim.model), "x-request-id: p-0")
                     + post("/v1/completions", json.dumps({"model": sim.model, "prompt": "hi"}).encode(),
                            "x-request-id: p-1")
                     + post("/v1/chat/completions", chat(sim.model, stream=True), "x-request-id: p-2"))
        answers = [await read_response(reader) for _ in range(3)]
        assert [a[1]["x-request-id"] for a in answers] == ["p-0", "p-1", "p-2"]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert answers[2][2].rstrip().endswith(b"data: [DONE]")


async def test_other_requests_are_handed_to_aiohttp_with_the_connection() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw, connection(gw.port) as (reader, writer):
        writer.write(post("/v1/chat/completions", chat(sim.model)))
        assert (await read_response(reader))[0] == 200
        # Another path on the same connection: aiohttp takes the connection over and serves it from then on.
        writer.write(get("/v1/models"))
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body)["object"] == "list"
        writer.write(post("/v1/chat/completions", chat(sim.model)))
        assert (await read_response(reader))[0] == 200
        writer.write(get("/v1/nothing-here"))
        status, _, body = await read_response(reader)
        assert status == 404 and "error" in json.loads(body)


async def test_a_large_body_flows_in_and_a_pipelined_other_path_is_handed_over_after_the_answer() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw, connection(gw.port) as (reader, writer):
        # 100 KB: more than the body reader holds before it pauses the socket (flow control on the way).
        large = json.dumps(chat_body(sim.model, 4, False, text="word " * 20000)).encode()
        writer.write(post("/v1/chat/completions", large))
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body)["usage"]["prompt_tokens"] > 20000
        writer.write(post("/v1/chat/completions", chat(sim.model)) + get("/healthz"))
        assert (await read_response(reader))[0] == 200
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body) == {"status": "ok"}


async def test_workflow_hops_served_natively_are_timed() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw, connection(gw.port) as (reader, writer):
        flow = ("x-tokenyard-workflow-id: wf-native", "x-tokenyard-workflow-name: agent")
        writer.write(post("/v1/chat/completions", chat(sim.model), *flow))
        assert (await read_response(reader))[0] == 200
        writer.write(post("/v1/chat/completions", chat(sim.model), *flow, "x-tokenyard-workflow-end: true"))
        assert (await read_response(reader))[0] == 200
        writer.write(get("/healthz"))  # only now is the connection handed to aiohttp
        assert (await read_response(reader))[0] == 200
        assert metric_value(gw, "tokenyard_workflow_duration_seconds_count", {"workflow": "agent"}) == 1


async def test_over_tls_a_connection_is_served_natively_then_handed_over(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.server()
    listen = {"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(server.cert), "key_file": str(server.key)}}
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    async with running_sim("fast") as sim, gateway_for([sim], listen=listen) as gw, \
            connection(gw.port, context) as (reader, writer):
        writer.write(post("/v1/chat/completions", chat(sim.model, stream=True)))
        status, _, body = await read_response(reader)
        assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
        writer.write(get("/v1/models"))
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body)["object"] == "list"
        writer.write(post("/v1/chat/completions", chat(sim.model)))
        assert (await read_response(reader))[0] == 200


async def test_chunked_bodies_and_expect_continue_are_served_through_aiohttp() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw:
        body = chat(sim.model)
        async with connection(gw.port) as (reader, writer):
            head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
            writer.write(head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        async with connection(gw.port) as (reader, writer):
            writer.write(post("/v1/chat/completions", b"", "Expect: 100-continue").replace(
                b"Content-Length: 0", f"Content-Length: {len(body)}".encode()))
            assert (await reader.readline()).startswith(b"HTTP/1.1 100")
            await reader.readline()
            writer.write(body)
            assert (await read_response(reader))[0] == 200


async def test_a_body_in_pieces_is_waited_for_and_a_stalled_one_is_refused_with_408() -> None:
    async with running_sim("fast") as sim, gateway_for([sim], timeouts={"request_body_ms": 300}) as gw:
        raw = post("/v1/chat/completions", chat(sim.model))
        async with connection(gw.port) as (reader, writer):
            for i in range(0, len(raw), 7):
                writer.write(raw[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0.002)
            assert (await read_response(reader))[0] == 200
            writer.write(raw[:-5])  # the last bytes never come
            status, _, body = await read_response(reader)
            assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"


async def test_bytes_that_are_not_http_get_an_openai_400_and_the_connection_closes() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw:
        for raw in (b"HELLO THERE\r\n\r\n", b"GET /healthz HTTP/1.1\nHost: gw\n\n",
                    post("/v1/chat/completions", chat(sim.model), "Transfer-Encoding: chunked")):
            async with connection(gw.port) as (reader, writer):
                writer.write(raw)
                status, headers, body = await asyncio.wait_for(read_response(reader), 5.0)
                assert status == 400 and headers["connection"] == "close"
                assert json.loads(body)["error"]["code"] == "malformed_request"
                assert await reader.read() == b""


async def test_an_early_answer_skips_the_unread_body_and_the_connection_goes_on() -> None:
    async with running_sim("fast") as sim, gateway_for([sim], limits={"max_body_bytes": 1000}) as gw, \
            connection(gw.port) as (reader, writer):
        big = b"x" * 5000
        writer.write(post("/v1/chat/completions", big))  # refused by its Content-Length, body never read
        status, _, body = await read_response(reader)
        assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"
        writer.write(post("/v1/chat/completions", chat(sim.model)))
        assert (await read_response(reader))[0] == 200
        writer.write(post("/v1/chat/completions", b"{not json"))
        status, _, body = await read_response(reader)
        assert status == 400 and "error" in json.loads(body)


async def test_connection_close_is_honoured() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw, connection(gw.port) as (reader, writer):
        writer.write(post("/v1/chat/completions", chat(sim.model), "Connection: close"))
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await reader.read() == b""  # the gateway closed the connection


async def test_a_client_leaving_mid_prefill_stops_the_upstream_at_once() -> None:
    async with running_sim("fast", ttft_ms=3000.0, itl_ms=5.0) as sim, gateway_for([sim]) as gw, \
            connection(gw.port) as (_reader, writer):
        writer.write(post("/v1/chat/completions", chat(sim.model, 500, stream=True)))
        for _ in range(100):
            if (await sim.stats())["running"]:
                break
            await asyncio.sleep(0.02)
        writer.close()  # nothing was written to the client yet: the disconnect alone must cancel
        stats = await wait_until_idle(sim, timeout=2.0)
        assert stats["running"] == 0 and stats["aborted_requests"] == 1
        assert metric_value(gw, "tokenyard_upstream_aborts_total", {"reason": "client_disconnect"}) == 1


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    async with running_sim("fast") as sim, gateway_for([sim]) as gw:
        site = next(s for s in gw.runner.sites if isinstance(s, InferenceSite))
        site._settings.keepalive_s = 0.2
        async with connection(gw.port) as (reader, writer):
            writer.write(post("/v1/chat/completions", chat(sim.model)))
            assert (await read_response(reader))[0] == 200
            assert await asyncio.wait_for(reader.read(), 2.0) == b""


async def test_shutdown_lets_a_request_in_flight_finish_and_closes_idle_connections() -> None:
    async with running_sim("fast", **SLOW) as sim:
        running = await start_gateway(config_for([sim]))
        async with connection(running.port) as (idle_reader, idle_writer):
            idle_writer.write(post("/v1/chat/completions", chat(sim.model)))
            assert (await read_response(idle_reader))[0] == 200
            async with aiohttp.ClientSession() as session:
                busy = asyncio.create_task(session.post(running.base_url + "/v1/chat/completions",
                                                        json=chat_body(sim.model, 40, stream=False)))
                await asyncio.sleep(0.05)
                await stop_gateway(running)
                resp = await busy
                assert resp.status == 200
                assert json.loads(await resp.read())["usage"]["completion_tokens"] == 40
            assert await asyncio.wait_for(idle_reader.read(), 2.0) == b""


async def test_heads_over_aiohttps_limits_get_an_openai_431_and_no_traceback(caplog: pytest.LogCaptureFixture
                                                                             ) -> None:
    caplog.set_level(logging.DEBUG)
    long_line = "X-Big: " + "a" * 9000
    many = [f"X-H{i}: v" for i in range(130)]
    async with running_sim("fast") as sim, gateway_for([sim]) as gw:
        cases = [
            post("/v1/chat/completions", chat(sim.model), long_line, "x-request-id: mine-1"),
            post("/v1/chat/completions", chat(sim.model), *many, "x-request-id: mine-1"),
            get("/v1/models", long_line, "x-request-id: mine-1"),
            get("/healthz", *many, "x-request-id: mine-1"),
            get("/healthz", "X-Huge: " + "a" * 100_000),  # more than the native head limit, in pieces
        ]
        for raw in cases:
            async with connection(gw.port) as (reader, writer):
                writer.write(raw)
                status, headers, body = await asyncio.wait_for(read_response(reader), 5.0)
                assert status == 431 and headers["connection"] == "close", raw[:60]
                assert headers["content-type"] == "application/json"
                error = json.loads(body)["error"]
                assert error["code"] == "headers_too_large" and error["message"], error
                assert headers["x-request-id"] == "mine-1" if b"mine-1" in raw else headers["x-request-id"]
                assert await reader.read() == b""
        async with connection(gw.port) as (reader, writer):  # still serving
            writer.write(post("/v1/chat/completions", chat(sim.model)))
            status, _, _ = await asyncio.wait_for(read_response(reader), 5.0)
            assert status == 200
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
