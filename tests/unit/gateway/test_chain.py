"""The stage chain: order, short-circuit, and the classify/error helpers (no network)."""

from __future__ import annotations

import pytest
from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, Stage, compose, pass_through
from tokenyard.gateway.stages.classify import parse_deadline_ms
from tokenyard.gateway.stages.model import rename_model


def _ctx() -> RequestContext:
    return RequestContext(None, "chat", 0.0)  # type: ignore[arg-type]


def _recording(name: str, log: list[str]) -> Stage:
    async def stage(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        log.append(f"{name}>")
        response = await call_next(ctx)
        log.append(f"<{name}")
        return response

    return stage


async def test_stages_run_outermost_first_around_the_terminal() -> None:
    log: list[str] = []

    async def terminal(ctx: RequestContext) -> web.StreamResponse:
        log.append("terminal")
        return web.Response(text="ok")

    handler = compose([_recording("a", log), _recording("b", log)], terminal)
    response = await handler(_ctx())
    assert isinstance(response, web.Response) and response.text == "ok"
    assert log == ["a>", "b>", "terminal", "<b", "<a"]


async def test_stages_of_features_that_are_off_are_left_out() -> None:
    log: list[str] = []

    async def terminal(ctx: RequestContext) -> web.StreamResponse:
        log.append("terminal")
        return web.Response(text="ok")

    assert compose([pass_through, pass_through], terminal) is terminal
    handler = compose([pass_through, _recording("a", log), pass_through], terminal)
    assert (await handler(_ctx())).status == 200
    assert log == ["a>", "terminal", "<a"]


async def test_a_stage_can_answer_without_calling_next() -> None:
    async def refuse(ctx: RequestContext, call_next: Next) -> web.StreamResponse:
        raise GatewayError(429, "slow down", "rate_limited", outcome="rate_limited", headers={"Retry-After": "1"})

    async def terminal(ctx: RequestContext) -> web.StreamResponse:
        raise AssertionError("not reached")

    with pytest.raises(GatewayError) as caught:
        await compose([refuse], terminal)(_ctx())
    response = caught.value.response()
    assert response.status == 429 and response.headers["Retry-After"] == "1"
    assert caught.value.outcome == "rate_limited"
    assert response.body == (b'{"error":{"message":"slow down","type":"rate_limit_error","param":null,'
                             b'"code":"rate_limited"}}')


@pytest.mark.parametrize(("status", "outcome"), [(400, "rejected"), (404, "rejected"), (503, "error")])
def test_default_outcome_follows_the_status(status: int, outcome: str) -> None:
    assert GatewayError(status, "x").outcome == outcome


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", ""])
def test_malformed_deadlines_are_400(value: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_deadline_ms(value)
    assert caught.value.status == 400


def test_valid_deadline() -> None:
    assert parse_deadline_ms("250.5") == 250.5


def test_rename_model_keeps_other_fields() -> None:
    assert rename_model(b'{"model":"a","extra":[1]}', "b") == b'{"model":"b","extra":[1]}'
