"""Deferred requests with auth on (gateway/batch.py): nothing is accepted before the credential and the body
are checked as on the synchronous path, and a job is only its own tenant's (others get 404)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.integration.gateway.helpers import config_for
from tokenyard.gateway import batch
from tokenyard.gateway.app import RunningGateway, running_gateway
from tokenyard.gateway.batch import BATCH_JOBS_KEY, DeferredJobs
from tokenyard.sim.testing import RunningSim, running_sim

CHAT = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
A = {"Authorization": "Bearer sk-a"}
B = {"Authorization": "Bearer sk-b"}
DEFER = {"x-tokenyard-defer": "true"}


@asynccontextmanager
async def gateway(sim: RunningSim) -> AsyncIterator[RunningGateway]:
    tenant = {"classes": ["standard", "batch"]}
    config = config_for([sim], tenants={"a": tenant, "b": tenant},
                        keys=[{"key": "sk-a", "tenant": "a"}, {"key": "sk-b", "tenant": "b"}])
    async with running_gateway(config) as gw:
        yield gw


def jobs_of(gw: RunningGateway) -> DeferredJobs:
    return gw.runner.app[BATCH_JOBS_KEY]


async def _post(http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
                ) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_no_job_without_a_valid_credential_or_a_valid_body() -> None:
    async with running_sim("fast") as sim, gateway(sim) as gw, aiohttp.ClientSession() as http:
        url = gw.base_url + "/v1/chat/completions"
        for headers, status, code in [
            (DEFER, 401, "missing_api_key"),
            ({**DEFER, "Authorization": "Bearer sk-wrong"}, 401, "invalid_api_key"),
        ]:
            got, error = await _post(http, url, CHAT, headers)
            assert got == status and error["error"]["code"] == code, error
            assert set(error["error"]) == {"message", "type", "param", "code"}
        for body in ({**CHAT, "messages": []}, {**CHAT, "max_tokens": -1}, {"messages": CHAT["messages"]},
                     {**CHAT, "stream": True}):
            got, error = await _post(http, url, body, {**DEFER, **A})
            assert got == 400, (body, error)
            assert error["error"]["type"] == "invalid_request_error" and error["error"]["message"]
        got, error = await _post(http, gw.base_url + "/v1/batches",
                                 {"endpoint": "/v1/chat/completions", "requests": [{"body": {**CHAT, "messages": []}}]},
                                 A)
        assert got == 400 and "requests[0].body" in error["error"]["message"]
        got, error = await _post(http, gw.base_url + "/v1/batches",
                                 {"endpoint": "/v1/chat/completions", "requests": [{"body": CHAT}]}, {})
        assert got == 401
        assert not jobs_of(gw).jobs  # none of these made a job
        assert (await sim.stats())["completed_requests"] == 0


async def test_a_job_is_visible_and_cancellable_only_by_its_tenant() -> None:
    async with running_sim("fast", ttft_ms=30.0, itl_ms=30.0) as sim, gateway(sim) as gw, \
            aiohttp.ClientSession() as http:
        status, job = await _post(http, gw.base_url + "/v1/chat/completions", {**CHAT, "max_tokens": 40},
                                  {**DEFER, **A})
        assert status == 202, job
        status, inline = await _post(http, gw.base_url + "/v1/batches",
                                     {"endpoint": "/v1/chat/completions", "requests": [{"body": CHAT}]}, A)
        assert status == 202, inline
        for job_id in (job["id"], inline["id"]):
            for method, path in (("GET", ""), ("GET", "/output"), ("POST", "/cancel")):
                async with http.request(method, f"{gw.base_url}/v1/batches/{job_id}{path}", headers=B) as resp:
                    assert resp.status == 404, (method, path)
                    assert (await resp.json())["error"]["code"] == "not_found"
        assert all(j.status != "cancelling" for j in jobs_of(gw).jobs.values())  # B's cancels did nothing
        for job_id in (job["id"], inline["id"]):
            for _ in range(400):
                async with http.get(f"{gw.base_url}/v1/batches/{job_id}", headers=A) as resp:
                    assert resp.status == 200
                    view = await resp.json()
                if view["status"] == "completed":
                    break
                await asyncio.sleep(0.025)
            assert view["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
            async with http.get(f"{gw.base_url}/v1/batches/{job_id}/output", headers=A) as resp:
                assert resp.status == 200 and '"status_code": 200' in await resp.text()


async def test_one_tenant_cannot_fill_the_job_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "MAX_UNFINISHED_PER_OWNER", 1)
    async with running_sim("fast", ttft_ms=2000.0) as sim, gateway(sim) as gw, aiohttp.ClientSession() as http:
        url = gw.base_url + "/v1/chat/completions"
        assert (await _post(http, url, CHAT, {**DEFER, **A}))[0] == 202
        status, error = await _post(http, url, CHAT, {**DEFER, **A})  # A's first job is still running
        assert status == 429 and error["error"]["code"] == "too_many_jobs"
        status, job = await _post(http, url, CHAT, {**DEFER, **B})  # another tenant is not held back
        assert status == 202, job
        for job_id in list(jobs_of(gw).jobs):  # do not wait for the slow answers
            async with http.post(f"{gw.base_url}/v1/batches/{job_id}/cancel", headers=A) as resp:
                await resp.read()
            async with http.post(f"{gw.base_url}/v1/batches/{job_id}/cancel", headers=B) as resp:
                await resp.read()


async def test_no_job_for_a_caller_that_may_not_use_the_batch_class() -> None:
    tenants = {"a": {"classes": ["standard", "batch"]}, "s": {"classes": ["standard"]}}
    keys = [{"key": "sk-a", "tenant": "a"}, {"key": "sk-std", "tenant": "a", "classes": ["standard"]},
            {"key": "sk-s", "tenant": "s"}]
    async with running_sim("fast") as sim, running_gateway(config_for([sim], tenants=tenants, keys=keys)) as gw, \
                aiohttp.ClientSession() as http:
        # Such a job was accepted (202) and every request of it then failed with 403 class_not_allowed.
        for token in ("sk-std", "sk-s"):
            auth = {"Authorization": f"Bearer {token}"}
            got, error = await _post(http, gw.base_url + "/v1/chat/completions", CHAT, {**DEFER, **auth})
            assert (got, error["error"]["code"]) == (403, "class_not_allowed"), error
            got, error = await _post(http, gw.base_url + "/v1/batches",
                                     {"endpoint": "/v1/chat/completions", "requests": [{"body": CHAT}]}, auth)
            assert (got, error["error"]["code"]) == (403, "class_not_allowed"), error
        assert not jobs_of(gw).jobs
        got, _ = await _post(http, gw.base_url + "/v1/chat/completions", CHAT, {**DEFER, **A})
        assert got == 202


async def test_no_job_for_a_model_the_key_may_not_use() -> None:
    tenants = {"a": {"classes": ["standard", "batch"]}}
    keys = [{"key": "sk-a", "tenant": "a", "models": ["another-model"]}]
    async with running_sim("fast") as sim, running_gateway(config_for([sim], tenants=tenants, keys=keys)) as gw, \
            aiohttp.ClientSession() as http:
        # Such a job was accepted (202) and its request then failed with 403 model_not_allowed.
        got, error = await _post(http, gw.base_url + "/v1/chat/completions", CHAT, {**DEFER, **A})
        assert (got, error["error"]["code"]) == (403, "model_not_allowed"), error
        got, error = await _post(http, gw.base_url + "/v1/batches",
                                 {"endpoint": "/v1/chat/completions", "requests": [{"body": CHAT}]}, A)
        assert got == 400 and "may not use model" in error["error"]["message"], error
        assert not jobs_of(gw).jobs
