"""Redis going away under a running worker: the worker reads again once it is back (its group read failing
meanwhile, then the group gone), and its HTTP side answers 503 with Retry-After meanwhile (not a bare 500)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import RedisServer
from tests.integration.pipeline.helpers import produce, results, spec_for, wait_until
from tokenyard.pipeline.eventlog import open_event_log as open_log
from tokenyard.pipeline.service import running_pipeline
from tokenyard.sim.testing import running_sim


async def test_worker_reads_again_after_redis_restarts(redis_server: RedisServer) -> None:
    async with running_sim("fast", seed=1) as sim:
        spec = spec_for(redis_server.url, sim.base_url)
        log = open_log(redis_server.url)
        try:
            async with running_pipeline(spec):
                await produce(log, 3, prefix="before")

                async def written(n: int) -> bool:
                    return await log.length("results") >= n
                await wait_until(lambda: written(3))
                redis_server.stop()  # reads fail while it is down ...
                await asyncio.sleep(0.5)
                redis_server.start()  # ... and it comes back empty (no persistence): the group is gone too
                await produce(log, 3, prefix="after")
                await wait_until(lambda: written(3))
            found = await results(log)
            assert sorted(r.event_id for r in found) == ["after0", "after1", "after2"]
            assert all(r.status == "completed" for r in found)
        finally:
            await log.aclose()


async def test_http_side_answers_503_while_the_log_is_down(redis_server: RedisServer) -> None:
    async with running_sim("fast", seed=1) as sim:
        spec = spec_for(redis_server.url, sim.base_url, source={
            "stream": "events", "group": "g", "http": {"port": 0, "retry_after_s": 3}})
        async with running_pipeline(spec) as service, aiohttp.ClientSession() as http:
            base = service.base_url
            assert base is not None
            redis_server.stop()
            try:
                for method, path, body in (("POST", "/v1/events", {"id": "x", "data": {"text": "t"}}),
                                           ("POST", "/v1/control", {"action": "pause"}),
                                           ("GET", "/v1/lineage/x", None)):
                    async with http.request(method, base + path, json=body) as resp:
                        assert resp.status == 503, path
                        assert resp.headers["Retry-After"] == "3"
                        error = (await resp.json())["error"]
                        assert error["code"] == "event_log_unavailable" and "param" in error
            finally:
                redis_server.start()

