"""The hot-path upstream client (``H1Client``) against scripted loopback servers: framing, keep-alive reuse,
errors with aiohttp's exception types, and closing the connection on cancel."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import free_port
from tests.unit.upstream.scripted_server import answer, scripted_server
from tokenyard.upstream.h1_connection import TCP_SAMPLE_INTERVAL_S
from tokenyard.upstream.h1_pool import H1Client, InvalidUpstreamRequest

JSON = {"Content-Type": "application/json"}


async def test_content_length_answer_and_keep_alive_reuse() -> None:
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b'{"ok":true}', extra=b"x-upstream-queue-ms: 3\r\n")) as server:
        for _ in range(3):
            resp = await client.post(server.url + "/v1/chat/completions", b'{"a":1}', JSON)
            assert resp.status == 200
            assert resp.headers["x-upstream-queue-ms"] == "3"
            assert resp.headers.get("content-type") == "application/json"
            assert await resp.read() == b'{"ok":true}'
            assert await resp.read() == b'{"ok":true}'  # read twice: the same bytes
            resp.release()
        assert server.connections == 1
        assert client.connections_opened == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in first and b"\r\nContent-Length: 7\r\n" in first
        assert first.endswith(b'\r\n\r\n{"a":1}')
    await client.close()


async def test_framing_headers_of_the_caller_are_not_sent_twice() -> None:
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b"{}")) as server:
        resp = await client.post(server.url + "/x?y=1", b"{}", {"Host": "evil", "content-length": "99", "a": "b"})
        await resp.read()
        resp.release()
        request = server.requests[0]
        assert request.startswith(b"POST /x?y=1 HTTP/1.1\r\n")
        assert b"evil" not in request and b"length: 99" not in request.lower() and b"\r\na: b\r\n" in request
    await client.close()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b"{}")) as server:
        with pytest.raises(InvalidUpstreamRequest):
            await client.post(server.url + "/x", b"{}", {"x-a": "1\r\nInjected: yes"})
        assert server.requests == []
    with pytest.raises(InvalidUpstreamRequest):
        await client.post("ftp://127.0.0.1/x", b"{}", {})
    await client.close()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"7\r\ndata: 1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(script) as server:
        resp = await client.post(server.url + "/s", b"{}", JSON)
        assert await resp.content.readany() == b"data: 1"  # before the server sends the rest
        release.set()
        rest = [chunk async for chunk in resp.content.iter_any()]
        assert b"".join(rest) == b"data: 2"
        assert resp.content.is_eof()
        resp.release()
        resp2 = await client.post(server.url + "/s", b"{}", JSON)  # the connection was clean: reused
        assert await resp2.read() == b"data: 1data: 2"
        resp2.release()
        assert server.connections == 1
    await client.close()


async def test_a_body_framed_by_the_end_of_the_connection_is_complete_but_not_reused() -> None:
    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(script) as server:
        for _ in range(2):
            resp = await client.post(server.url + "/e", b"", {})
            assert await resp.read() == b"all of it"
            resp.release()
        assert server.connections == 2
    await client.close()


async def test_connection_close_answer_is_not_reused() -> None:
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b"{}", extra=b"Connection: close\r\n")) as server:
        for _ in range(2):
            resp = await client.post(server.url + "/c", b"{}", JSON)
            await resp.read()
            resp.release()
        assert client.connections_opened == 2
    await client.close()


async def test_disconnect_before_the_head_and_mid_body_raise_aiohttp_errors() -> None:
    async def hang_up(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def short_body(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(hang_up) as server:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.post(server.url + "/h", b"{}", JSON)
    async with scripted_server(short_body) as server:
        resp = await client.post(server.url + "/b", b"{}", JSON)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
        assert resp.closed
        resp.release()
    await client.close()


async def test_a_malformed_answer_is_a_payload_error() -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(garbage) as server:
        with pytest.raises(aiohttp.ClientPayloadError):
            await client.post(server.url + "/g", b"{}", JSON)
    await client.close()


async def test_informational_answer_then_the_real_one() -> None:
    async def early_hints(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(early_hints) as server:
        resp = await client.post(server.url + "/i", b"{}", JSON)
        assert resp.status == 201 and "Link" not in resp.headers
        assert await resp.read() == b"ok"
        resp.release()
    await client.close()


async def test_cancel_while_waiting_for_the_head_closes_the_connection() -> None:
    async def never(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(never) as server:
        task = asyncio.create_task(client.post(server.url + "/n", b"{}", JSON))
        while not server.requests:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The server's next read sees the end of the connection (the script is still sleeping: it read one
        # request; a closed socket is what a model server's disconnect detection watches for).
        assert client.connections_opened == 1
    await client.close()


async def test_close_mid_stream_reaches_the_server_and_the_connection_is_not_reused() -> None:
    gone = asyncio.Event()

    async def endless(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(500):
                writer.write(b"5\r\nhello\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            gone.set()  # the server's writes fail: the client went away

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(endless) as server:
        resp = await client.post(server.url + "/z", b"{}", JSON)
        assert await resp.content.readany()
        resp.close()
        await asyncio.wait_for(gone.wait(), 10)
        resp2 = await client.post(server.url + "/z", b"{}", JSON)
        resp2.close()
        assert server.connections == 2
    await client.close()


async def test_refused_connection_is_an_os_error_and_idle_expiry_opens_a_new_one() -> None:
    client = H1Client(connect_timeout_s=2.0, idle_timeout_s=0.0)
    with pytest.raises(OSError):
        await client.post(f"http://127.0.0.1:{free_port()}/x", b"{}", JSON)
    async with scripted_server(answer(b"{}")) as server:
        for _ in range(2):
            resp = await client.post(server.url + "/x", b"{}", JSON)
            await resp.read()
            resp.release()
            await asyncio.sleep(0.01)
        assert client.connections_opened == 2  # the idle one had expired
    await client.close()


async def test_large_request_body_is_sent_whole() -> None:
    body = b"x" * 300_000
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b"{}")) as server:
        resp = await client.post(server.url + "/big", body, JSON)
        await resp.read()
        resp.release()
        assert server.requests[0].endswith(body)
    await client.close()


_HEAD_PIECES = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n",
                b"5\r\nhello\r\n", b"0\r\n\r\n", b"HTTP/1.0 404 Nope\r\n", b"Content-Length: -1\r\n", b"\xff\x00",
                b"Connection: close\r\n", b"HTTP/1.1 100 Continue\r\n\r\n", b"zz\r\n"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(_HEAD_PIECES), st.binary(max_size=40)), max_size=8))
async def test_any_answer_bytes_end_in_a_response_or_an_aiohttp_error_never_a_hang(pieces: list[bytes]) -> None:
    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(pieces))
        await writer.drain()
        writer.close()

    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(script) as server:
        try:
            resp = await asyncio.wait_for(client.post(server.url + "/f", b"{}", JSON), 5)
            try:
                await asyncio.wait_for(resp.read(), 5)
            finally:
                resp.release()
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            pass
    await client.close()


async def test_tcp_sample_per_request_and_after_close() -> None:
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b"{}")) as server:
        resp = await client.post(server.url + "/t", b"{}", JSON)
        await resp.read()
        info, retransmits = resp.tcp_sample(100.0)
        assert info is not None and 0 < info.rtt_s < 1.0 and retransmits == 0
        resp.close()
        after, _ = resp.tcp_sample(100.0)  # read just before the close, never from a reused descriptor
        assert after is not None
    await client.close()


async def test_tcp_info_is_read_at_most_once_per_interval_per_connection() -> None:
    client = H1Client(connect_timeout_s=2.0)
    async with scripted_server(answer(b"{}")) as server:
        sampled_at = []
        for now in (100.0, 100.0 + TCP_SAMPLE_INTERVAL_S / 2, 100.0 + 2 * TCP_SAMPLE_INTERVAL_S):
            resp = await client.post(server.url + "/t", b"{}", JSON)
            await resp.read()
            info, retransmits = resp.tcp_sample(now)
            assert info is not None and retransmits == 0  # within the interval: the last sample stands
            sampled_at.append(resp._conn.sampled_at)
            resp.release()
        assert client.connections_opened == 1
        assert sampled_at == [100.0, 100.0, 100.0 + 2 * TCP_SAMPLE_INTERVAL_S]
    await client.close()
