"""Content route rules choose the pool; failover along ``fallback`` follows the class's policy."""

from __future__ import annotations

import contextlib

import aiohttp

from tests.conftest import free_port
from tests.integration.routing.helpers import chat, post, routing_config
from tokenyard.gateway.app import running_gateway
from tokenyard.sim.testing import running_sim


async def test_images_go_to_the_vision_pool_and_batch_does_not_fail_over() -> None:
    async with contextlib.AsyncExitStack() as stack:
        big = await stack.enter_async_context(running_sim("fast", seed=1))
        vision = await stack.enter_async_context(running_sim("fast", seed=2))
        tools = await stack.enter_async_context(running_sim("fast", seed=3))
        dead = f"http://127.0.0.1:{free_port()}/v1"
        config = routing_config(
            {"chat": {"endpoints": [{"url": dead, "name": "small"}], "fallback": ["chat-big"],
                      "upstream_model": big.model},
             "chat-big": {"endpoints": [{"url": big.base_url + "/v1", "name": "big"}], "upstream_model": big.model},
             "chat-vision": {"endpoints": [{"url": vision.base_url + "/v1", "name": "vision"}],
                             "upstream_model": vision.model},
             "chat-tools": {"endpoints": [{"url": tools.base_url + "/v1", "name": "tools"}],
                            "upstream_model": tools.model}},
            routes={"chat": [{"pool": "chat-vision", "has_images": True},
                             {"pool": "chat-tools", "has_tools": True}]},
            routing={"classes": {"batch": {"failover": False}, "premium": {"failover": True}}},
        )
        gw = await stack.enter_async_context(running_gateway(config))
        session = await stack.enter_async_context(aiohttp.ClientSession())

        for klass in ("premium", "standard"):
            status, _, headers = await post(session, gw, chat("chat"), {"x-tokenyard-class": klass})
            assert status == 200 and headers["x-tokenyard-backend"] == "big"
        status, body, _ = await post(session, gw, chat("chat"), {"x-tokenyard-class": "batch"})
        assert status == 503 and b"no_healthy_upstream" in body

        image = {"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}
        status, _, headers = await post(session, gw, image)
        assert status == 200 and headers["x-tokenyard-backend"] == "vision"
        with_tools = {**chat("chat"), "tools": [{"type": "function", "function": {"name": "lookup",
                                                                                  "parameters": {"type": "object"}}}]}
        status, _, headers = await post(session, gw, with_tools)
        assert status == 200 and headers["x-tokenyard-backend"] == "tools"
        assert (await vision.stats())["completed_requests"] == 1
