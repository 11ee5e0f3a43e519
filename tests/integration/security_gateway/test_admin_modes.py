"""How the admin API is guarded (``GatewayConfig.admin_mode``): open without an ``admin`` section only when auth is
off on a loopback listener, and then only to loopback callers that no other site's page sent; 403
``admin_disabled`` when callers need keys but no admin credential is configured; the admin key otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.security_gateway.helpers import gateway_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, Any]]:
    async with session.get(url + "/admin/requests", headers=headers or {}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_auth_off_on_loopback_opens_the_admin_api_to_local_callers(tmp_path: Path) -> None:
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path)) as gw, \
            aiohttp.ClientSession() as session:
        assert gw.gateway.config.admin_mode == "open"
        status, body = await get(session, gw.base_url)
        assert status == 200 and body == {"requests": []}
        status, body = await get(session, gw.base_url, {"Origin": gw.base_url})  # the gateway's own page
        assert status == 200
        # a page of another site in the operator's browser, or a DNS-rebound name: refused
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Host": "evil.example"}):
            status, body = await get(session, gw.base_url, headers)
            assert status == 403 and body["error"]["code"] == "admin_not_local", headers
            assert set(body["error"]) >= {"message", "type", "code"}
        async with session.post(gw.base_url + "/admin/degradation", json={"level": 2},
                                headers={"Origin": "https://evil.example"}) as resp:
            assert resp.status == 403
        if gw.gateway.traffic.degrade is not None:
            assert gw.gateway.traffic.degrade.snapshot()["pinned"] is None


async def test_keys_without_an_admin_credential_disable_it(tmp_path: Path) -> None:
    keys = {"tenants": {"t": {}}, "keys": [{"key": "user-key", "tenant": "t"}]}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **keys)) as gw, \
            aiohttp.ClientSession() as session:
        assert gw.gateway.config.admin_mode == "disabled"
        status, body = await get(session, gw.base_url, {"Authorization": "Bearer user-key"})
        assert status == 403 and body["error"]["code"] == "admin_disabled"
        assert "admin.key" in body["error"]["message"]


async def test_an_admin_section_requires_its_key_even_with_auth_off(tmp_path: Path) -> None:
    async with running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, admin={"key": "adm"})) as gw, \
            aiohttp.ClientSession() as session:
        assert gw.gateway.config.admin_mode == "key"
        status, body = await get(session, gw.base_url)
        assert status == 401 and body["error"]["code"] == "missing_api_key"
        status, _ = await get(session, gw.base_url, {"Authorization": "Bearer adm"})
        assert status == 200
        # Raw non-UTF-8 bytes as the admin key (no HTTP client sends them): a 401, not a 500.
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET /admin/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer adm\xff\r\n"
                     b"Connection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(1 << 16), 10.0)
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 401") and b"invalid_api_key" in answer, answer[:300]

