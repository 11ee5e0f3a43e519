"""Each policy decision on a real gateway over a simulator: missing, wrong, revoked and expired credentials,
a key allowed model A calling model B, JWT identities under the default-deny east-west policy, token budgets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from click.testing import CliRunner

from tests.integration.loopback_app import serving as serving_app
from tests.integration.security_gateway.helpers import Issuer, chat, gateway_config, post
from tokenyard.gateway.app import running_gateway
from tokenyard.security.cli import keys_group
from tokenyard.security.keystore import SqliteKeyStore
from tokenyard.sim.testing import running_sim

KEYS = {
    "tenants": {"acme": {"class": "standard"}},
    "keys": [{"key": "sk-only-a", "tenant": "acme", "models": ["model-a"]}],
}


async def test_config_key_decisions(tmp_path: Path) -> None:
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **KEYS)) as gw, \
            aiohttp.ClientSession() as session:
        status, body = await post(session, gw.base_url, chat("model-a"))
        assert (status, body["error"]["code"]) == (401, "missing_api_key")
        status, body = await post(session, gw.base_url, chat("model-a"), token="sk-wrong")
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        async with session.post(gw.base_url + "/v1/chat/completions", json=chat("model-a"),
                                headers={"Authorization": "Basic c2stb25seS1hOg=="}) as resp:
            assert resp.status == 401
        status, body = await post(session, gw.base_url, chat("model-a"), token="sk-only-a")
        assert status == 200, body
        status, body = await post(session, gw.base_url, chat("model-b"), token="sk-only-a")
        assert (status, body["error"]["code"]) == (403, "model_not_allowed")
        assert "model-b" in body["error"]["message"]
        async with session.get(gw.base_url + "/v1/models") as resp:
            assert resp.status == 401
        async with session.get(gw.base_url + "/v1/models", headers={"Authorization": "Bearer sk-only-a"}) as resp:
            assert resp.status == 200
    audit = (tmp_path / "audit.log").read_text()
    assert audit.count('"event":"auth_failure"') >= 3 and "sk-wrong" not in audit


def _second(tmp_path: Path) -> Path:
    """A directory for the second gateway's logs."""
    path = tmp_path / "two"
    path.mkdir(exist_ok=True)
    return path


async def _until_refused(session: aiohttp.ClientSession, url: str, token: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        status, body = await post(session, url, chat("model-a"), token=token)
        if status == 401:
            assert body["error"]["code"] == "revoked_api_key"
            return time.monotonic()
        assert status == 200, body
        await asyncio.sleep(0.02)
    raise AssertionError("the revoked key was still accepted")


async def test_key_store_revocation_reaches_a_second_gateway_within_a_second(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    store = SqliteKeyStore(store_path)
    plaintext, record = store.create("acme", name="worker", models=["model-a"])
    expiring, _ = store.create("acme", name="brief", expires_in_s=0.3)
    sections = {**KEYS, "key_store": {"path": str(store_path)}}
    async with running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, **sections)) as one, \
            running_gateway(gateway_config(sim, _second(tmp_path), **sections)) as two, \
            aiohttp.ClientSession() as session:
        for gw in (one, two):
            status, body = await post(session, gw.base_url, chat("model-a"), token=plaintext)
            assert status == 200, body
            status, body = await post(session, gw.base_url, chat("model-b"), token=plaintext)
            assert (status, body["error"]["code"]) == (403, "model_not_allowed")
        await asyncio.sleep(0.35)
        status, body = await post(session, one.base_url, chat("model-a"), token=expiring)
        assert (status, body["error"]["code"]) == (401, "expired_api_key")
        revoked_at = time.monotonic()
        await asyncio.to_thread(store.revoke, record.key_id)
        seen = [await _until_refused(session, gw.base_url, plaintext, revoked_at + 5.0) for gw in (one, two)]
        assert max(seen) - revoked_at < 1.0, [s - revoked_at for s in seen]


async def test_revocation_broadcast_over_redis_by_the_cli(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    store_path = tmp_path / "keys.db"
    store = SqliteKeyStore(store_path)
    plaintext, record = store.create("acme", name="worker")
    # Polling is slowed to a minute: only the broadcast can make the revocation visible quickly.
    sections = {**KEYS, "state": redis_server.url, "key_store": {"path": str(store_path), "poll_ms": 60_000}}
    async with running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, **sections)) as one, \
            running_gateway(gateway_config(sim, _second(tmp_path), **sections)) as two, \
            aiohttp.ClientSession() as session:
        for gw in (one, two):
            assert (await post(session, gw.base_url, chat("model-a"), token=plaintext))[0] == 200
        await asyncio.sleep(0.2)  # both subscriptions are live
        revoked_at = time.monotonic()
        result = await asyncio.to_thread(CliRunner().invoke, keys_group, [
            "revoke", "--store", str(store_path), "--state", redis_server.url, record.key_id])
        assert result.exit_code == 0 and "revoked" in result.output, result.output
        seen = [await _until_refused(session, gw.base_url, plaintext, revoked_at + 5.0) for gw in (one, two)]
        assert max(seen) - revoked_at < 1.0


async def test_jwt_identities_and_the_east_west_policy(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    rag = "spiffe://prod/ns/rag/sa/worker"
    sections = {
        **KEYS,
        "jwt": issuer.section(),
        "eastwest": {"rules": [{"name": "rag", "identities": ["spiffe://prod/ns/rag/*"], "models": ["model-a"],
                                "tools": ["search"], "routes": ["/v1/retrieve"]}]},
    }
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        url = gw.base_url
        assert (await post(session, url, chat("model-a"), token=issuer.token(rag)))[0] == 200
        status, body = await post(session, url, chat("model-b"), token=issuer.token(rag))
        assert status == 403 and rag in body["error"]["message"] and "model-b" in body["error"]["message"]
        stranger = issuer.token("spiffe://prod/ns/billing/sa/api")
        status, body = await post(session, url, chat("model-a"), token=stranger)
        assert (status, body["error"]["code"]) == (403, "model_not_allowed")
        status, body = await post(session, url, chat("model-a"), token=issuer.token(rag, exp=int(time.time()) - 60))
        assert (status, body["error"]["code"]) == (401, "expired_token")
        status, body = await post(session, url, chat("model-a"), token=issuer.token(rag, aud="elsewhere"))
        assert (status, body["error"]["code"]) == (401, "invalid_token")
        forged = Issuer(_second(tmp_path)).token(rag)  # right claims, signed by a key the JWKS does not hold
        assert (await post(session, url, chat("model-a"), token=forged))[0] == 401
        # Tools and routes: the policy decides before any route handler runs.
        status, body = await post(session, url, {"arguments": {}}, token=issuer.token(rag),
                                  path="/v1/tools/delete_everything")
        assert (status, body["error"]["code"]) == (403, "tool_not_allowed")
        assert "delete_everything" in body["error"]["message"]
        status, _ = await post(session, url, {"arguments": {}}, token=issuer.token(rag), path="/v1/tools/search")
        assert status != 403
        status, body = await post(session, url, {"query": "q"}, token=stranger, path="/v1/retrieve")
        assert (status, body["error"]["code"]) == (403, "route_not_allowed")
        status, _ = await post(session, url, {"query": "q"}, token=None, path="/v1/tools/search")
        assert status == 401


async def test_token_budgets_stop_a_key_and_a_tenant(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    store = SqliteKeyStore(store_path)
    capped, _ = store.create("acme", name="capped", daily_token_budget=40)
    sections = {
        "tenants": {"acme": {"class": "standard"}, "thrifty": {"class": "standard", "tokens_per_month": 60}},
        "keys": [{"key": "sk-thrifty", "tenant": "thrifty"}],
        "key_store": {"path": str(store_path)},
    }
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        for token, scope in ((capped, "key 'capped'"), ("sk-thrifty", "tenant 'thrifty'")):
            answered = 0
            for _ in range(20):
                status, body = await post(session, gw.base_url, chat("model-a", max_tokens=8), token=token)
                if status == 429:
                    break
                assert status == 200, body
                answered += 1
            assert 1 <= answered < 20
            assert body["error"]["code"] == "budget_exhausted"
            assert scope in body["error"]["message"] and "token budget exhausted" in body["error"]["message"]


async def test_key_store_keys_have_their_own_request_rate(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    limited, _ = SqliteKeyStore(store_path).create("acme", name="limited", rpm=2)
    sections = {**KEYS, "key_store": {"path": str(store_path)}}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        statuses = [(await post(session, gw.base_url, chat("model-a"), token=limited)) for _ in range(3)]
        assert [s for s, _ in statuses] == [200, 200, 429]
        assert "key:limited" in statuses[2][1]["error"]["message"]
        assert (await post(session, gw.base_url, chat("model-a"), token="sk-only-a"))[0] == 200  # others unaffected


async def test_ratelimit_headers_report_the_tightest_of_the_key_and_its_tenant(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    limited, _ = SqliteKeyStore(store_path).create("acme", name="limited", rpm=3)
    sections = {"tenants": {"acme": {"class": "standard", "rpm": 600}},
                "keys": [{"key": "sk-cfg", "tenant": "acme", "name": "cfg", "rpm": 2}],
                "key_store": {"path": str(store_path)}}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        for token, limit, expected in ((limited, "3", ["2", "1", "0", "0"]), ("sk-cfg", "2", ["1", "0", "0"])):
            seen = []
            for _ in expected:
                async with session.post(gw.base_url + "/v1/chat/completions", json=chat("model-a"),
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
                    await resp.read()
                    seen.append((resp.headers["x-ratelimit-limit-requests"],
                                 resp.headers["x-ratelimit-remaining-requests"]))
            # The store key's limit was hidden behind the tenant's: "600, 599 left" and then a 429.
            assert seen == [(limit, left) for left in expected], (limit, seen)


async def test_a_store_key_named_like_a_config_key_has_its_own_limits(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    namesake, _ = SqliteKeyStore(store_path).create("acme", name="ci")
    sections = {"tenants": {"acme": {"class": "standard"}},
                "keys": [{"key": "sk-ci", "tenant": "acme", "name": "ci", "rpm": 2}],
                "key_store": {"path": str(store_path)}}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, \
            aiohttp.ClientSession() as session:
        # The store key has no rpm: the config key's 2 rpm is neither spent by it nor applied to it.
        assert [(await post(session, gw.base_url, chat("model-a"), token=namesake))[0] for _ in range(3)] == [200] * 3
        assert [(await post(session, gw.base_url, chat("model-a"), token="sk-ci"))[0] for _ in range(3)] \
            == [200, 200, 429]


async def test_key_store_key_limits_are_shared_by_replicas_on_redis(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    store_path = tmp_path / "keys.db"
    limited, _ = SqliteKeyStore(store_path).create("acme", name="limited", rpm=3)
    sections = {**KEYS, "state": redis_server.url, "key_store": {"path": str(store_path)}}
    async with running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, **sections)) as one, \
            running_gateway(gateway_config(sim, _second(tmp_path), **sections)) as two, \
            aiohttp.ClientSession() as session:
        statuses = [(await post(session, gw.base_url, chat("model-a"), token=limited))[0]
                    for gw in (one, two, one, two, one, two)]
        # 3 rpm in all, not 3 per replica (each replica counted alone: 6 admitted).
        assert statuses == [200, 200, 200, 429, 429, 429], statuses


@asynccontextmanager
async def jwks_url_sections(jwks: Callable[[web.Request], Awaitable[web.Response]], issuer_section: dict[str, Any],
                            identity: str) -> AsyncIterator[dict[str, Any]]:
    """Serve ``jwks`` at ``/jwks`` on loopback; yields gateway sections whose JWT keys come from that URL (not a
    file) and whose east-west policy lets ``identity`` use model-a."""
    app = web.Application()
    app.router.add_get("/jwks", jwks)
    async with serving_app(app) as base_url:
        section = {**issuer_section, "jwks_url": base_url + "/jwks"}
        del section["jwks_file"]
        yield {**KEYS, "jwt": section,
               "eastwest": {"rules": [{"name": "rag", "identities": [identity], "models": ["model-a"]}]}}


async def test_jwks_from_a_url_is_fetched_ahead_and_not_on_demand(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    hits: list[str] = []

    async def jwks(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=issuer.jwks_file.read_bytes(), content_type="application/json")

    rag = "spiffe://prod/ns/rag/sa/worker"
    async with jwks_url_sections(jwks, issuer.section(), rag) as sections, running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, aiohttp.ClientSession() as session:
        assert hits == ["/jwks"]  # loaded at start
        assert (await post(session, gw.base_url, chat("model-a"), token=issuer.token(rag)))[0] == 200
        for n in range(20):  # tokens naming key ids nobody issued: refused without refetching each time
            bogus = jwt.encode({"sub": rag}, issuer.key, algorithm="RS256", headers={"kid": f"k{n + 2}"})
            assert (await post(session, gw.base_url, chat("model-a"), token=bogus))[0] == 401
        assert len(hits) == 1


async def _raw_status(port: int, path: str, authorization: bytes) -> tuple[int, bytes]:
    """Send ``authorization`` as raw bytes (no client sends non-UTF-8 headers); the status and the body."""
    body = b'{"model":"model-a","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + authorization
                     + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body) + body)
        answer = await asyncio.wait_for(reader.read(1 << 16), 10.0)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(answer[9:12]), answer.partition(b"\r\n\r\n")[2]


async def test_non_utf8_credentials_are_401_with_a_key_store_and_jwt(tmp_path: Path) -> None:
    store_path = tmp_path / "keys.db"
    SqliteKeyStore(store_path).create("acme", name="worker")
    sections = {**KEYS, "key_store": {"path": str(store_path)}, "jwt": Issuer(tmp_path).section()}
    async with running_sim("fast") as sim, running_gateway(gateway_config(sim, tmp_path, **sections)) as gw:
        for path in ("/v1/chat/completions", "/v1/models"):
            for credential, code in ((b"Bearer sk-\xff\xfe", b"invalid_api_key"),
                                     (b"Bearer eyJ\xff.e30.c2ln", b"invalid_token")):
                status, body = await _raw_status(gw.port, path, credential)
                assert status == 401 and code in body, (path, credential, status, body)


async def test_a_rotated_jwks_url_is_fetched_off_the_event_loop(tmp_path: Path) -> None:
    # The JWKS server runs on the gateway's own event loop: a fetch made on that loop (as it was) could not be
    # answered until it timed out, so the rotated key was never seen; fetched from a thread it is.
    old, new = Issuer(tmp_path), Issuer(_second(tmp_path))
    serving = [old]
    hits: list[str] = []

    async def jwks(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=serving[-1].jwks_file.read_bytes().replace(b'"k1"', b'"k2"')
                            if serving[-1] is new else old.jwks_file.read_bytes(), content_type="application/json")

    rag = "spiffe://prod/ns/rag/sa/worker"
    async with jwks_url_sections(jwks, old.section(), rag) as sections, running_sim("fast") as sim, \
            running_gateway(gateway_config(sim, tmp_path, **sections)) as gw, aiohttp.ClientSession() as session:
        assert (await post(session, gw.base_url, chat("model-a"), token=old.token(rag)))[0] == 200
        serving.append(new)  # the identity provider rotates to a new key, k2
        source = gw.gateway.security._jwks
        assert source is not None
        source._attempted_at = float("-inf")  # as if the 10 s between on-demand fetches had passed
        rotated = jwt.encode({"iss": old.section()["issuer"], "aud": old.section()["audience"], "sub": rag,
                              "exp": int(time.time()) + 300}, new.key, algorithm="RS256", headers={"kid": "k2"})
        status, body = await post(session, gw.base_url, chat("model-a"), token=rotated)
        assert status == 200, body
        assert len(hits) == 2
