"""Every answer of the gateway carries ``x-request-id``: echoed when the client sent one, generated otherwise."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.gateway.helpers import gateway_for
from tests.integration.gateway.test_native_server import connection, read_response
from tokenyard.sim.testing import running_sim

ADMIN_KEY = "a" * 32
AUTH = {"keys": [{"key": "sk-acme", "tenant": "acme"}], "tenants": {"acme": {"class": "standard"}},
        "admin": {"key": ADMIN_KEY}}
KEY = {"Authorization": "Bearer sk-acme"}


async def test_every_answer_has_a_request_id() -> None:
    async with running_sim("fast") as sim, gateway_for([sim], **AUTH) as gw, aiohttp.ClientSession() as session:
        big = {f"x-big-{i}": "v" * 7000 for i in range(3)}  # 21 KB of headers: the HTTP guard's 431
        cases: list[tuple[str, str, dict[str, str], int]] = [
            ("GET", "/v1/models", KEY, 200),
            ("GET", "/v1/models", {}, 401),
            ("GET", "/no/such/path", KEY, 404),
            ("DELETE", "/v1/models", KEY, 405),
            ("GET", "/healthz", {}, 200),
            ("GET", "/readyz", {}, 200),
            ("GET", "/metrics", {}, 200),
            ("GET", "/admin/requests", {"Authorization": f"Bearer {ADMIN_KEY}"}, 200),
            ("GET", "/admin/requests", KEY, 401),
            ("GET", "/v1/models", {**KEY, **big}, 431),
        ]
        for method, path, headers, status in cases:
            for given in ("client-id-7", None):
                sent = {**headers, "x-request-id": given} if given is not None else headers
                async with session.request(method, gw.base_url + path, headers=sent) as resp:
                    assert resp.status == status, (method, path, await resp.text())
                    got = resp.headers.get("x-request-id")
                assert got, (method, path)
                assert (got == given) if given is not None else got.startswith("req-"), (method, path, got)
        # An unacceptable id (too long) is replaced, not echoed.
        async with session.get(gw.base_url + "/healthz", headers={"x-request-id": "x" * 500}) as resp:
            assert resp.headers["x-request-id"].startswith("req-")
        # The native server's own refusal of bytes that are not HTTP carries one too.
        async with connection(gw.port) as (reader, writer):
            writer.write(b"HELLO THERE\r\n\r\n")
            status, response_headers, _ = await asyncio.wait_for(read_response(reader), 5.0)
            assert status == 400 and response_headers["x-request-id"].startswith("req-")
