"""East-west hops through the gateway: retrieval (``POST /v1/retrieve``) and tools (``POST /v1/tools/{name}``).

Both go through request id, auth and class stages, then the router to the configured pool (model ``kind``
``retrieval``/``tool``) with its own health, retries under the east-west retry budget, and failover along the
pool's ``fallback`` chain. The request's remaining deadline goes downstream as ``x-tokenyard-deadline-ms`` and is
enforced here too. When the retrieval tier fails entirely (pool and fallbacks), the answer is an empty result
flagged ``x-tokenyard-retrieval: skipped`` (``routing.eastwest.empty_on_failure``), so generation can go on
without retrieval. ``tokenyard_retrieval_requests_total{outcome}``: ``hit`` (documents found), ``miss`` (none),
``fallback`` (a fallback index answered, or retrieval was skipped). Under the degradation ladder's
``compress_retrieval`` the retrieval body's ``top_k`` is capped before it goes out (``degrade_retrieval``).

Every request carrying ``x-tokenyard-workflow-id`` (these hops and generations alike) is a hop of that workflow;
``tokenyard_workflow_duration_seconds{workflow}`` observes each workflow's duration when it ends (see
``tokenyard.traffic.workflows``), labelled by ``x-tokenyard-workflow-name`` (default ``default``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import TYPE_CHECKING, TypeVar

import msgspec
from aiohttp import web

from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.chain import Next, compose
from tokenyard.gateway.stages.degrade import degrade_retrieval
from tokenyard.policy.pickers.endpoint import RequestFeatures
from tokenyard.traffic.router import Attempt, NoUpstream, RouteRequest
from tokenyard.traffic.workflows import FinishedWorkflow, WorkflowTracker
from tokenyard.upstream.pools import Pool

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

RETRIEVE = "retrieve"
TOOL = "tool"
DEADLINE_HEADER = "x-tokenyard-deadline-ms"
WORKFLOW_ID_HEADER = "x-tokenyard-workflow-id"
WORKFLOW_NAME_HEADER = "x-tokenyard-workflow-name"
WORKFLOW_END_HEADER = "x-tokenyard-workflow-end"
RETRIEVAL_HEADER = "x-tokenyard-retrieval"
MAX_WORKFLOW_NAMES = 100  # distinct label values; later names are counted as "other"
MAX_ID_LENGTH = 128
_JSON = "application/json"


def first_of_kind(gw: Gateway, kind: str) -> Pool | None:
    return next((p for p in gw.pools.values() if p.config.kind == kind), None)


R = TypeVar("R", bound=web.BaseRequest)  # a request type: aiohttp's Request, or the native server's BaseRequest


class EastWest:
    """The retrieval/tool handlers and the workflow tracker of one gateway."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        settings = gw.config.routing.eastwest
        self.settings = settings
        self.retrieval_pool = (gw.pools[settings.retrieval_pool] if settings.retrieval_pool
                               else first_of_kind(gw, "retrieval"))
        self.tool_pool = gw.pools[settings.tool_pool] if settings.tool_pool else first_of_kind(gw, "tool")
        self.tracker = WorkflowTracker(settings.workflow_idle_ms / 1000.0, settings.max_workflows)
        self.retrievals = {o: gw.metrics.retrieval_requests.labels(o) for o in ("hit", "miss", "fallback")}
        self._names: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # ----- workflows -----

    def _label(self, name: str) -> str:
        if name in self._names:
            return name
        if len(self._names) < MAX_WORKFLOW_NAMES:
            self._names.add(name)
            return name
        return "other"

    def _observe(self, finished: list[FinishedWorkflow]) -> None:
        for flow in finished:
            self.gw.metrics.workflow_duration.labels(flow.name).observe(flow.duration_s)

    @web.middleware
    async def workflow_middleware(self, request: web.Request,
                                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                  ) -> web.StreamResponse:
        """Workflow tracking for the routes aiohttp serves (the native server uses ``tracked``)."""
        return await self.tracked(handler)(request)

    def tracked(self, handler: Callable[[R], Awaitable[web.StreamResponse]]
                ) -> Callable[[R], Awaitable[web.StreamResponse]]:
        """``handler`` with workflow tracking: a request carrying ``x-tokenyard-workflow-id`` is one hop of that
        workflow (its duration observed when the workflow ends). Without the header: ``handler`` itself, no
        extra coroutine."""
        def handle(request: R) -> Awaitable[web.StreamResponse]:
            workflow_id = request.headers.get(WORKFLOW_ID_HEADER)
            if not workflow_id or len(workflow_id) > MAX_ID_LENGTH:
                return handler(request)
            return self._hop(request, handler, workflow_id)

        return handle

    async def _hop(self, request: R, handler: Callable[[R], Awaitable[web.StreamResponse]], workflow_id: str
                   ) -> web.StreamResponse:
        name = self._label(request.headers.get(WORKFLOW_NAME_HEADER, "default")[:64] or "default")
        self._observe(self.tracker.hop_started(workflow_id, name, monotonic()))
        end = request.headers.get(WORKFLOW_END_HEADER, "").lower() in ("1", "true", "yes")
        try:
            return await handler(request)
        finally:
            finished = self.tracker.hop_ended(workflow_id, monotonic(), end)
            if finished is not None:
                self._observe([finished])

    async def _sweep_forever(self) -> None:
        interval = min(1.0, self.tracker.idle_s / 4)
        while True:
            await asyncio.sleep(interval)
            self._observe(self.tracker.expire(monotonic()))

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="tokenyard-workflow-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # ----- hops -----

    async def _body(self, ctx: RequestContext) -> bytes:
        limit = self.gw.config.limits.max_body_bytes
        if ctx.request.content_length is not None and ctx.request.content_length > limit:
            raise GatewayError(413, f"the request body is larger than {limit} bytes", "request_too_large")
        try:
            body = await ctx.request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise GatewayError(413, f"the request body is larger than {limit} bytes", "request_too_large") from exc
        try:
            document = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError as exc:
            raise GatewayError(400, "the request body is not valid JSON", "invalid_json") from exc
        except RecursionError:  # msgspec's depth limit: a 400 like any bad JSON, not a 500 with a traceback
            raise GatewayError(400, "the request body is nested too deeply", "invalid_json") from None
        if not isinstance(document, dict):
            raise GatewayError(400, "the request body must be a JSON object", "invalid_type")
        return body

    def _headers(self, ctx: RequestContext) -> dict[str, str]:
        """Headers for the downstream hop, with the remaining deadline; 504 when none is left."""
        headers = {"Content-Type": _JSON, "x-request-id": ctx.request_id}
        workflow_id = ctx.request.headers.get(WORKFLOW_ID_HEADER)
        if workflow_id:
            headers[WORKFLOW_ID_HEADER] = workflow_id
        if ctx.deadline is not None:
            remaining_ms = (ctx.deadline - monotonic()) * 1000.0
            if remaining_ms <= 0:
                raise GatewayError(504, "the request's deadline was exceeded", "deadline", outcome="expired")
            headers[DEADLINE_HEADER] = str(max(1, math.floor(remaining_ms)))
        return headers

    async def _call(self, ctx: RequestContext, pool: Pool, path: str, body: bytes) -> tuple[Attempt, bytes]:
        """Route the hop; the answer's body is read within the deadline. Raises NoUpstream or TimeoutError."""
        ctx.pool = pool
        ctx.model = pool.name
        headers = self._headers(ctx)
        request = RouteRequest(features=RequestFeatures(model=pool.name, tenant=ctx.tenant or None,
                                                        traffic_class=ctx.klass or None),
                               klass=ctx.klass, deadline=ctx.deadline, queue_s=ctx.queue_s)
        remaining = None if ctx.deadline is None else max(0.0, ctx.deadline - monotonic())
        async with asyncio.timeout(remaining):
            attempt = await self.gw.router.open(pool, path, body, headers, request)
            try:
                answer = await attempt.response.read()
            except BaseException:
                attempt.response.close()
                attempt.finish("error")
                raise
        attempt.response.release()
        return attempt, answer

    def _relay(self, ctx: RequestContext, attempt: Attempt, answer: bytes,
               extra: dict[str, str] | None = None) -> web.Response:
        status = attempt.response.status
        ctx.backend = attempt.endpoint.name
        ctx.status = status
        ctx.outcome = "completed" if status < 400 else ("rejected" if status < 500 else "error")
        ctx.phases = attempt.finish(ctx.outcome)
        headers = {"Content-Type": attempt.response.headers.get("Content-Type", _JSON), **(extra or {})}
        return web.Response(status=status, body=answer, headers=headers)

    async def retrieve(self, ctx: RequestContext) -> web.StreamResponse:
        pool = self.retrieval_pool
        if pool is None:
            raise GatewayError(404, "no retrieval service is configured", "not_found")
        body = degrade_retrieval(self.gw, ctx, await self._body(ctx))
        try:
            attempt, answer = await self._call(ctx, pool, "/retrieve", body)
        except (NoUpstream, TimeoutError) as exc:
            return self._skip_retrieval(ctx, body, exc)
        status = attempt.response.status
        if status >= 500:
            attempt.finish("error")
            return self._skip_retrieval(ctx, body, NoUpstream(f"the retrieval tier answered {status}"))
        outcome = ""
        if status == 200:
            outcome = "fallback" if attempt.pool is not pool else ("miss" if _is_miss(answer) else "hit")
            self.retrievals[outcome].inc()
        return self._relay(ctx, attempt, answer, {RETRIEVAL_HEADER: outcome} if outcome else None)

    def _skip_retrieval(self, ctx: RequestContext, body: bytes, error: Exception) -> web.Response:
        """The retrieval tier failed: an empty result (the caller generates without retrieval), or an error."""
        timed_out = isinstance(error, TimeoutError)
        if not self.settings.empty_on_failure:
            if timed_out:
                raise GatewayError(504, "the request's deadline was exceeded", "deadline", outcome="expired")
            raise GatewayError(503, str(error), "no_healthy_upstream")
        self.retrievals["fallback"].inc()
        query = msgspec.json.decode(body).get("query", "") if body else ""
        ctx.status = 200
        ctx.outcome = "completed"
        answer = msgspec.json.encode({"query": query, "documents": [], "miss": True, "skipped": True})
        return web.Response(status=200, body=answer, content_type=_JSON, headers={RETRIEVAL_HEADER: "skipped"})

    async def tool(self, ctx: RequestContext) -> web.StreamResponse:
        name = ctx.request.path.rsplit("/", 1)[-1]  # /v1/tools/{name}: aiohttp matched one segment
        pool_name = self.settings.tools.get(name)
        pool = self.gw.pools[pool_name] if pool_name else self.tool_pool
        if pool is None:
            raise GatewayError(404, f"no tool service is configured for {name!r}", "not_found")
        body = await self._body(ctx)
        try:
            attempt, answer = await self._call(ctx, pool, "/tools/" + name, body)
        except NoUpstream as exc:
            raise GatewayError(503, exc.message, "no_healthy_upstream") from exc
        except TimeoutError as exc:
            raise GatewayError(504, "the request's deadline was exceeded", "deadline", outcome="expired") from exc
        return self._relay(ctx, attempt, answer)


def _is_miss(answer: bytes) -> bool:
    try:
        document = msgspec.json.decode(answer)
    except (msgspec.DecodeError, RecursionError):
        return True
    return not isinstance(document, dict) or bool(document.get("miss")) or not document.get("documents")


def add_eastwest_routes(app: web.Application, gw: Gateway) -> EastWest:
    """Register ``/v1/retrieve``, ``/v1/tools/{name}`` and the workflow middleware on ``app``."""
    from tokenyard.gateway.stages.auth import auth_stage
    from tokenyard.gateway.stages.classify import classify_stage
    from tokenyard.gateway.stages.observe import observe_stage

    eastwest = EastWest(gw)
    front = [observe_stage(gw), auth_stage(gw), classify_stage(gw)]
    retrieve_chain: Next = compose(front, eastwest.retrieve)
    tool_chain: Next = compose(front, eastwest.tool)

    async def retrieve(request: web.Request) -> web.StreamResponse:
        return await retrieve_chain(RequestContext(request, RETRIEVE, monotonic()))

    async def tool(request: web.Request) -> web.StreamResponse:
        return await tool_chain(RequestContext(request, TOOL, monotonic()))

    async def on_startup(app: web.Application) -> None:
        await eastwest.start()

    async def on_cleanup(app: web.Application) -> None:
        await eastwest.close()

    app.middlewares.append(eastwest.workflow_middleware)
    app.router.add_post("/v1/retrieve", retrieve)
    app.router.add_post("/v1/tools/{name}", tool)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return eastwest
