"""The terminal router: choose the pool (route rules) and endpoint (the pool's picker, health), open the
upstream request, and retry, fail over and hedge while nothing has reached the client.

Per request (``Router.open``): the route table may move the request to a specialist pool; the pool and its
``fallback`` chain form the retry chain; the request's class picks a ``RetryPolicy`` (attempts, failover on or
off, hedging); ``run_with_retries`` drives attempts under the gateway-wide retry budget, each attempt picked by
``pick_with_permit`` (picker + health + circuit-breaker permit) and its outcome reported to the pool's health.
An attempt counts as answered when its response head is in, after reading the whole body for non-streaming
answers (so a backend dying mid-answer is retried: nothing was sent yet) or, when hedging a stream, its first
byte. See docs/routing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from time import monotonic

import aiohttp
import msgspec
from prometheus_client import Histogram

from tokenyard.config import GatewayConfig
from tokenyard.policy.backoff import Backoff
from tokenyard.policy.pickers.endpoint import BackendLoad, EndpointView, RequestFeatures
from tokenyard.policy.retry_budget import RetryBudget
from tokenyard.policy.route_rules import RouteRule, RouteTable
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.telemetry.tracing import RequestTrace
from tokenyard.traffic.distributed import BudgetExhausted, EndpointBudget
from tokenyard.traffic.health import ActiveHealthChecker, Outcome, health_url, pick_with_permit
from tokenyard.traffic.retry import (
    DEFAULT_RETRY_ON,
    AttemptError,
    AttemptFailure,
    NoEndpointAvailable,
    RequestRetries,
    RetryEngine,
    RetryPolicy,
    hedge,
    run_with_retries,
)
from tokenyard.upstream.attribution import UPSTREAM_QUEUE_HEADER, PhaseClock
from tokenyard.upstream.client import UpstreamClient
from tokenyard.upstream.h1_connection import H1Response
from tokenyard.upstream.pools import Endpoint, Pool
from tokenyard.upstream.scrape import LoadScraper, ScrapeConfig, metrics_url

GAUGE_INTERVAL_S = 0.5
EASTWEST_KINDS = frozenset(("retrieval", "tool"))


class NoUpstream(Exception):
    """No endpoint of the pool (or its fallbacks) could take the request (503 for the client); ``code`` is
    ``no_healthy_upstream``, or ``budget_exhausted``/``shared_state_unavailable`` from the shared budget."""

    def __init__(self, message: str, code: str = "no_healthy_upstream") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RouteRequest(msgspec.Struct, frozen=True):
    """What the router needs to know about a request: its features (route rules, pickers), traffic class,
    absolute deadline (``time.monotonic()``), whether it streams, its estimated tokens and gateway queue time;
    ``trace`` is its OpenTelemetry span when tracing is on (each attempt gets a child span)."""

    features: RequestFeatures = msgspec.field(default_factory=RequestFeatures)
    klass: str = ""
    deadline: float | None = None
    stream: bool = False
    tokens: int = 0
    queue_s: float = 0.0
    trace: RequestTrace | None = None


class Attempt:
    """An upstream request whose answer has begun. The caller owns ``response`` and must call ``finish()``
    exactly once (it releases the endpoint's in-flight slot and shared budget lease, and records the latency
    attribution)."""

    __slots__ = ("_done", "_router", "clock", "endpoint", "lease", "pool", "response", "tokens", "tries", "verdict")

    def __init__(self, router: Router, pool: Pool, endpoint: Endpoint, response: H1Response,
                 clock: PhaseClock, tokens: int) -> None:
        self._router = router
        self.pool = pool
        self.endpoint = endpoint
        self.response = response
        self.clock = clock
        self.tokens = tokens
        self.tries = 1
        self.lease: str | None = None  # holder of the endpoint's shared budget slot (scaleout.endpoint_budget)
        # A stream answered 2xx gets its health verdict at its end (``finish``), not at its head: a backend that
        # breaks every stream after the head must count as failing in a row, not as succeeding in between.
        self.verdict = False
        self._done = False

    def finish(self, outcome: str = "", ttft_at: float | None = None, observe: bool = True,
               timed_out: bool = False) -> dict[str, float]:
        """The answer is over (``outcome`` as in the access log; ``ttft_at`` when the first token was relayed;
        ``timed_out``: the gateway's token watchdog ended it, ``upstream_timeout``).

        A stream's verdict goes to the pool's health now: broken off or timed out is a failure, completed a
        success (with its time to head), anything else (client gone, admin, deadline) no verdict. Returns the
        phases (seconds).
        """
        if self._done:
            return {}
        self._done = True
        self.endpoint.release(self.tokens)
        if self.lease is not None and self._router.budget is not None:
            self._router.budget.release(self.endpoint.name, self.lease)
        health = self.pool.health
        if outcome == "upstream_interrupted" or timed_out:
            health.report(self.endpoint.name, Outcome.TIMEOUT if timed_out else Outcome.FAILURE)
            self._router.refresh_gauges()
        elif self.verdict:
            clock = self.clock
            if outcome in ("completed", "client_resumed"):
                latency = clock.head_at - clock.sent_at if clock.head_at is not None else None
                health.report(self.endpoint.name, Outcome.SUCCESS, latency_s=latency)
            else:
                health.report(self.endpoint.name, Outcome.CANCELLED)  # frees a half-open probe slot
        now = monotonic()
        self.clock.at_end(now, ttft_at, *self.response.tcp_sample(now))
        phases = self.clock.phases()
        if observe:
            self._router.observe_phases(self.endpoint.name, phases, self.clock.retransmits)
        return phases


class _FailedAnswer(AttemptError):
    """A retriable failure status; the response is kept so the last one can be relayed when no retry is left."""

    def __init__(self, failure: AttemptFailure, attempt: Attempt) -> None:
        super().__init__(failure, f"upstream {attempt.endpoint.name} answered {failure.status}")
        self.attempt = attempt


def _route_tables(config: GatewayConfig) -> dict[str, RouteTable]:
    tables = {}
    for model, rules in config.routes.items():
        tables[model] = RouteTable(tuple(
            RouteRule(pool=r.pool, has_images=r.has_images, has_tools=r.has_tools,
                      min_prompt_tokens=r.min_prompt_tokens, max_prompt_tokens=r.max_prompt_tokens,
                      tenants=frozenset(r.tenants) if r.tenants is not None else None,
                      classes=frozenset(r.classes) if r.classes is not None else None)
            for r in rules), model)
    return tables


class Router:
    """Opens upstream requests for the gateway's pools (see the module docstring)."""

    def __init__(self, client: UpstreamClient, pools: dict[str, Pool], config: GatewayConfig,
                 metrics: GatewayMetrics, rng: random.Random | None = None) -> None:
        self.client = client
        self.pools = pools
        self.config = config
        self.metrics = metrics
        self.max_attempts = config.retries.attempts
        # A stream's attempt must show its response head within this (timeouts.first_token_ms), or it fails as a
        # timeout: retried elsewhere (nothing reached the client) and counted against the endpoint's health.
        self.first_byte_s = config.timeouts.first_token_ms / 1000.0
        self.engine = RetryEngine(RetryBudget(ratio=config.retries.budget_ratio,
                                              min_retries=config.routing.retry_min_concurrent), rng)
        # The east-west tier (retrieval, tools) has its own budget: an index outage cannot use up the retries
        # of the model tier, and the reverse.
        self.eastwest_engine = RetryEngine(RetryBudget(ratio=config.retries.budget_ratio,
                                                       min_retries=config.routing.retry_min_concurrent), rng)
        self.tables = _route_tables(config)
        self.hedge_losers = 0
        self._phase_hist = metrics.upstream_phase
        self._phase_children: dict[str, dict[str, Histogram]] = {}
        self._policies: dict[str, RetryPolicy] = {}  # per class; the config is immutable
        self._chains: dict[str, tuple[str, ...]] = {}
        self._checkers: list[ActiveHealthChecker] = []
        self._scraper: LoadScraper | None = None
        self._gauges: asyncio.Task[None] | None = None
        self._endpoints = {e.name: e for pool in pools.values() for e in pool.endpoints}
        # The pools whose picker reads the backends' scraped load (the others pick from the pools' own view lists).
        self._scraped_pools = frozenset(name for name, pool in pools.items() if pool.config.picker == "p2c")
        self.budget: EndpointBudget | None = None  # set by the gateway when the budget is shared (ScaleOut)

    # ----- lifecycle -----

    async def start(self) -> None:
        """Start the active health checks, the load scraper (for ``p2c`` pools) and the gauge refresher."""
        session = self.client.session
        routing = self.config.routing
        if routing.health.enabled:
            timeout_s = routing.health.timeout_ms / 1000.0

            async def probe(url: str) -> bool:
                return await reachable_probe(session, url, timeout_s)

            # One round before serving, so /readyz is true from the start: an endpoint that fails its first
            # probe starts down instead of waiting for unhealthy_threshold rounds.
            urls = {e.name: health_url(e.url, routing.health.path) for e in self._endpoints.values()}
            results = await asyncio.gather(*(probe(url) for url in urls.values()))
            down = {name for name, ok in zip(urls, results, strict=True) if not ok}
            for pool in self.pools.values():
                for name in down & set(pool.by_name):
                    for _ in range(routing.health.unhealthy_threshold):
                        pool.health.record_probe(name, False)
            self.refresh_gauges()
            for pool in self.pools.values():
                targets = {e.name: health_url(e.url, routing.health.path) for e in pool.endpoints}
                checker = ActiveHealthChecker(pool.health, targets, probe)
                checker.start()
                self._checkers.append(checker)
        scraped = {e.name: metrics_url(e.url) for name in self._scraped_pools for e in self.pools[name].endpoints}
        if scraped and routing.scrape_interval_ms > 0:
            interval = routing.scrape_interval_ms / 1000.0
            self._scraper = LoadScraper(session, scraped, ScrapeConfig(interval_s=interval,
                                                                       stale_after_s=max(2.0, 4 * interval)))
            self._scraper.start()
        self._gauges = asyncio.create_task(self._refresh_forever(), name="tokenyard-backend-gauges")

    async def close(self) -> None:
        for checker in self._checkers:
            await checker.stop()
        self._checkers.clear()
        if self._scraper is not None:
            await self._scraper.stop()
            self._scraper = None
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauges
            self._gauges = None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(GAUGE_INTERVAL_S)
            self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """``tokenyard_backend_up`` = healthy, not ejected, circuit not open in at least one pool that lists the
        endpoint (health alone: an operator's drain is planned, not an outage, and shows in ``/admin/backends``)."""
        up: dict[str, bool] = {}
        for pool in self.pools.values():
            for endpoint in pool.endpoints:
                status = pool.health.status(endpoint.name)
                up[endpoint.name] = up.get(endpoint.name, False) or (status.healthy and not status.ejected)
        for name, value in up.items():
            self._endpoints[name].set_up(value)

    def drain(self, name: str, drained: bool = True) -> bool:
        """Drain endpoint ``name`` in every pool that lists it (no new requests; in-flight ones finish), or put it
        back (``drained`` False). False when no pool has an endpoint of that name."""
        found = False
        for pool in self.pools.values():
            found = pool.health.drain(name, drained) or found
        return found

    def scraped_load(self, name: str) -> BackendLoad | None:
        """The newest load sample of ``name`` from the router's scraper (``p2c`` pools only), whatever its age."""
        return self._scraper.latest(name) if self._scraper is not None else None

    def observe_phases(self, backend: str, phases: dict[str, float], retransmits: int = 0) -> None:
        children = self._phase_children.get(backend)
        if children is None:
            children = self._phase_children[backend] = {}
        for phase, seconds in phases.items():
            child = children.get(phase)
            if child is None:  # bound once per (backend, phase): no label lookup per request
                child = children[phase] = self._phase_hist.labels(backend, phase)
            child.observe(seconds)
        if retransmits:
            self.metrics.upstream_retransmits.labels(backend).inc(retransmits)

    # ----- policy -----

    def select_pool(self, pool: Pool, features: RequestFeatures) -> Pool:
        """The pool the route rules of ``pool``'s model name choose (``pool`` itself when none matches)."""
        table = self.tables.get(pool.name)
        if table is None:
            return pool
        return self.pools.get(table.select(features), pool)

    def policy_for(self, klass: str) -> RetryPolicy:
        """The class's retry policy: ``routing.classes.<class>`` over the gateway's ``retries`` section."""
        policy = self._policies.get(klass)
        if policy is None:
            policy = self._policies[klass] = self._policy_of(klass)
        return policy

    def _policy_of(self, klass: str) -> RetryPolicy:
        own = self.config.routing.classes.get(klass)
        retries = self.config.retries
        attempts = own.max_attempts if own is not None and own.max_attempts is not None else self.max_attempts
        per_pool = own.per_pool_attempts if own is not None and own.per_pool_attempts is not None else attempts
        base_s = retries.backoff_ms / 1000.0
        return RetryPolicy(
            max_attempts=attempts, per_pool_attempts=min(per_pool, attempts), retry_on_status=DEFAULT_RETRY_ON,
            failover=own.failover if own is not None else True,
            backoff=Backoff(base_s=base_s, cap_s=max(base_s, 0.25)),
            hedge_delay_s=own.hedge_delay_ms / 1000.0 if own is not None and own.hedge_delay_ms else None,
        )

    def chain(self, pool: Pool) -> tuple[str, ...]:
        """``pool`` then its configured fallbacks (those that exist); computed once per pool (pools are fixed)."""
        found = self._chains.get(pool.name)
        if found is None:
            found = self._chains[pool.name] = (pool.name, *(n for n in pool.config.fallback if n in self.pools))
        return found

    # ----- the request path -----

    async def open(self, pool: Pool, path: str, body: bytes, headers: dict[str, str],
                   request: RouteRequest | None = None) -> Attempt:
        """Send to an endpoint of ``pool`` (or the pool its route rules choose); retry, fail over and hedge
        while allowed. Returns the answered attempt (a non-retried status, 4xx included, is returned as is; the
        last retriable failure status when no retry is left). Raises ``NoUpstream`` when nothing answered.
        Cancellation closes every upstream connection of the request before propagating.
        """
        req = request if request is not None else RouteRequest()
        first = self.select_pool(pool, req.features)
        policy = self.policy_for(req.klass)
        keep: list[Attempt] = []  # answered attempts not yet handed out (hedge race, kept failure status)
        winner: Attempt | None = None
        engine = self.eastwest_engine if first.config.kind in EASTWEST_KINDS else self.engine
        with engine.begin(self.chain(first), policy) as retries:
            try:
                if policy.hedge_delay_s is not None:
                    winner = await self._hedged(retries, pool, path, body, headers, req, keep)
                else:
                    winner = await self._run(retries, pool, path, body, headers, req, keep)
            except _FailedAnswer as failed:
                winner = failed.attempt
            except AttemptError as error:
                if error.failure.outcome is Outcome.TIMEOUT:
                    raise NoUpstream(str(error), "upstream_timeout") from None
                raise NoUpstream(str(error)) from None
            except NoEndpointAvailable:
                raise NoUpstream("no healthy upstream for this model") from None
            except BudgetExhausted as exc:
                raise NoUpstream(f"no capacity: every endpoint's shared budget is in use ({exc})", str(exc)) \
                    from None
            finally:
                self._discard(keep, exclude=winner)
            winner.tries = retries.attempts
            return winner

    def _discard(self, keep: list[Attempt], exclude: Attempt | None) -> None:
        for attempt in keep:
            if attempt is not exclude and not attempt._done:
                attempt.response.close()
                attempt.finish("discarded", observe=False)
        keep.clear()

    async def _run(self, retries: RequestRetries, asked: Pool, path: str, body: bytes, headers: dict[str, str],
                   req: RouteRequest, keep: list[Attempt]) -> Attempt:
        scraper = self._scraper

        def choose(pool_name: str, tried: frozenset[str]) -> EndpointView | None:
            pool = self.pools[pool_name]
            if scraper is None or pool_name not in self._scraped_pools:  # the pool's list of current views
                views = pool.views if not tried else [v for v in pool.views if v.name not in tried]
                return pick_with_permit(pool.picker, pool.health, views, req.features, as_listed=True)
            views = [e.view(scraper.latest(e.name)) for e in pool.endpoints if e.name not in tried]
            return pick_with_permit(pool.picker, pool.health, views, req.features)

        def remaining() -> float | None:
            return None if req.deadline is None else req.deadline - monotonic()

        # One coroutine per attempt on the common path (no shared budget, no trace): every extra layer is paid
        # again at each resumption of the request's task.
        async def send(pool_name: str, view: EndpointView) -> Attempt:
            if keep:  # a failure status kept from the previous try is dropped now that another try starts
                self._discard(keep, exclude=None)
            pool = self.pools[pool_name]
            attempt_body = body if pool is asked else self._renamed(body, pool, asked, req.features.model)
            budget = self.budget
            if budget is None:
                endpoint, lease = pool.by_name[view.name], None
            else:
                endpoint, lease = await self._leased(budget, pool, view.name, req, retries.tried())
            try:
                if req.trace is None:
                    attempt = await self._send_once(pool, endpoint, path, attempt_body, headers, req, retries.policy)
                else:
                    attempt = await self._send_traced(pool, endpoint, path, attempt_body, headers, req,
                                                      retries.policy, req.trace)
            except _FailedAnswer as failed:
                failed.attempt.lease = lease  # released when the kept answer is finished
                keep.append(failed.attempt)
                raise
            except BaseException:
                if lease is not None and self.budget is not None:
                    self.budget.release(endpoint.name, lease)
                raise
            attempt.lease = lease
            return attempt

        return await run_with_retries(retries, choose, send, _view_name, remaining_s=remaining)

    async def _hedged(self, retries: RequestRetries, asked: Pool, path: str, body: bytes, headers: dict[str, str],
                      req: RouteRequest, keep: list[Attempt]) -> Attempt:
        """Race a second run against the first after the class's hedge delay; the loser is aborted upstream."""
        assert retries.policy.hedge_delay_s is not None
        answered: list[Attempt] = []

        async def one(index: int) -> Attempt:
            own: list[Attempt] = []
            try:
                attempt = await self._run(retries, asked, path, body, headers, req, own)
            finally:
                keep.extend(own)  # failure answers still held by this run: closed by open() unless relayed
            answered.append(attempt)
            return attempt

        def loser(index: int) -> None:
            self.hedge_losers += 1
            self.metrics.aborts_by_reason["hedge_loser"].inc()

        winner = await hedge(one, retries.policy.hedge_delay_s, allow=retries.try_hedge, on_loser=loser)
        # Two attempts can answer in the same loop turn: the one not chosen is a loser too, closed here.
        for attempt in answered:
            if attempt is not winner:
                attempt.response.close()
                attempt.finish("hedge_loser", observe=False)
                loser(1)
        return winner

    async def _leased(self, budget: EndpointBudget, pool: Pool, chosen: str, req: RouteRequest,
                      tried: frozenset[str]) -> tuple[Endpoint, str | None]:
        """The endpoint to send to and its lease in the shared ``budget`` (None: none held, see
        ``EndpointBudget.acquire``). ``chosen`` (the picker's, holding a breaker permit) when it has a free slot,
        else the least busy other routable endpoint of the pool that has one (its permit is taken, ``chosen``'s
        given back); waits while all are full."""

        def others() -> list[str]:
            names = [e for e in pool.endpoints if e.name not in tried and e.name != chosen and e.weight > 0
                     and pool.health.status(e.name).routable]
            return [e.name for e in sorted(names, key=lambda e: e.inflight)]

        def claim(name: str) -> bool:
            return pool.health.try_begin(name)

        try:
            name, lease = await budget.acquire(chosen, others, claim, req.deadline)
        except BaseException:
            pool.health.report(chosen, Outcome.CANCELLED)  # the picker's permit: no attempt was made
            raise
        if name != chosen:
            pool.health.report(chosen, Outcome.CANCELLED)
        return pool.by_name[name], lease

    def _renamed(self, body: bytes, pool: Pool, asked: Pool, client_model: str) -> bytes:
        """The body for another pool than the one asked for (a route rule's or a fallback): that pool's
        ``upstream_model``, else the client's own model name when the asked pool had renamed it."""
        target = pool.config.upstream_model
        if target is None and asked.config.upstream_model is not None:
            target = client_model or None
        if target is None:
            return body
        document = msgspec.json.decode(body)
        if isinstance(document, dict):
            document["model"] = target
        return msgspec.json.encode(document)

    async def _send_traced(self, pool: Pool, endpoint: Endpoint, path: str, body: bytes, headers: dict[str, str],
                           req: RouteRequest, policy: RetryPolicy, trace: RequestTrace) -> Attempt:
        """One attempt in its own span of the request's trace (its ``traceparent`` sent upstream)."""
        span = trace.attempt(pool.name, endpoint.name)
        try:
            attempt = await self._send_once(pool, endpoint, path, body, span.inject(headers), req, policy)
        except _FailedAnswer as failed:
            span.end(failed.attempt.response.status, str(failed))
            raise
        except AttemptError as error:
            span.end(None, str(error))
            raise
        except asyncio.CancelledError:
            span.end(None, "cancelled")
            raise
        span.end(attempt.response.status, None)
        return attempt

    async def _send_once(self, pool: Pool, endpoint: Endpoint, path: str, body: bytes, headers: dict[str, str],
                         req: RouteRequest, policy: RetryPolicy) -> Attempt:
        """One attempt: send, wait for the answer to begin, report the outcome to the pool's health."""
        health = pool.health
        clock = PhaseClock(monotonic(), req.queue_s)
        endpoint.acquire(req.tokens)
        response: H1Response | None = None
        try:
            # A stream's head is due within first_token_ms (an engine answers a stream's head at once, even
            # while it queues it): no head is a hung endpoint, retried elsewhere as nothing reached the client.
            # A non-streaming answer's head comes with the whole answer: only the request's deadline bounds it,
            # so a long generation is never cut.
            if req.stream:
                async with asyncio.timeout(self.first_byte_s):
                    response = await self.client.post(endpoint.url + path, body, headers)
            else:  # no timeout context on the non-streaming hot path: it would bound nothing
                response = await self.client.post(endpoint.url + path, body, headers)
            clock.connect_s = response.connect_s
            clock.at_head(monotonic())
            clock.upstream_queue_from(response.headers.get(UPSTREAM_QUEUE_HEADER))
            if response.status < 300:
                if not req.stream:
                    await response.read()  # the whole answer: a death mid-body can still be retried
                elif policy.hedge_delay_s is not None:
                    await _first_byte(response)
        except asyncio.CancelledError:
            if response is not None:
                response.close()
            endpoint.release(req.tokens)
            health.report(endpoint.name, Outcome.CANCELLED)
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError) as exc:
            if response is not None:
                response.close()
            endpoint.release(req.tokens)
            outcome = Outcome.TIMEOUT if isinstance(exc, TimeoutError) else (
                Outcome.CONNECT_ERROR if response is None else Outcome.FAILURE)
            health.report(endpoint.name, outcome)
            self.refresh_gauges()
            raise AttemptError(AttemptFailure(outcome),
                               f"upstream {endpoint.name} failed: {type(exc).__name__}") from exc
        latency = monotonic() - clock.sent_at
        outcome = Outcome.from_status(response.status)
        attempt = Attempt(self, pool, endpoint, response, clock, req.tokens)
        if req.stream and outcome is Outcome.SUCCESS:
            attempt.verdict = True  # reported when the stream ends (Attempt.finish)
        else:
            health.report(endpoint.name, outcome, latency_s=latency if outcome is Outcome.SUCCESS else None)
        if outcome is not Outcome.SUCCESS:
            self.refresh_gauges()
            if response.status in policy.retry_on_status:
                raise _FailedAnswer(AttemptFailure(outcome, response.status), attempt)
        return attempt


def _view_name(view: EndpointView) -> str:
    return view.name


async def reachable_probe(session: aiohttp.ClientSession, url: str, timeout_s: float) -> bool:
    """An active check: healthy when the server answers below 500 within ``timeout_s``.

    A 2xx is the normal case (vLLM and the simulator serve ``/health``); a 404/405 still proves the server is up
    (an OpenAI-compatible upstream without a health route must not be marked down forever); 5xx, a refused or
    reset connection and a timeout are failures.
    """
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False) as resp:
            await resp.read()
            return resp.status < 500
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def _first_byte(response: H1Response) -> None:
    """Wait until the first byte of the body is buffered (or the body ended), without consuming it."""
    content = response.content
    await content.wait_readable()
    error = content.exception()
    if error is not None:
        raise error
