"""A corpus of hostile inputs over raw sockets: each gets a 4xx (never a 5xx, hang or crash), and the gateway
keeps serving. Raw bytes, because a well-behaved HTTP client refuses to send most of these."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from tests.integration.security_gateway.helpers import chat, gateway_config, post
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.sim.testing import running_sim

KEY = "sk-hostile"
SECTIONS = {
    "tenants": {"acme": {"class": "standard"}},
    "keys": [{"key": KEY, "tenant": "acme"}],
    "limits": {"max_body_bytes": 65_536, "max_header_bytes": 8_192},
    "timeouts": {"request_body_ms": 500},
}


async def exchange(gw: RunningGateway, raw: bytes, pause_after: float = 0.0, timeout: float = 10.0) -> bytes:
    """Send ``raw`` on a fresh connection (optionally then stall), return what the gateway answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(raw)
        await writer.drain()
        if pause_after:
            await asyncio.sleep(pause_after)
        return await asyncio.wait_for(reader.read(1 << 20), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int:
    assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), answer[:200]
    return int(answer[9:12])


def post_raw(body: bytes, path: str = "/v1/chat/completions", extra: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n").encode() \
        + extra + b"\r\n" + body


def get_raw(target: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + b"\r\n"


BODIES: dict[str, bytes] = {
    "deeply nested": b'{"model":"model-a","messages":' + b"[" * 200_00 + b"]" * 200_00 + b"}",
    "deeply nested unknown field": b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"x":'
                                   + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "nested objects": b'{"model":"model-a","messages":[{"role":"user","content":' + b'{"a":' * 5000
                      + b"1" + b"}" * 5000 + b"}]}",
    "wrong types": b'{"model":5,"messages":"hello","max_tokens":"many"}',
    "array body": b"[1,2,3]",
    "huge integer": b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"max_tokens":1' + b"0" * 400
                    + b"}",
    "huge float": b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"temperature":1e400}',
    "nan": b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
    "negative n": b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"n":-1}',
    "invalid utf-8": b'{"model":"model-a","messages":[{"role":"user","content":"\xff\xfe\xc3"}]}',
    "overlong utf-8": b'{"model":"model-a","messages":[{"role":"user","content":"\xc0\xaf"}]}',
    "lone surrogate": b'{"model":"model-a","messages":[{"role":"user","content":"\\ud800"}],"n":0}',
    "truncated": b'{"model":"model-a","messages":[{"role":"us',
    "empty": b"",
    "null bytes": b'{"model":"model-a\x00","messages":[]}',
    "too many stops": b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}',
    "unknown role": b'{"model":"model-a","messages":[{"role":"root","content":"hi"}]}',
}

TARGETS: dict[str, bytes] = {
    "dot-dot": b"/dashboard/../../etc/passwd",
    "encoded dot-dot": b"/dashboard/assets/%2e%2e/%2e%2e/etc/passwd",
    "encoded slash": b"/dashboard/assets/..%2f..%2fetc%2fpasswd",
    "double encoded": b"/dashboard/assets/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "backslash": b"/dashboard/assets/..\\..\\etc\\passwd",
    "nul": b"/dashboard/assets/app.js%00.png",
    "absolute": b"//etc/passwd",
    "unknown asset": b"/dashboard/assets/passwd",
}


@pytest.fixture
async def gateway(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **SECTIONS)) as gw:
        yield gw


async def _still_serving(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await post(session, gw.base_url, chat("model-a"), token=KEY)
        assert status == 200, body


async def test_hostile_bodies_get_4xx(gateway: RunningGateway) -> None:
    for name, body in BODIES.items():
        answer = await exchange(gateway, post_raw(body))
        assert 400 <= status_of(answer) < 500, (name, answer[:300])
        assert b'"error"' in answer, name
    for path in ("/v1/completions", "/v1/embeddings"):
        for name, body in BODIES.items():
            assert 400 <= status_of(await exchange(gateway, post_raw(body, path))) < 500, (path, name)
    await _still_serving(gateway)


async def test_oversized_bodies_get_413(gateway: RunningGateway) -> None:
    big = b'{"model":"model-a","messages":[{"role":"user","content":"' + b"x" * 100_000 + b'"}]}'
    assert status_of(await exchange(gateway, post_raw(big))) == 413
    # Announced as huge, nothing sent: refused on the header alone.
    announced = post_raw(b"").replace(b"Content-Length: 0", b"Content-Length: 10000000000")
    assert status_of(await exchange(gateway, announced)) == 413
    chunked = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    chunked += b"".join(b"%x\r\n%s\r\n" % (8192, b"x" * 8192) for _ in range(10)) + b"0\r\n\r\n"
    assert status_of(await exchange(gateway, chunked)) == 413
    await _still_serving(gateway)


async def test_header_tricks_get_4xx(gateway: RunningGateway) -> None:
    ok = chat("model-a")
    body = str(ok).replace("'", '"').encode()
    cases = {
        "cr in a value": post_raw(body, extra=b"x-request-id: a\rSet-Cookie: evil=1\r\n"),
        "lf in a value": post_raw(body, extra=b"x-request-id: a\nSet-Cookie: evil=1\r\n"),
        "nul in a value": post_raw(body, extra=b"x-tokenyard-class: std\x00ard\r\n"),
        "space before colon": post_raw(body, extra=b"x-request-id : a\r\n"),
        "one huge header": post_raw(body, extra=b"x-big: " + b"a" * 20_000 + b"\r\n"),
        "many headers": post_raw(body, extra=b"".join(b"x-h%d: %s\r\n" % (i, b"b" * 500) for i in range(40))),
        "two content lengths": post_raw(body, extra=b"Content-Length: 5\r\n"),
        "smuggling": post_raw(body, extra=b"Transfer-Encoding: chunked\r\n"),
        "bad deadline": post_raw(body, extra=b"x-tokenyard-deadline-ms: 1e999\r\n"),
    }
    for name, raw in cases.items():
        answer = await exchange(gateway, raw)
        assert 400 <= status_of(answer) < 500, (name, answer[:300])
        assert b"evil" not in answer.split(b"\r\n\r\n", 1)[0], name
    fine = b'{"model":"model-a","messages":[{"role":"user","content":"hi"}]}'
    assert status_of(await exchange(gateway, post_raw(fine, extra=b"x-h: " + b"b" * 500 + b"\r\n"))) == 200
    await _still_serving(gateway)


async def test_path_tricks_on_static_files(gateway: RunningGateway) -> None:
    for name, target in TARGETS.items():
        answer = await exchange(gateway, get_raw(target))
        assert 400 <= status_of(answer) < 500, (name, answer[:300])
        assert b"root:" not in answer, name
    assert status_of(await exchange(gateway, get_raw(b"/dashboard"))) == 200
    await _still_serving(gateway)


async def test_slow_loris_bodies_time_out_and_others_are_served(gateway: RunningGateway) -> None:
    body = b'{"model":"model-a","messages":[{"role":"user","content":"hi"}]}'
    stalled = [asyncio.create_task(exchange(gateway, post_raw(body)[: -len(body) + 5], timeout=15.0))
               for _ in range(20)]
    await asyncio.sleep(0.1)
    await _still_serving(gateway)  # while twenty clients trickle
    answers = await asyncio.gather(*stalled)
    assert [status_of(a) for a in answers] == [408] * 20
    await _still_serving(gateway)
