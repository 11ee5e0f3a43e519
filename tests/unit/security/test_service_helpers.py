"""Pure helpers of the gateway's security layer: credential shapes, key-store scope, budgets, path guard."""

from __future__ import annotations

import asyncio
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tokenyard.security.budgets import Budget, BudgetGuard, budgets_for
from tokenyard.security.http_guard import suspicious_path
from tokenyard.security.jwt_auth import AuthError, JwksSource, JwtSettings
from tokenyard.security.keystore import KeyRecord
from tokenyard.security.service import key_from_record, looks_like_jwt
from tokenyard.state import MemoryState


def test_jwt_shape() -> None:
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    for value in ("ty-abc.def.ghi", "eyJ.only-two", "sk-acme", "eyJa.b.c.d", ""):
        assert not looks_like_jwt(value), value


def test_key_store_record_becomes_the_scope_stages_apply() -> None:
    record = KeyRecord(key_id="key_1", name="worker", tenant="acme", key_sha256="0" * 64, models=("chat",),
                       classes=("batch",), daily_token_budget=10, monthly_token_budget=100, rpm=5, tpm=50)
    key = key_from_record(record)
    assert (key.name, key.tenant, key.models, key.classes) == ("worker", "acme", ("chat",), ("batch",))
    assert (key.rpm, key.tpm, key.tokens_per_day, key.tokens_per_month) == (5, 50, 10, 100)
    assert key.key is None


def test_budgets_that_apply() -> None:
    found = budgets_for("k", 10, None, "acme", None, 1000)
    assert found == [Budget("key", "k", "day", 10), Budget("tenant", "acme", "month", 1000)]
    assert budgets_for("k", None, None, "", 5, 5) == []  # no tenant name: nothing to count against


def test_guard_checks_without_consuming_and_charges_unconditionally() -> None:
    async def run() -> None:
        guard = BudgetGuard(MemoryState())
        budget = [Budget("tenant", "acme", "day", 100)]
        now = 1_700_000_000.0
        assert await guard.check(budget, now) is None
        assert await guard.check(budget, now) is None  # checking consumed nothing
        await guard.charge(budget, 150, now)  # already spent: recorded even past the limit
        refused = await guard.check(budget, now)
        assert refused is not None and refused.used == 150
        assert "tenant 'acme' has used 150 of its 100 tokens this day" in refused.message()
        assert await guard.check(budget, now + 86_400) is None  # the next UTC day starts afresh

    asyncio.run(run())


@pytest.mark.parametrize("path", [
    "/dashboard/../../etc/passwd", "/a/./b", "/..", "/dashboard/%2e%2e/x", "/dashboard/%2E%2E/x",
    "/x/..%2fetc", "/x/%252e%252e/y", "/x\\..\\y", "/x%00.js", "/x/%0d%0aSet-Cookie:a", "/%25252e%25252e/",
])
def test_suspicious_paths(path: str) -> None:
    assert suspicious_path(path)


@pytest.mark.parametrize("path", [
    "/v1/chat/completions", "/dashboard/assets/app.js", "/admin/requests/abc-1/abort", "/v1/tools/search",
    "/x/..y", "/x/y..", "/v1/models?x=../", "/a%20b",
])
def test_ordinary_paths(path: str) -> None:
    assert not suspicious_path(path)


def test_unknown_key_ids_cannot_make_the_gateway_refetch_the_jwks() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256"})
    document = json.dumps({"keys": [jwk]}).encode()
    fetched: list[str] = []
    now = [1000.0]

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return document

    settings = JwtSettings(issuer="i", audience="a", jwks_url="https://idp.test/jwks", jwks_ttl_s=300)
    source = JwksSource(settings, fetch=fetch, clock=lambda: now[0], min_reload_s=10)
    assert source.key("k1").key_id == "k1" and len(fetched) == 1
    for attempt in range(50):
        with pytest.raises(AuthError):
            source.key(f"made-up-{attempt}")
    assert len(fetched) == 1  # throttled
    now[0] += 11
    with pytest.raises(AuthError):
        source.key("made-up-again")
    assert len(fetched) == 2  # a rotation is still picked up after min_reload_s
    now[0] += 400
    source.key("k1")
    assert len(fetched) == 3  # and the TTL still applies
