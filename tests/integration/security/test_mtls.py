"""mTLS on a real loopback listener: the client certificate's URI SAN becomes the caller's identity."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.pki import TestCA
from tokenyard.security.jwt_auth import AuthError, Identity
from tokenyard.security.mtls import identity_from_peercert, server_ssl_context


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path)


@pytest.fixture
async def identity_server(ca: TestCA) -> AsyncIterator[tuple[int, list[Identity | str]]]:
    """A TLS server that records the identity of each peer (or why it has none)."""
    issued = ca.server()
    context = server_ssl_context(str(issued.cert), str(issued.key), client_ca_file=str(ca.cert_path),
                                 require_client_cert=True)
    seen: list[Identity | str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.append(identity_from_peercert(writer.get_extra_info("peercert")))
        except AuthError as exc:
            seen.append(exc.reason)
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, seen


def _client_context(ca: TestCA, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def _talk(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_spiffe_identity_from_client_certificate(ca: TestCA, identity_server: tuple[int, list]) -> None:
    port, seen = identity_server
    client = ca.client("spiffe://prod/ns/rag/sa/worker")
    assert await _talk(port, _client_context(ca, client.cert, client.key)) == b"ok"
    assert seen == [Identity(kind="mtls", subject="spiffe://prod/ns/rag/sa/worker")]


async def test_certificate_without_uri_san_has_no_identity(ca: TestCA, identity_server: tuple[int, list]) -> None:
    port, seen = identity_server
    client = ca.client(None, stem="nouri")
    assert await _talk(port, _client_context(ca, client.cert, client.key)) == b"ok"
    assert seen == ["client certificate has no URI subject alternative name"]


@pytest.mark.parametrize("case", ["no-cert", "expired", "foreign-ca"])
async def test_handshake_refused(case: str, ca: TestCA, tmp_path: Path, identity_server: tuple[int, list]) -> None:
    port, seen = identity_server
    if case == "no-cert":
        context = _client_context(ca)
    elif case == "expired":
        client = ca.client("spiffe://prod/x", stem="old", expired=True)
        context = _client_context(ca, client.cert, client.key)
    else:
        other = TestCA(tmp_path, name="other CA")
        client = other.client("spiffe://prod/x", stem="foreign")
        context = _client_context(ca, client.cert, client.key)
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        data = await _talk(port, context)
        if not data:  # TLS 1.3: the server's refusal can surface as an empty read
            raise ConnectionError("closed")
    assert seen == []
