"""Sinks other than streams (JSONL shared by two writers, webhook with Idempotency-Key) and the transforms
(filter, enrichment through a simulated retrieval service) in a running pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.integration.pipeline.helpers import produce, results, spec_for, wait_until
from tokenyard.pipeline.event import encode_event
from tokenyard.pipeline.eventlog import open_event_log
from tokenyard.pipeline.logs import lag
from tokenyard.pipeline.service import running_pipeline
from tokenyard.pipeline.sinks import JsonlSink, Result, WebhookSink
from tokenyard.pipeline.spec import JsonlSinkSpec, WebhookSinkSpec
from tokenyard.sim.services import RetrievalSim, ServiceParams
from tokenyard.sim.testing import running_sim


async def test_jsonl_sink_is_idempotent_across_writers(tmp_path: Path) -> None:
    path = str(tmp_path / "out.jsonl")
    one, two = (JsonlSink(JsonlSinkSpec(path=path), frozenset({"completed"})) for _ in range(2))
    assert await one.write(Result(event_id="a", status="completed"))
    assert not await two.write(Result(event_id="a", status="completed"))  # the other writer's line is seen
    assert await two.write(Result(event_id="b", status="completed"))
    assert not await one.write(Result(event_id="b", status="completed"))
    lines = [json.loads(x)["event_id"] for x in Path(path).read_text().splitlines()]
    assert lines == ["a", "b"]


async def test_jsonl_sink_after_a_writer_died_mid_line(tmp_path: Path) -> None:
    # A torn last line (a writer killed mid-write) had the next record glued to it: that result was lost.
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"event_id":"a","status":"completed"}\n{"event_id":"b","sta')
    sink = JsonlSink(JsonlSinkSpec(path=str(path)), frozenset({"completed"}))
    assert not await sink.write(Result(event_id="a", status="completed"))
    assert await sink.write(Result(event_id="b", status="completed"))  # the torn one never made it
    assert await sink.write(Result(event_id="c", status="completed"))
    fresh = JsonlSink(JsonlSinkSpec(path=str(path)), frozenset({"completed"}))  # e.g. after a restart
    assert not await fresh.write(Result(event_id="b", status="completed"))
    whole = []
    for line in path.read_bytes().splitlines():
        try:
            whole.append(json.loads(line)["event_id"])
        except ValueError:
            continue
    assert whole == ["a", "b", "c"]


async def test_webhook_sink_sends_the_idempotency_key() -> None:
    seen: dict[str, int] = {}

    async def hook(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        seen[key] = seen.get(key, 0) + 1
        return web.Response(status=208 if seen[key] > 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with aiohttp.ClientSession() as session:
            sink = WebhookSink(WebhookSinkSpec(url=url), session, frozenset({"completed"}))
            assert await sink.write(Result(event_id="x", status="completed"))
            assert not await sink.write(Result(event_id="x", status="completed"))
    finally:
        await runner.cleanup()
    assert seen == {"x": 2}


async def test_filter_and_retrieval_enrichment(tmp_path: Path) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    retrieval = RetrievalSim(ServiceParams(base_ms=1.0, per_item_ms=0.0, latency_sigma=0.0))
    await retrieval.start("127.0.0.1", 0)
    try:
        async with running_sim("fast", seed=14) as sim:
            spec = spec_for(log_url, sim.base_url, transforms=[
                {"filter": {"field": "lang", "equals": "en"}},
                {"enrich": {"url": retrieval.base_url + "/v1", "query": "{text}", "top_k": 2}},
                {"template": {"text": "Context: {documents}\nSummarize: {text}"}},
            ], sinks=[{"stream": {"stream": "results"}, "outcomes": ["completed", "filtered"]},
                      {"jsonl": {"path": str(tmp_path / "done.jsonl")}}])
            log = open_event_log(log_url)
            try:
                await produce(log, 2, prefix="en", )
                await log.append("events", encode_event({"text": "bonjour", "lang": "fr"}, event_id="fr0"))
                for i in range(2):
                    await log.append("events", encode_event({"text": f"hello {i}", "lang": "en"}, event_id=f"ok{i}"))
                async with running_pipeline(spec):
                    async def done() -> bool:
                        return await lag(log, "events", "g") == 0
                    await wait_until(done)
                status = {r.event_id: r.status for r in await results(log)}
                assert status == {"en0": "filtered", "en1": "filtered", "fr0": "filtered",
                                  "ok0": "completed", "ok1": "completed"}
                assert retrieval.stats()["requests"] == 2  # only the events that passed the filter
                lines = (tmp_path / "done.jsonl").read_text().splitlines()
                assert sorted(json.loads(x)["event_id"] for x in lines) == ["ok0", "ok1"]
                assert (await sim.stats())["completed_requests"] == 2
            finally:
                await log.aclose()
    finally:
        await retrieval.stop()
