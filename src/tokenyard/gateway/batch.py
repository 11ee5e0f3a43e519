"""Deferred requests: accept now (202 and a job id), run later in the batch class, fetch the result when done.

Two ways in, one job shape modelled on OpenAI's Batch API (``object: "batch"``, ``status``, ``request_counts``;
the output lines are OpenAI's batch output lines ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``):

- ``POST /v1/chat/completions`` or ``/v1/completions`` with ``x-tokenyard-defer: true``: a one-request job.
- ``POST /v1/batches`` with ``{"endpoint", "requests": [{"custom_id", "body"}], "completion_window",
  "metadata"}``: inline requests instead of OpenAI's uploaded input file (there is no files API here).
- ``GET /v1/batches/{id}``: the job; ``GET /v1/batches/{id}/output``: its output lines (JSONL, done ones only);
  ``POST /v1/batches/{id}/cancel``: stop it (running requests are closed upstream).

Before a job exists (before any 202) the request is checked as a synchronous one would be: the credential
(401/403, when auth is on: the defer middleware runs ahead of the stage chain, and the HTTP guard leaves the
chain's paths to it), the body size and receive time (413/408) and the operation's OpenAI schema (400). A job
belongs to the tenant that created it (``owner``): any other caller gets the 404 of an unknown id, so job ids
leak nothing. A tenant holds at most ``MAX_UNFINISHED_PER_OWNER`` unfinished jobs, so no single caller can fill
the ``MAX_JOBS`` table for the others.

Each request of a job is sent through this gateway's own front door on loopback (the same connection it came in
on: same auth, validation, rate limits, admission and routing, exactly like any client request), with
``x-tokenyard-class: batch`` unless the client named the class. Jobs live in this gateway process, bounded in
number and kept ``RETENTION_S`` after they finish; they do not survive a restart (for durable work use a
pipeline: docs/pipelines.md).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from tokenyard.gateway.errors import GatewayError
from tokenyard.gateway.stages.classify import class_allowed
from tokenyard.schema import RequestInvalid, parse_chat, parse_completion
from tokenyard.security.service import PRINCIPAL, AuthFailure, Principal

if TYPE_CHECKING:
    from tokenyard.gateway.services import Gateway

DEFER_HEADER = "x-tokenyard-defer"
ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
MAX_JOBS = 10_000  # jobs kept (queued, running or finished)
MAX_UNFINISHED_PER_OWNER = 1_000  # one tenant's unfinished jobs: the table stays open to the others
MAX_REQUESTS_PER_JOB = 5_000
CONCURRENCY = 64  # deferred requests in flight at once per gateway (admission still decides who goes first)
RETENTION_S = 3600.0
WINDOWS = {"24h": 86_400.0, "1h": 3_600.0}
_FORWARDED = ("authorization", "x-tokenyard-class", "x-tokenyard-deadline-ms", "x-tokenyard-workflow-id",
              "content-type")


_PARSERS = {"/v1/chat/completions": parse_chat, "/v1/completions": parse_completion}
_NOT_FOUND = "No such batch (unknown id, or its retention ran out)."


def _error(status: int, message: str, code: str, param: str | None = None) -> web.Response:
    """An OpenAI-format error (``message``, ``type``, ``param``, ``code``)."""
    return GatewayError(status, message, code, param=param).response()


@dataclass
class _Item:
    custom_id: str
    body: bytes
    output: dict[str, Any] | None = None


@dataclass
class Job:
    id: str
    endpoint: str
    headers: dict[str, str]
    items: list[_Item]
    window_s: float
    metadata: dict[str, Any] | None = None
    owner: str | None = None  # the tenant that created it (None with auth off: one trust domain)
    created_at: float = field(default_factory=time.time)
    status: str = "in_progress"
    finished_at: float | None = None
    completed: int = 0
    failed: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        finished = self.finished_at
        done = finished is not None
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "errors": None, "input_file_id": None,
            "completion_window": f"{int(self.window_s // 3600)}h", "status": self.status,
            "output_file_id": f"{self.id}/output" if done else None, "error_file_id": None,
            "created_at": int(self.created_at), "in_progress_at": int(self.created_at),
            "expires_at": int(self.created_at + self.window_s),
            "completed_at": int(finished) if finished is not None and self.status == "completed" else None,
            "cancelled_at": int(finished) if finished is not None and self.status == "cancelled" else None,
            "request_counts": {"total": len(self.items), "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


class DeferredJobs:
    """The jobs of one gateway and the bounded pool of background requests that runs them."""

    def __init__(self) -> None:
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))

    async def close(self) -> None:
        for job in list(self.jobs.values()):
            for task in list(job.tasks):
                task.cancel()
            if job.tasks:
                await asyncio.wait(job.tasks, timeout=5)
        if self._session is not None:
            await self._session.close()

    def _evict(self) -> bool:
        now = time.time()
        for job_id, job in list(self.jobs.items()):
            if job.finished_at is not None and now - job.finished_at > RETENTION_S:
                del self.jobs[job_id]
        if len(self.jobs) < MAX_JOBS:
            return True
        oldest = next((jid for jid, j in self.jobs.items() if j.finished_at is not None), None)
        if oldest is None:
            return False
        del self.jobs[oldest]
        return True

    def unfinished(self, owner: str) -> int:
        return sum(1 for job in self.jobs.values() if job.owner == owner and job.finished_at is None)

    def submit(self, job: Job, target: str) -> bool:
        if job.owner is not None and self.unfinished(job.owner) >= MAX_UNFINISHED_PER_OWNER:
            return False
        if not self._evict():
            return False
        self.jobs[job.id] = job
        for index, item in enumerate(job.items):
            task = asyncio.create_task(self._run(job, index, item, target))
            job.tasks.add(task)
            task.add_done_callback(job.tasks.discard)
        return True

    async def _run(self, job: Job, index: int, item: _Item, target: str) -> None:
        try:
            async with self._slots:
                if time.time() > job.created_at + job.window_s:
                    item.output = self._line(job, index, item, None,
                                             {"code": "batch_expired", "message": "the completion window passed"})
                else:
                    item.output = await self._send(job, index, item, target)
        except asyncio.CancelledError:
            item.output = self._line(job, index, item, None,
                                     {"code": "batch_cancelled", "message": "the job was cancelled"})
            raise
        finally:
            ok = item.output is not None and item.output["error"] is None and \
                item.output["response"]["status_code"] == 200
            job.completed += 1 if ok else 0
            job.failed += 0 if ok else 1
            if job.completed + job.failed == len(job.items):
                job.finished_at = time.time()
                if job.status == "in_progress":
                    job.status = "completed"
                elif job.status == "cancelling":
                    job.status = "cancelled"

    async def _send(self, job: Job, index: int, item: _Item, target: str) -> dict[str, Any]:
        assert self._session is not None
        headers = dict(job.headers)
        headers["x-request-id"] = f"{job.id}-{index}"
        try:
            async with self._session.post(target + job.endpoint, data=item.body, headers=headers) as resp:
                raw = await resp.read()
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                return self._line(job, index, item, {"status_code": resp.status, "body": body,
                                                     "request_id": resp.headers.get("x-request-id", "")}, None)
        except (aiohttp.ClientError, OSError) as exc:
            return self._line(job, index, item, None, {"code": "gateway_unreachable", "message": str(exc)})

    @staticmethod
    def _line(job: Job, index: int, item: _Item, response: dict[str, Any] | None,
              error: dict[str, str] | None) -> dict[str, Any]:
        return {"id": f"{job.id}-{index}", "custom_id": item.custom_id, "response": response, "error": error}


BATCH_JOBS_KEY = web.AppKey("tokenyard_batch_jobs", DeferredJobs)  # the app's jobs (operators, tests)


def _self_url(request: web.Request) -> str:
    """Where this gateway can reach itself: the local address the request came in on."""
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    host, port = (sock[0], sock[1]) if sock else ("127.0.0.1", request.url.port or 80)
    host = f"[{host}]" if ":" in host else host
    return f"{request.scheme}://{host}:{port}"


def _headers(request: web.Request) -> tuple[dict[str, str] | None, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
    klass = request.headers.get("x-tokenyard-class")
    if klass is None:
        headers["x-tokenyard-class"] = "batch"
    elif klass != "batch":
        return None, "deferred requests run in the batch class; leave x-tokenyard-class out or set it to batch"
    headers["content-type"] = "application/json"
    return headers, ""


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes")


def _owner(request: web.Request) -> str | None:
    """The tenant a job belongs to: the authenticated caller's (a tenant-less identity is its own owner)."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        return None
    return principal.key.tenant or principal.key.name


def body_problem(endpoint: str, body: bytes, gw: Gateway, principal: Principal | None = None
                 ) -> RequestInvalid | None:
    """The synchronous path's schema check of one request body (``stages/validate``), and no ``stream``; then
    whether the caller may use its model (a key's ``models``, the east-west policy for a service identity):
    a request that would be a 403 at once is not accepted to fail later inside its job."""
    try:
        parsed = _PARSERS[endpoint](body, gw.config.limits)
    except RequestInvalid as exc:
        return exc
    if parsed.stream:
        return RequestInvalid(400, "A deferred request cannot stream; leave 'stream' out.", "stream", "invalid_defer")
    if principal is not None:
        key = principal.key
        if key.models is not None and parsed.model not in key.models:
            return RequestInvalid(403, f"this key may not use model {parsed.model!r}", "model", "model_not_allowed")
        decision = gw.security.decide(principal, "models", parsed.model)
        if decision is not None and not decision.allowed:
            return RequestInvalid(403, f"identity {principal.identity.subject} may not call model "
                                  f"{parsed.model!r} (east-west policy: default deny)", "model", "model_not_allowed")
    return None


def _principal(request: web.Request, gw: Gateway) -> Principal | None:
    return request.get(PRINCIPAL) if gw.security.enabled else None


def _authenticate(request: web.Request, gw: Gateway) -> web.Response | None:
    """What the auth stage does for a chain path (the guard skips those): None when the caller may go on."""
    security = gw.security
    if not security.enabled:
        return None
    request_id = request.headers.get("x-request-id", "")[:128]
    try:
        principal = security.authenticate(request)
    except AuthFailure as exc:
        security.audit_failure(request, exc, request_id)
        return _error(401, exc.message, exc.code)
    request[PRINCIPAL] = principal
    refusal = security.route_refusal(request, principal, request_id)
    if refusal is not None:
        return _error(403, refusal, "route_not_allowed")
    return None


def _batch_class_refusal(request: web.Request, gw: Gateway) -> web.Response | None:
    """403 when the authenticated caller may not use the batch class that deferred requests run in: such a job
    was accepted and then every request of it failed with 403 ``class_not_allowed``."""
    principal = _principal(request, gw)
    if class_allowed(gw, principal.key if principal is not None else None, "batch"):
        return None
    return _error(403, "deferred requests run in the batch class, which this key may not use", "class_not_allowed",
                  "x-tokenyard-class")


async def _read_body(request: web.Request, gw: Gateway) -> bytes | web.Response:
    """The body within ``limits.max_body_bytes`` (413) and ``timeouts.request_body_ms`` (408), as the chain's."""
    max_body = gw.config.limits.max_body_bytes
    timeout_s = gw.config.timeouts.request_body_ms / 1000
    if request.content_length is not None and request.content_length > max_body:
        return _error(413, f"request body of {request.content_length} bytes exceeds the limit of {max_body} bytes",
                      "request_too_large")
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        return _error(408, f"request body not received within {timeout_s:g} s", "request_timeout")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body exceeds the limit of {max_body} bytes", "request_too_large")


def add_batch_routes(app: web.Application, gw: Gateway) -> None:
    """Register the deferred-request routes and the ``x-tokenyard-defer`` middleware on ``gw``'s app (before it
    starts). The jobs and their client session live and die with the app."""
    jobs = DeferredJobs()
    app[BATCH_JOBS_KEY] = jobs

    async def start(_app: web.Application) -> None:
        await jobs.start()

    async def stop(_app: web.Application) -> None:
        await jobs.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)

    def accept(request: web.Request, job: Job) -> web.Response:
        if not jobs.submit(job, _self_url(request)):
            resp = _error(429, "too many deferred jobs are unfinished (yours, or this gateway's); retry later",
                          "too_many_jobs")
            resp.headers["Retry-After"] = "60"
            return resp
        return web.json_response(job.view(), status=202, headers={"Location": f"/v1/batches/{job.id}"})

    @web.middleware
    async def defer(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or request.path not in ENDPOINTS or not _is_true(
                request.headers.get(DEFER_HEADER)):
            return await handler(request)  # type: ignore[no-any-return]
        # Nothing is accepted before the caller is known and the body is valid: a job is never created for
        # a request that would have been refused synchronously.
        await gw.security.refresh_signing_keys(request)
        denied = _authenticate(request, gw)
        if denied is not None:
            return denied
        headers, problem = _headers(request)
        if headers is None:
            return _error(400, problem, "invalid_defer", "x-tokenyard-class")
        refused = _batch_class_refusal(request, gw)
        if refused is not None:
            return refused
        body = await _read_body(request, gw)
        if isinstance(body, web.Response):
            return body
        invalid = body_problem(request.path, body, gw, _principal(request, gw))
        if invalid is not None:
            return _error(invalid.status, invalid.message, invalid.code, invalid.param)
        job = Job("batch_" + secrets.token_hex(12), request.path, headers, [_Item("request-0", body)],
                  WINDOWS["24h"], owner=_owner(request))
        return accept(request, job)

    async def create(request: web.Request) -> web.Response:
        headers, problem = _headers(request)
        if headers is None:
            return _error(400, problem, "invalid_defer", "x-tokenyard-class")
        refused = _batch_class_refusal(request, gw)
        if refused is not None:
            return refused
        try:
            spec = json.loads(await request.read())
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            endpoint = spec.get("endpoint")
            if endpoint not in ENDPOINTS:
                raise ValueError(f"'endpoint' must be one of {', '.join(ENDPOINTS)}")
            window = spec.get("completion_window", "24h")
            if window not in WINDOWS:
                raise ValueError(f"'completion_window' must be one of {', '.join(WINDOWS)}")
            requests = spec.get("requests")
            if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS_PER_JOB:
                raise ValueError(f"'requests' must be a list of 1 to {MAX_REQUESTS_PER_JOB} requests")
            items = []
            for i, item in enumerate(requests):
                if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
                    raise ValueError(f"requests[{i}] must be an object with a 'body' object")
                encoded = json.dumps(item["body"]).encode()
                invalid = body_problem(str(endpoint), encoded, gw, _principal(request, gw))
                if invalid is not None:
                    raise ValueError(f"requests[{i}].body: {invalid.message}")
                items.append(_Item(str(item.get("custom_id", f"request-{i}")), encoded))
            metadata = spec.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise ValueError("'metadata' must be an object")
        except ValueError as exc:
            return _error(400, str(exc), "invalid_batch")
        job = Job("batch_" + secrets.token_hex(12), str(endpoint), headers, items, WINDOWS[window], metadata,
                  owner=_owner(request))  # the HTTP guard authenticated /v1/batches
        return accept(request, job)

    def find(request: web.Request) -> Job | None:
        """The caller's job; another tenant's is as unknown as a missing one (404, never 403)."""
        job = jobs.jobs.get(request.match_info["job_id"])
        return job if job is not None and job.owner == _owner(request) else None

    async def get(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _error(404, _NOT_FOUND, "not_found")
        return web.json_response(job.view())

    async def output(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _error(404, _NOT_FOUND, "not_found")
        lines = [json.dumps(item.output) for item in job.items if item.output is not None]
        return web.Response(text="\n".join(lines) + ("\n" if lines else ""), content_type="application/jsonl")

    async def cancel(request: web.Request) -> web.Response:
        job = find(request)
        if job is None:
            return _error(404, _NOT_FOUND, "not_found")
        if job.status == "in_progress":
            job.status = "cancelling"
            for task in list(job.tasks):
                task.cancel()  # closes the loopback request: the gateway closes the upstream one
        return web.json_response(job.view())

    app.middlewares.append(defer)
    app.router.add_post("/v1/batches", create)
    app.router.add_get("/v1/batches/{job_id}", get)
    app.router.add_get("/v1/batches/{job_id}/output", output)
    app.router.add_post("/v1/batches/{job_id}/cancel", cancel)


__all__ = ["BATCH_JOBS_KEY", "DEFER_HEADER", "DeferredJobs", "Job", "add_batch_routes"]
