"""TLS and mTLS on the gateway's listener with certificates the test creates, the admin API on its own
listener and credential, and redaction: keys, tokens and prompts never reach the access or audit log."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp
import pytest

from tests.integration.security_gateway.helpers import Issuer, chat, gateway_config, post
from tests.support.pki import TestCA
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim

RAG = "spiffe://prod/ns/rag/sa/worker"
POLICY = {"rules": [{"name": "rag", "identities": ["spiffe://prod/ns/rag/*"], "models": ["model-a"]}]}


def client_context(ca: TestCA, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def test_tls_listener_serves_https_only(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.server()
    listen = {"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(server.cert), "key_file": str(server.key)}}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, listen=listen)) as gw, \
            aiohttp.ClientSession() as session:
        assert gw.base_url.startswith("https://")
        status, body = await post(session, gw.base_url, chat("model-a"), ssl=client_context(ca))
        assert status == 200, body
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port
            await post(session, gw.base_url.replace("https://", "http://"), chat("model-a"))
        with pytest.raises(aiohttp.ClientConnectorError):  # a client that does not trust the test CA
            await post(session, gw.base_url, chat("model-a"), ssl=ssl.create_default_context())


async def test_mtls_identity_is_the_certificate_san(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.server()
    listen = {"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(server.cert), "key_file": str(server.key),
                                                      "client_ca_file": str(ca.cert_path)}}
    rag = ca.client(RAG, stem="rag")
    other = ca.client("spiffe://prod/ns/billing/sa/api", stem="billing")
    anonymous = ca.client(None, stem="anonymous")
    expired = ca.client(RAG, stem="old", expired=True)
    (tmp_path / "stranger").mkdir()
    stranger_ca = TestCA(tmp_path / "stranger", name="stranger CA")
    forged = stranger_ca.client(RAG, stem="forged")
    async with running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, listen=listen, eastwest=POLICY)) as gw, \
            aiohttp.ClientSession() as session:
        url = gw.base_url
        status, body = await post(session, url, chat("model-a"), ssl=client_context(ca, rag.cert, rag.key))
        assert status == 200, body
        status, body = await post(session, url, chat("model-b"), ssl=client_context(ca, rag.cert, rag.key))
        assert status == 403 and RAG in body["error"]["message"]
        status, body = await post(session, url, chat("model-a"), ssl=client_context(ca, other.cert, other.key))
        assert (status, body["error"]["code"]) == (403, "model_not_allowed")
        status, body = await post(session, url, chat("model-a"),
                                  ssl=client_context(ca, anonymous.cert, anonymous.key))
        assert (status, body["error"]["code"]) == (401, "invalid_client_certificate")
        for context in (client_context(ca), client_context(ca, expired.cert, expired.key),
                        client_context(ca, forged.cert, forged.key)):
            with pytest.raises(aiohttp.ClientError):  # no certificate, expired, or from another CA: no handshake
                await post(session, url, chat("model-a"), ssl=context)
        status, _ = await post(session, url, chat("model-a"), ssl=client_context(ca, rag.cert, rag.key))
        assert status == 200


async def test_optional_client_certificates_fall_back_to_api_keys(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.server()
    listen = {"host": "127.0.0.1", "port": 0, "tls": {"cert_file": str(server.cert), "key_file": str(server.key),
                                                      "client_ca_file": str(ca.cert_path),
                                                      "require_client_cert": False}}
    rag = ca.client(RAG, stem="rag")
    sections = {"tenants": {"acme": {"class": "standard"}}, "keys": [{"key": "sk-acme", "tenant": "acme"}],
                "listen": listen, "eastwest": POLICY}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        plain = client_context(ca)
        status, body = await post(session, gw.base_url, chat("model-a"), ssl=plain)
        assert (status, body["error"]["code"]) == (401, "missing_api_key")
        assert (await post(session, gw.base_url, chat("model-b"), token="sk-acme", ssl=plain))[0] == 200
        assert (await post(session, gw.base_url, chat("model-a"), ssl=client_context(ca, rag.cert, rag.key)))[0] \
            == 200


async def test_admin_api_on_its_own_listener_and_credential(tmp_path: Path) -> None:
    sections = {
        "tenants": {"acme": {"class": "standard"}},
        "keys": [{"key": "sk-acme", "tenant": "acme"}],
        "admin": {"key": "admin-secret", "listen": {"host": "127.0.0.1", "port": 0}},
    }
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        assert gw.admin_url is not None and gw.admin_url != gw.base_url
        admin = {"Authorization": "Bearer admin-secret"}
        async with session.get(gw.base_url + "/admin/requests", headers=admin) as resp:
            assert resp.status == 404  # not on the public listener
        async with session.get(gw.admin_url + "/v1/models", headers={"Authorization": "Bearer sk-acme"}) as resp:
            assert resp.status == 404  # and the admin listener serves nothing else
        async with session.get(gw.admin_url + "/admin/requests", headers=admin) as resp:
            assert resp.status == 200
        async with session.get(gw.admin_url + "/admin/requests",
                               headers={"Authorization": "Bearer sk-acme"}) as resp:
            assert resp.status == 401  # an API key is not the admin credential
        async with session.post(gw.admin_url + "/admin/requests/nope/abort", headers=admin) as resp:
            assert resp.status == 404
        assert (await post(session, gw.base_url, chat("model-a"), token="sk-acme"))[0] == 200
    events = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert any(e["event"] == "auth_failure" and e["path"] == "/admin/requests" for e in events)
    actions = [e for e in events if e["event"] == "admin_action"]
    assert actions and actions[-1]["action"] == "POST /admin/requests/nope/abort" and actions[-1]["status"] == 404


async def test_keys_tokens_and_prompts_are_never_logged(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    secret_prompt = "my-secret-diagnosis-7f3a"
    sections = {
        "tenants": {"acme": {"class": "standard"}},
        "keys": [{"key": "sk-very-secret-key", "tenant": "acme"}],
        "jwt": issuer.section(),
        "eastwest": POLICY,
    }
    token = issuer.token(RAG)
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        assert (await post(session, gw.base_url, chat("model-a", secret_prompt), token="sk-very-secret-key"))[0] == 200
        assert (await post(session, gw.base_url, chat("model-a", secret_prompt), token=token))[0] == 200
        assert (await post(session, gw.base_url, chat("model-a", secret_prompt), token="sk-very-secret-kez"))[0] == 401
        assert (await post(session, gw.base_url, chat("model-a", secret_prompt), token=token[:-4] + "AAAA"))[0] == 401
    logs = (tmp_path / "access.log").read_text() + (tmp_path / "audit.log").read_text()
    assert logs.count("\n") >= 6
    for secret in ("sk-very-secret-key", "sk-very-secret-kez", token, token[:-4], token.split(".")[2][:20],
                   secret_prompt):
        assert secret not in logs


async def test_admin_listener_serves_https_only_when_it_has_tls(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    server = ca.server()
    admin_listen = {"host": "127.0.0.1", "port": 0,
                    "tls": {"cert_file": str(server.cert), "key_file": str(server.key)}}
    sections = {
        "tenants": {"acme": {"class": "standard"}},
        "keys": [{"key": "sk-acme", "tenant": "acme"}],
        "admin": {"key": "admin-secret", "listen": admin_listen},
    }
    admin = {"Authorization": "Bearer admin-secret"}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        assert gw.admin_url is not None and gw.admin_url.startswith("https://")
        assert gw.base_url.startswith("http://")  # the main listener keeps its own (plain) setting
        async with session.get(gw.admin_url + "/admin/requests", headers=admin, ssl=client_context(ca)) as resp:
            assert resp.status == 200
        async with session.get(gw.admin_url + "/admin/requests", ssl=client_context(ca)) as resp:
            assert resp.status == 401  # TLS is no substitute for the admin credential
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to the admin port
            async with session.get(gw.admin_url.replace("https://", "http://") + "/admin/requests",
                                   headers=admin) as resp:
                await resp.read()
        with pytest.raises(aiohttp.ClientConnectorError):  # a client that does not trust the test CA
            async with session.get(gw.admin_url + "/admin/requests", headers=admin,
                                   ssl=ssl.create_default_context()) as resp:
                await resp.read()
        assert (await post(session, gw.base_url, chat("model-a"), token="sk-acme"))[0] == 200
