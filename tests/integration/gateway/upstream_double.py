"""A small real HTTP upstream on loopback that answers every inference POST with a fixed (error) answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from tests.integration.loopback_app import serving

INFERENCE_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


class FixedUpstream:
    """Answers each POST on the inference paths with ``status``, ``content_type`` and ``body`` (settable between
    requests) and counts them in ``posts``; ``GET /v1/models`` and ``/health`` answer as a healthy server."""

    def __init__(self, status: int = 200, body: bytes = b"{}", content_type: str = "application/json") -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers: dict[str, str] = {}
        self.posts = 0
        self.base_url = ""

    async def _answer(self, request: web.Request) -> web.Response:
        self.posts += 1
        await request.read()
        return web.Response(status=self.status, body=self.body, headers={"Content-Type": self.content_type,
                                                                         **self.headers})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fixed", "object": "model"}]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FixedUpstream]:
        @web.middleware
        async def count_unknown(request: web.Request,
                                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            if request.method == "POST" and request.path not in INFERENCE_PATHS:
                self.posts += 1  # a POST anywhere else still reached the upstream
            return await handler(request)

        app = web.Application(middlewares=[count_unknown])
        for path in INFERENCE_PATHS:
            app.router.add_post(path, self._answer)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        async with serving(app) as self.base_url:
            yield self
