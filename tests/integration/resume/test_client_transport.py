"""Client-path telemetry: the client's protocol and TLS version, and a resumed stream over TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from tests.integration.resume.helpers import auth, body, metric_value, resume, resume_config, start_and_leave
from tests.support.pki import TestCA
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_tls_version_is_counted_and_a_stream_resumes_over_tls(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.server()
    listen = {"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(server.cert), "key_file": str(server.key)}}
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    async with running_sim(itl_ms=30.0) as sim, running_gateway(resume_config([sim], listen=listen)) as gw, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        got = await start_and_leave(session, gw.base_url, body(20), 2, auth())
        assert await resume(session, gw.base_url, got, auth()) == 200
        assert got.done and got.content_events() == 20
        text = await (await session.get(gw.base_url + "/metrics")).text()
        assert metric_value(text, "tokenyard_client_requests_total", protocol="HTTP/1.1", tls="TLSv1.3") == 1
        assert metric_value(text, "tokenyard_client_requests_total", tls="none") == 0
