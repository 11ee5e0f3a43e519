"""The admission engine: flow control in front of the router.

    shed? -> deadline predictable? -> enqueue (band / tenant DRR / EDF) -> dispatch while inflight < limit
    -> lease released on every exit path

One ``FairQueue`` per pool (model). A pool's concurrency limit is the sum of its endpoints' adaptive limits
(``policy.adaptive_limit``); before the router names endpoints, one implicit limit ``"*"`` stands for the
pool. ``await admit(ticket)`` returns a ``Lease`` once dispatched or raises ``Rejected``. Queued requests whose
TTL runs out leave the queue without ever being dispatched (a timer sweeps at the next expiry; ``sweep()``
does it by hand for fake clocks). A waiter cancelled while queued leaves the queue; a lease granted to a
waiter that was cancelled before it resumed is released at once: nothing leaks on any exit path.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypedDict

from tokenyard.policy.adaptive_limit import AdaptiveLimit, AdaptiveLimitSettings
from tokenyard.policy.deadline import DeadlineSettings, TtftPredictor
from tokenyard.policy.fair_queue import (
    DEFAULT_OUTPUT_CAP,
    DEFAULT_OUTPUT_WEIGHT,
    FairQueue,
    FairQueueSettings,
    QueueEntry,
    request_cost,
)
from tokenyard.policy.shedding import SheddingSettings, ShedTier, decide, retry_after_s
from tokenyard.traffic.admission_types import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    DEADLINE_UNMEETABLE,
    DEADLINE_UNMEETABLE_AT_DISPATCH,
    DISPATCHED,
    EXPIRED,
    QUEUE_TIMEOUT,
    REJECTED,
    SHED,
    SHUTTING_DOWN,
    AdmissionEvent,
    AdmissionTicket,
    Rejected,
)

POOL_KEY = "*"


@dataclass(frozen=True)
class AdmissionSettings:
    """Every knob of the engine; defaults in docs/admission.md."""

    fair_queue: FairQueueSettings = field(default_factory=FairQueueSettings)
    limits: AdaptiveLimitSettings = field(default_factory=AdaptiveLimitSettings)
    shedding: SheddingSettings = field(default_factory=SheddingSettings)
    deadline: DeadlineSettings = field(default_factory=DeadlineSettings)
    queue_caps: Mapping[str, int] = field(default_factory=dict)  # per class
    default_queue_cap: int = 10_000
    slo_reject_tiers: frozenset[ShedTier] = frozenset({ShedTier.STANDARD})
    output_weight: float = DEFAULT_OUTPUT_WEIGHT
    output_cap: int = DEFAULT_OUTPUT_CAP
    expiry_timer: bool = True
    # Share of each pool's capacity only the critical tier may use: other tiers dispatch while in-flight is
    # below capacity x (1 - critical_reserve), so a premium arrival finds a free backend slot instead of
    # waiting for a long batch request to end (trunk reservation).
    critical_reserve: float = 0.0


@dataclass
class _Waiter:
    ticket: AdmissionTicket
    entry: QueueEntry
    future: asyncio.Future[Lease]
    budget_at: float  # absolute time by which the first token should arrive
    client_bound: bool  # the client's deadline (not the class TTL) ends the queue wait


class _EntryFields(TypedDict):
    tenant: str
    klass: str
    band: int
    cost: float
    now: float
    ttl_s: float
    deadline: float | None
    weight: float


@dataclass
class _Pool:
    name: str
    queue: FairQueue
    predictor: TtftPredictor
    limits: dict[str, AdaptiveLimit] = field(default_factory=dict)
    endpoint_inflight: Counter[str] = field(default_factory=Counter)
    endpoint_tokens: Counter[str] = field(default_factory=Counter)
    inflight: int = 0
    waiters: dict[str, _Waiter] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    timer_at: float | None = None
    # Callers refused here that will ask again (``wait_to_retry``): woken by a released slot or a fresh signal.
    retry_waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    _capacity: int | None = None  # the sum of ``limits``; None: to be summed again

    @property
    def capacity(self) -> int:
        """The sum of the pool's limits: read on every request, summed again only after a limit moved."""
        total = self._capacity
        if total is None:
            total = 0
            for limit in self.limits.values():
                total += limit.limit
            self._capacity = total
        return total

    def set_limits(self, limits: dict[str, AdaptiveLimit]) -> None:
        """Replace the pool's limits (each tells the pool when it moves, see ``AdaptiveLimit.on_change``)."""
        self.limits = limits
        for limit in limits.values():
            limit.on_change = self._limits_moved
        self._capacity = None

    def _limits_moved(self) -> None:
        self._capacity = None


class Lease:
    """A dispatched request's slot. Release it exactly once (``release`` is idempotent; ``async with``
    releases on exit). Feed it what the request taught: ``record_ttft``, ``record_overload``, ``settle``."""

    def __init__(self, controller: AdmissionController, pool: _Pool, entry: QueueEntry, ticket: AdmissionTicket,
                 queue_wait_s: float) -> None:
        self._controller = controller
        self._pool = pool
        self._entry = entry
        self.ticket = ticket
        self.queue_wait_s = queue_wait_s
        self.endpoint: str | None = None
        self.released = False
        # Tokens this request may hold on its endpoint: the instant saturation signal counts them.
        self._tokens = ticket.prompt_tokens + (ticket.max_tokens if ticket.max_tokens is not None
                                               else controller.settings.output_cap)

    def bind_endpoint(self, endpoint: str) -> None:
        """The router picked ``endpoint``: count the request against that endpoint's limit."""
        if self.released or self.endpoint == endpoint:
            return
        self._unbind()
        self.endpoint = endpoint
        self._pool.endpoint_inflight[endpoint] += 1
        self._pool.endpoint_tokens[endpoint] += self._tokens

    def _unbind(self) -> None:
        if self.endpoint is not None:
            self._pool.endpoint_inflight[self.endpoint] -= 1
            self._pool.endpoint_tokens[self.endpoint] -= self._tokens
            self.endpoint = None

    def record_ttft(self, ttft_s: float) -> None:
        """Time to first token: trains the deadline predictor and is the adaptive limit's delay sample."""
        self._controller._on_ttft(self._pool, self.endpoint, ttft_s)

    def record_overload(self) -> None:
        """The backend pushed back (429/503/timeout): multiplicative decrease of its limit."""
        self._controller._on_overload(self._pool, self.endpoint)

    def settle(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Correct the tenant's fair-queue credit with the tokens actually used."""
        s = self._controller.settings
        self._pool.queue.settle(self._entry, prompt_tokens + s.output_weight * completion_tokens)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self._unbind()
        self._controller._release(self._pool)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()


class AdmissionController:
    """Per-pool flow control. ``saturation(pool) -> float`` supplies the backend saturation (see
    ``policy.saturation``; None: 0, never shed for load); ``on_event`` receives every decision."""

    def __init__(
        self,
        settings: AdmissionSettings | None = None,
        *,
        saturation: Callable[[str], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_event: Callable[[AdmissionEvent], None] | None = None,
    ) -> None:
        self.settings = settings or AdmissionSettings()
        self._saturation = saturation or (lambda _pool: 0.0)
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_event = on_event
        self._pools: dict[str, _Pool] = {}
        self._critical_classes: set[str] = set()
        self._closed = False

    # ---- configuration ----------------------------------------------------------------------------------
    def set_endpoints(self, pool: str, endpoints: Iterable[str]) -> None:
        """The pool's endpoints (each gets its own adaptive limit; known ones keep theirs)."""
        state = self._pool(pool)
        names = list(endpoints)
        now = self._clock()
        kept = {n: state.limits.get(n) or AdaptiveLimit(self.settings.limits, now=now) for n in names}
        state.set_limits(kept or {POOL_KEY: AdaptiveLimit(self.settings.limits, now=now)})
        self._pump(state, from_release=False)

    def observe_kv(self, pool: str, endpoint: str, kv_usage: float) -> None:
        """Scraped KV usage of an endpoint; >= kv_overload shrinks its limit."""
        limit = self._pool(pool).limits.get(endpoint)
        if limit is not None:
            limit.observe_kv(kv_usage, self._clock())

    def observe_queue(self, pool: str, endpoint: str, running: float, waiting: float, scraped_at: float) -> None:
        """Scraped running and waiting counts of an endpoint: a sustained server queue cuts its limit to this
        gateway's share of what the server runs, so the excess waits here, in priority order (adaptive_limit)."""
        state = self._pool(pool)
        limit = state.limits.get(endpoint)
        if limit is not None:
            inflight = state.endpoint_inflight.get(endpoint, 0)
            limit.observe_queue(running, waiting, inflight, scraped_at, self._clock())

    # ---- the request path -------------------------------------------------------------------------------
    def admit_now(self, ticket: AdmissionTicket) -> Lease | None:
        """The arrival fast path: the lease at once when nobody is queued in the pool and a slot is free for
        the ticket's tier, or ``Rejected`` when shedding or the client's deadline refuses it; None (no decision
        taken, nothing changed): the request may have to wait, ``await admit(ticket)``.

        It takes exactly the decisions ``admit`` takes for such an arrival (the shedding draw included): with
        an empty queue nothing can expire, the deadline check is the free-slot one (position 0) and the
        queue would hand the slot straight back; only the queue round trip and its bookkeeping are skipped.
        """
        if self._closed:
            return None
        pool = self._pool(ticket.pool)
        if pool.queue or self._free_slots(pool, ticket.tier) < 1:
            return None
        now = self._clock()
        if ticket.tier is ShedTier.CRITICAL:
            self._critical_classes.add(ticket.klass)
        self._check_shedding(pool, ticket)
        arrival = now if ticket.arrival is None else ticket.arrival
        budget_s, _client_bound = self._budget(ticket)
        if ticket.deadline_s is not None:
            self._check_deadline(pool, ticket, budget_s - (now - arrival), now, arrival)
        entry = pool.queue.dispatch_now(ticket.request_id, **self._entry_fields(ticket, now, arrival, budget_s))
        pool.predictor.observe_dispatch(now, backlogged=False)
        pool.inflight += 1
        self._emit(AdmissionEvent(DISPATCHED, ticket.request_id, ticket.klass, pool.name, DISPATCHED, 0.0, None))
        return Lease(self, pool, entry, ticket, 0.0)

    def _entry_fields(self, ticket: AdmissionTicket, now: float, arrival: float, budget_s: float) -> _EntryFields:
        """The queue entry of ``ticket``, whether it waits (``push``) or is served on arrival (``dispatch_now``)."""
        return _EntryFields(
            tenant=ticket.tenant,
            klass=ticket.klass,
            band=ticket.priority,
            cost=request_cost(ticket.prompt_tokens, ticket.max_tokens,
                              output_weight=self.settings.output_weight, output_cap=self.settings.output_cap),
            now=now,
            ttl_s=max(0.0, arrival + budget_s - now),  # past its budget a request is not worth serving
            deadline=arrival + ticket.deadline_s if ticket.deadline_s is not None else None,
            weight=ticket.weight,
        )

    async def admit(self, ticket: AdmissionTicket) -> Lease:
        """Wait for a slot; return its lease, or raise ``Rejected``. Cancellation-safe."""
        if self._closed:
            raise Rejected(SHUTTING_DOWN, 503, None, "gateway is shutting down")
        lease = self.admit_now(ticket)
        if lease is not None:
            return lease
        now = self._clock()
        pool = self._pool(ticket.pool)
        if ticket.tier is ShedTier.CRITICAL:
            self._critical_classes.add(ticket.klass)
        self._expire(pool, now)
        self._check_shedding(pool, ticket)
        arrival = now if ticket.arrival is None else ticket.arrival
        budget_s, client_bound = self._budget(ticket)
        self._check_deadline(pool, ticket, budget_s - (now - arrival), now, arrival)
        entry = pool.queue.push(ticket.request_id, **self._entry_fields(ticket, now, arrival, budget_s),
                                aging_base_s=ticket.queue_timeout_s)
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        pool.waiters[ticket.request_id] = _Waiter(ticket, entry, future, arrival + budget_s, client_bound)
        self._pump(pool, from_release=False)
        self._arm_timer(pool)
        try:
            return await future
        except asyncio.CancelledError:
            self._abandon(pool, ticket, future)
            raise

    def sweep(self) -> int:
        """Expire every queued request past its TTL now; returns how many left."""
        now = self._clock()
        return sum(self._expire(pool, now) for pool in list(self._pools.values()))

    async def close(self) -> None:
        """Refuse new work and fail every queued waiter with 503; leases already granted stay valid."""
        self._closed = True
        for pool in self._pools.values():
            if pool.timer is not None:
                pool.timer.cancel()
                pool.timer = None
            for request_id, waiter in list(pool.waiters.items()):
                pool.queue.remove(request_id)
                del pool.waiters[request_id]
                self._fail(pool, waiter, Rejected(SHUTTING_DOWN, 503, None, "gateway is shutting down"), REJECTED)

    def snapshot(self) -> dict[str, Any]:
        """State for the admin API: per pool depth by class, in-flight, capacity and per-endpoint limits."""
        pools: dict[str, Any] = {}
        totals: Counter[str] = Counter()
        for name, pool in self._pools.items():
            depth = pool.queue.depth_by_class()
            totals.update(depth)
            pools[name] = {
                "inflight": pool.inflight,
                "capacity": pool.capacity,
                "queued": len(pool.queue),
                "depth": depth,
                "endpoints": {
                    ep: {"limit": lim.limit, "inflight": pool.endpoint_inflight.get(ep, 0)}
                    for ep, lim in pool.limits.items()
                },
                "predicted_ttft_s": pool.predictor.ttft_s,
                "service_interval_s": pool.predictor.service_interval_s,
            }
        return {"pools": pools, "depth": dict(totals)}

    def endpoint_inflight(self, pool: str, endpoint: str) -> tuple[int, int]:
        """(requests, tokens) in flight on ``endpoint`` through this gateway: the instant saturation signal."""
        state = self._pools.get(pool)
        if state is None:
            return 0, 0
        return state.endpoint_inflight.get(endpoint, 0), state.endpoint_tokens.get(endpoint, 0)

    def depth(self, klass: str) -> int:
        """Queued requests of ``klass`` over all pools. Read by ``tokenyard_queue_depth`` when ``/metrics`` is
        rendered, which happens in a worker thread: the pools are copied (one C call, atomic under the GIL)
        before they are iterated, so a pool created meanwhile on the event loop cannot break the iteration."""
        return sum(pool.queue.depth_of(klass) for pool in list(self._pools.values()))

    # ---- internals --------------------------------------------------------------------------------------
    def _pool(self, name: str) -> _Pool:
        pool = self._pools.get(name)
        if pool is None:
            pool = _Pool(name, FairQueue(self.settings.fair_queue), TtftPredictor(self.settings.deadline))
            pool.set_limits({POOL_KEY: AdaptiveLimit(self.settings.limits, now=self._clock())})
            self._pools[name] = pool
        return pool

    def _budget(self, ticket: AdmissionTicket) -> tuple[float, bool]:
        """min(class queue TTL, class TTFT SLO for the SLO tiers, client deadline); and whether the client's
        deadline is the binding one (expiry is then 504, not 503)."""
        bounds = [ticket.queue_timeout_s]
        if ticket.ttft_slo_s is not None and ticket.tier in self.settings.slo_reject_tiers:
            bounds.append(ticket.ttft_slo_s)
        budget = min(bounds)
        client = ticket.deadline_s is not None and ticket.deadline_s < budget
        return (ticket.deadline_s if client and ticket.deadline_s is not None else budget), client

    def _backlog_s(self, pool: _Pool, position: int) -> float:
        return pool.predictor.predict(position)

    def _check_shedding(self, pool: _Pool, ticket: AdmissionTicket) -> None:
        cap = self.settings.queue_caps.get(ticket.klass, self.settings.default_queue_cap)
        decision = decide(
            ticket.tier,
            # The critical tier is never shed for saturation: its decision does not read the signal.
            0.0 if ticket.tier is ShedTier.CRITICAL else self._saturation(pool.name),
            queue_depth=pool.queue.depth_of(ticket.klass),
            queue_cap=cap,
            draw=self._rng.random(),
            settings=self.settings.shedding,
        )
        if decision.admit:
            return
        retry = retry_after_s(self._backlog_s(pool, len(pool.queue)), self.settings.shedding)
        self._refuse(pool, ticket, Rejected(decision.reason, 429, retry, f"shed under load ({decision.reason})"),
                     SHED)

    def _free_slots(self, pool: _Pool, tier: ShedTier) -> int:
        """Slots a request of ``tier`` may take now (the critical tier may use the reserve too)."""
        return (pool.capacity if tier is ShedTier.CRITICAL else self._shared(pool)) - pool.inflight

    def _check_deadline(self, pool: _Pool, ticket: AdmissionTicket, budget_left_s: float, now: float,
                        arrival: float) -> None:
        free = self._free_slots(pool, ticket.tier)
        position = max(0, pool.queue.depth_ahead(ticket.priority) + 1 - free)
        if position == 0:
            # A free slot: the queue adds nothing, so the class SLO is not checked (a slow pool would shed every
            # standard request while its slots stand idle). The client's own deadline is: below the TTFT the
            # pool has shown recently it would almost surely be missed, so it is refused before upstream work.
            if ticket.deadline_s is None:
                return
            verdict = pool.predictor.check_learned(ticket.deadline_s - (now - arrival), now)
        else:
            verdict = pool.predictor.check(position, budget_left_s)
        if verdict.ok:
            return
        retry = retry_after_s(verdict.predicted_s - verdict.allowed_s, self.settings.shedding)
        message = (f"predicted time to first token {verdict.predicted_s:.3f}s exceeds the "
                   f"{verdict.allowed_s:.3f}s budget")
        self._refuse(pool, ticket, Rejected(DEADLINE_UNMEETABLE, 429, retry, message), REJECTED)

    def _refuse(self, pool: _Pool, ticket: AdmissionTicket, error: Rejected, kind: str) -> None:
        self._emit(AdmissionEvent(kind, ticket.request_id, ticket.klass, pool.name, error.reason, 0.0,
                                  error.status))
        raise error

    def _fail(self, pool: _Pool, waiter: _Waiter, error: Rejected, kind: str) -> None:
        if not waiter.future.done():
            waiter.future.set_exception(error)
        t = waiter.ticket
        waited = self._clock() - waiter.entry.enqueued_at
        self._emit(AdmissionEvent(kind, t.request_id, t.klass, pool.name, error.reason, waited, error.status))

    def _expire(self, pool: _Pool, now: float) -> int:
        expired = pool.queue.expire(now)
        for entry in expired:
            waiter = pool.waiters.pop(entry.entry_id)
            if waiter.client_bound:
                error = Rejected(DEADLINE_EXCEEDED, 504, None, "deadline exceeded while queued")
            else:
                retry = retry_after_s(self._backlog_s(pool, len(pool.queue)), self.settings.shedding)
                error = Rejected(QUEUE_TIMEOUT, 503, retry, "no capacity within the class queue timeout")
            self._fail(pool, waiter, error, EXPIRED)
        return len(expired)

    def _pump(self, pool: _Pool, *, from_release: bool) -> None:
        if not pool.queue:
            # Nobody waiting (the common case on release): nothing to expire or dispatch.
            self._arm_timer(pool)
            return
        now = self._clock()
        self._expire(pool, now)
        backlogged = from_release
        shared = self._shared(pool)
        while pool.inflight < pool.capacity:
            if pool.inflight >= shared and not self._critical_waiting(pool):
                break  # the rest is kept for the critical tier
            entry = pool.queue.pop(now)
            if entry is None:
                break
            waiter = pool.waiters.pop(entry.entry_id)
            if waiter.future.done():
                # Its task was cancelled and has not run its cleanup yet: the slot goes to the next one.
                self._emit_cancelled(pool, waiter.ticket, now - entry.enqueued_at)
                continue
            waited = now > entry.enqueued_at  # one dispatched on arrival was checked there
            if waited and (waiter.ticket.tier in self.settings.slo_reject_tiers or waiter.client_bound):
                verdict = pool.predictor.check(0, waiter.budget_at - now)
                if not verdict.ok:
                    retry = retry_after_s(verdict.predicted_s - verdict.allowed_s, self.settings.shedding)
                    self._fail(pool, waiter, Rejected(DEADLINE_UNMEETABLE_AT_DISPATCH, 429, retry,
                                                      "the deadline can no longer be met"), REJECTED)
                    continue
            pool.predictor.observe_dispatch(now, backlogged=backlogged)
            backlogged = False
            pool.inflight += 1
            wait = now - entry.enqueued_at
            waiter.future.set_result(Lease(self, pool, entry, waiter.ticket, wait))
            t = waiter.ticket
            self._emit(AdmissionEvent(DISPATCHED, t.request_id, t.klass, pool.name, DISPATCHED, wait, None))
        self._arm_timer(pool)

    def _shared(self, pool: _Pool) -> int:
        """The in-flight level up to which every tier may dispatch (the rest is the critical reserve)."""
        capacity = pool.capacity
        reserve = self.settings.critical_reserve
        return capacity - math.ceil(capacity * reserve) if reserve else capacity

    def _critical_waiting(self, pool: _Pool) -> bool:
        """True when a request of the critical tier is queued (strict priority pops it first)."""
        if not self._critical_classes:
            return False
        depth = pool.queue.depth_by_class()
        return any(depth.get(klass, 0) for klass in self._critical_classes)

    def _release(self, pool: _Pool) -> None:
        pool.inflight = max(0, pool.inflight - 1)
        self._pump(pool, from_release=True)
        waiters = pool.retry_waiters
        while waiters:  # one refused caller per freed slot asks again
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def wait_to_retry(self, pool: str, timeout_s: float) -> None:
        """For a caller that was refused (429/503) and will ask again — a pipeline event, whose answer to
        shedding is backpressure, not failure: return when asking again may succeed (a slot of ``pool`` was
        released, or the saturation signal was refreshed: ``signal_refreshed``), at the latest after
        ``timeout_s`` (the refusal's ``Retry-After``). Waiting a fixed ``Retry-After`` in lockstep instead left
        the backend idle for whole seconds after a burst once the signal had long cleared."""
        state = self._pool(pool)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.retry_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            if not waiter.done():
                waiter.cancel()  # left in the queue; skipped when reached

    def signal_refreshed(self) -> None:
        """The saturation signal has new data (a scrape round): every refused caller may ask again."""
        for pool in self._pools.values():
            waiters, pool.retry_waiters = pool.retry_waiters, deque()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _abandon(self, pool: _Pool, ticket: AdmissionTicket, future: asyncio.Future[Lease]) -> None:
        """The waiter was cancelled: leave the queue, or give back a lease it never received."""
        if future.done() and not future.cancelled():
            if future.exception() is None:
                future.result().release()
            return
        waiter = pool.waiters.pop(ticket.request_id, None)
        if waiter is not None:
            pool.queue.remove(ticket.request_id)
            self._emit_cancelled(pool, ticket, self._clock() - waiter.entry.enqueued_at)
            self._arm_timer(pool)

    def _emit_cancelled(self, pool: _Pool, ticket: AdmissionTicket, waited: float) -> None:
        self._emit(AdmissionEvent(CANCELLED, ticket.request_id, ticket.klass, pool.name, "client_cancel",
                                  waited, None))

    def _on_ttft(self, pool: _Pool, endpoint: str | None, ttft_s: float) -> None:
        now = self._clock()
        pool.predictor.observe_ttft(ttft_s, now)
        key = endpoint if endpoint in pool.limits else POOL_KEY
        limit = pool.limits.get(key)
        if limit is not None:
            inflight = pool.inflight if key == POOL_KEY else pool.endpoint_inflight.get(key, 0)
            limit.sample(ttft_s, inflight, now)
            self._pump(pool, from_release=False)

    def _on_overload(self, pool: _Pool, endpoint: str | None) -> None:
        limit = pool.limits.get(endpoint if endpoint in pool.limits else POOL_KEY)
        if limit is not None:
            limit.overload(self._clock())

    def _arm_timer(self, pool: _Pool) -> None:
        if not self.settings.expiry_timer or self._closed:
            return
        at = pool.queue.next_expiry()
        if at == pool.timer_at:
            return
        if pool.timer is not None:
            pool.timer.cancel()
            pool.timer = None
        pool.timer_at = at
        if at is not None:
            delay = max(0.0, at - self._clock())
            pool.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, pool)

    def _on_timer(self, pool: _Pool) -> None:
        pool.timer = None
        pool.timer_at = None
        self._expire(pool, self._clock())
        self._arm_timer(pool)

    def _emit(self, event: AdmissionEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
