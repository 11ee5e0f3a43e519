"""HTTP ingest: events in, 429 + Retry-After while the stream's lag is at its bound, control and lineage over
HTTP, bad input is a 400 in OpenAI's error format, /metrics names."""

from __future__ import annotations

import io

import aiohttp

from tests.integration.pipeline.helpers import spec_for, wait_until
from tokenyard.pipeline.service import running_pipeline
from tokenyard.sim.testing import running_sim


async def test_backpressure_control_and_lineage_over_http(log_url: str) -> None:
    async with running_sim("fast", seed=8) as sim:
        spec = spec_for(log_url, sim.base_url, source={"stream": "events", "group": "g",
                                                        "http": {"port": 0, "max_lag": 5, "retry_after_s": 2}})
        async with running_pipeline(spec) as service, aiohttp.ClientSession() as http:
            base = service.base_url
            assert base is not None
            async with http.post(base + "/v1/control", json={"action": "pause"}) as resp:
                assert resp.status == 202

            async def paused() -> bool:
                return bool(service.metrics.paused._value.get() == 1)
            await wait_until(paused)
            events = [{"id": f"h{i}", "data": {"text": f"t{i}"}} for i in range(5)]
            async with http.post(base + "/v1/events", json={"events": events}) as resp:
                assert resp.status == 202 and len((await resp.json())["ids"]) == 5
            six = [{"data": {"text": "x"}}] * 6  # above max_lag itself: never accepted, so not a 429 to retry
            async with http.post(base + "/v1/events", json={"events": six}) as resp:
                assert resp.status == 400 and (await resp.json())["error"]["code"] == "batch_too_large"
            async with http.post(base + "/v1/events", json={"id": "over", "data": {"text": "x"}}) as resp:
                assert resp.status == 429 and resp.headers["Retry-After"] == "2"
                assert (await resp.json())["error"]["code"] == "pipeline_backpressure"
            async with http.post(base + "/v1/control", json={"action": "resume"}) as resp:
                assert resp.status == 202

            async def drained() -> bool:
                return bool(service.metrics.events["completed"]._value.get() == 5)
            await wait_until(drained)

            async def accepted() -> bool:
                async with http.post(base + "/v1/events", json={"id": "late", "data": {"text": "y"}}) as r:
                    return r.status == 202
            await wait_until(accepted)
            async with http.get(base + "/v1/lineage/h3") as resp:
                lineage = await resp.json()
                assert resp.status == 200
                [record] = lineage["records"]
                assert record["status"] == "completed" and record["request_id"].startswith("pl-")
            async with http.get(base + "/v1/lineage/nope") as resp:
                assert resp.status == 404
            for bad in (b"{", b'{"data": []}', b'{"events": []}', b'{"data": {}, "ttl_ms": -1}',
                        b'{"data": {}, "color": 1}', b'{"data": {}, "ttl_ms": NaN}',
                        b'{"data": {}, "deadline_ms": Infinity}', b"[" * 100_000 + b"]" * 100_000,
                        b'{"data": {}, "id": "\\ud800"}'):
                async with http.post(base + "/v1/events", data=bad) as resp:
                    assert resp.status == 400 and "message" in (await resp.json())["error"]
            async with http.post(base + "/v1/control", json={"action": "abort"}) as resp:
                assert resp.status == 400
            async with http.post(base + "/v1/control", data=b"[" * 100_000) as resp:
                assert resp.status == 400  # nesting past Python's recursion limit was a 500
            # aiohttp's own answers in the OpenAI shape (they were text/plain)
            for method, path, body, status in (("POST", "/v1/events", io.BytesIO(b"x" * (9 << 20)), 413),
                                               ("GET", "/v1/events", None, 405), ("GET", "/nope", None, 404)):
                async with http.request(method, base + path, data=body) as resp:
                    assert resp.status == status and (await resp.json())["error"]["message"]
            async with http.get(base + "/metrics") as resp:
                text = await resp.text()
            for name in ("tokenyard_pipeline_events_total", "tokenyard_pipeline_lag",
                         "tokenyard_pipeline_wasted_tokens_total", "tokenyard_pipeline_ingest_total"):
                assert name in text
            assert 'tokenyard_pipeline_ingest_total{pipeline="test",result="refused"} 1.0' in text
