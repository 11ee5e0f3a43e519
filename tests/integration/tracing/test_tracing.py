"""OpenTelemetry traces through the gateway, exported for real with OTLP/HTTP to a loopback receiver."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra: pip install 'tokenyard[tracing]'")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tokenyard.config import ConfigError, parse_config
from tokenyard.config.server import TelemetryConfig
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim
from tokenyard.telemetry.tracing import build_tracing, traces_url

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP traces endpoint: every span POSTed to ``/v1/traces``, with its service name."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.services: set[str] = set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    self.services.add(attribute.value.string_value)
            for scope in resource_spans.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@asynccontextmanager
async def loopback_app(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with loopback_app([web.post("/v1/traces", found.handle)]) as url:
        found.url = url
        yield found


def attrs(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def config(upstream: str, endpoint: str) -> Any:
    return parse_config({
        "listen": {"host": "127.0.0.1", "port": 0},
        "models": {"chat": {"endpoints": [{"url": upstream + "/v1"}], "upstream_model": "sim-fast"}},
        "access_log": {"enabled": False},
        "telemetry": {"otlp_endpoint": endpoint, "service_name": "yard-test"},
    }, env={})


async def test_spans_for_streaming_and_whole_answers() -> None:
    async with receiver() as rx, running_sim("fast") as sim:
        gateway = running_gateway(config(sim.base_url, rx.url))
        async with gateway as gw, aiohttp.ClientSession() as http:  # closed before the checks
            for stream in (False, True):
                headers = {"x-request-id": f"req-{stream}"}
                if stream:
                    headers["traceparent"] = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
                body = {"model": "chat", "stream": stream, "max_tokens": 4,
                        "messages": [{"role": "user", "content": "hi"}]}
                async with http.post(gw.base_url + "/v1/chat/completions", json=body, headers=headers) as resp:
                    assert resp.status == 200
                    await resp.read()
        # The gateway is closed: the batch was flushed to the receiver.
    assert rx.services == {"yard-test"}
    servers = {attrs(s)["tokenyard.request_id"]: s for s in rx.spans if s.kind == Span.SPAN_KIND_SERVER}
    assert set(servers) == {"req-False", "req-True"}
    for stream, span in ((False, servers["req-False"]), (True, servers["req-True"])):
        a = attrs(span)
        assert span.name == "POST /v1/chat/completions"
        assert a["tokenyard.model"] == "chat"
        assert a["tokenyard.class"]
        assert a["tokenyard.backend"]
        assert a["tokenyard.outcome"] == "completed"
        assert a["http.response.status_code"] == 200
        assert a["gen_ai.usage.output_tokens"] > 0
        assert "tokenyard.queue_ms" in a
        assert "tokenyard.tenant" in a
        attempts = [s for s in rx.spans if s.parent_span_id == span.span_id and s.name == "upstream attempt"]
        assert len(attempts) == 1
        assert attrs(attempts[0])["http.response.status_code"] == 200
        assert attempts[0].trace_id == span.trace_id
        assert span.start_time_unix_nano <= attempts[0].start_time_unix_nano <= span.end_time_unix_nano
        if stream:
            assert a["tokenyard.ttft_ms"] > 0
            assert [e.name for e in span.events] == ["first_token"]
            assert any(k.startswith("tokenyard.phase.decode") for k in a)
            # The client's trace goes on: same trace id, its span is the parent.
            assert span.trace_id.hex() == CLIENT_TRACE
            assert span.parent_span_id.hex() == CLIENT_PARENT
        else:
            assert "tokenyard.ttft_ms" not in a
            assert span.parent_span_id == b""


async def test_traceparent_reaches_the_upstream() -> None:
    seen: list[str | None] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent"))
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": "sim-fast",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": "ok"}}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "sim-fast", "object": "model"}]})

    routes = [web.post("/v1/chat/completions", chat), web.get("/v1/models", models)]
    async with receiver() as rx, loopback_app(routes) as upstream:
        gateway = running_gateway(config(upstream, rx.url + "/v1/traces"))
        async with gateway as gw, aiohttp.ClientSession() as http:  # closed before the checks
            body = {"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
            headers = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"}
            async with http.post(gw.base_url + "/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 200
    assert len(seen) == 1 and seen[0] is not None
    version, trace_id, parent_id, flags = seen[0].split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    attempt = next(s for s in rx.spans if s.name == "upstream attempt")
    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert parent_id == attempt.span_id.hex()  # the upstream's spans hang under the attempt


def test_traces_url() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_endpoint_without_the_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "opentelemetry"] + ["opentelemetry"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as raised:
        build_tracing(TelemetryConfig(otlp_endpoint="http://127.0.0.1:4318"))
    assert raised.value.issues[0][0] == "telemetry.otlp_endpoint"
    assert "tokenyard[tracing]" in str(raised.value)
    assert build_tracing(TelemetryConfig()) is None


def test_serve_without_the_extra_says_so(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("listen: {host: 127.0.0.1, port: 0}\n"
                    "models: {chat: {endpoints: [{url: 'http://127.0.0.1:9/v1'}]}}\n"
                    "telemetry: {otlp_endpoint: 'http://127.0.0.1:4318'}\n")
    script = ("import sys; sys.modules['opentelemetry'] = None; from tokenyard.cli import main; "
              f"sys.argv = ['tokenyard', 'serve', '--config', {str(path)!r}]; main()")
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "telemetry.otlp_endpoint: traces need OpenTelemetry" in done.stderr, done.stderr
    assert "pip install 'tokenyard[tracing]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_opentelemetry_import_when_off() -> None:
    script = textwrap.dedent("""
        import asyncio, sys
        import aiohttp
        from tokenyard.config import parse_config
        from tokenyard.gateway.app import running_gateway
        from tokenyard.sim.testing import running_sim

        async def main():
            async with running_sim("fast") as sim:
                cfg = parse_config({"listen": {"host": "127.0.0.1", "port": 0}, "access_log": {"enabled": False},
                                    "models": {"chat": {"endpoints": [{"url": sim.base_url + "/v1"}],
                                                        "upstream_model": "sim-fast"}}}, env={})
                async with running_gateway(cfg) as gw, aiohttp.ClientSession() as http:
                    body = {"model": "chat", "stream": True, "max_tokens": 2,
                            "messages": [{"role": "user", "content": "hi"}]}
                    async with http.post(gw.base_url + "/v1/chat/completions", json=body) as resp:
                        assert resp.status == 200
                        await resp.read()
            loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
            print("LOADED", loaded)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout


async def test_shutdown_with_the_collector_down_is_not_held() -> None:
    """Requests are not slowed by a collector that is down, and the gateway's shutdown waits at most
    ``SHUTDOWN_WAIT_S`` for the spans it cannot send (the exporter's retries held it about 10 s)."""
    async with loopback_app([]) as down:
        pass  # a loopback port nobody listens on any more
    async with running_sim("fast", seed=0) as sim, aiohttp.ClientSession() as session:
        serving = running_gateway(config(sim.base_url, down))
        gw = await serving.__aenter__()
        try:
            for _ in range(3):
                async with session.post(gw.base_url + "/v1/chat/completions",
                                        json={"model": "chat", "max_tokens": 2,
                                              "messages": [{"role": "user", "content": "hi"}]}) as resp:
                    assert resp.status == 200
        finally:
            await asyncio.wait_for(serving.__aexit__(None, None, None), 7)
