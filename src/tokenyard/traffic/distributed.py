"""Limits that hold across replicas sharing one ``SharedState`` (Redis): rate limits, backend budgets, aborts.

``ScaleOut`` is built once per gateway. With ``state: memory`` it only opens the in-process state (the cache can
use it) and every shared feature is off. With a Redis URL:

* ``GlobalLimiter``: the key/tenant/class ``rpm`` and ``tpm`` limits are token buckets in Redis, charged for all
  scopes of a request in one atomic ``take_all`` (all or nothing), so R rpm across any number of replicas admits
  at most R per minute (plus the refill while a burst is measured). ``max_concurrency`` is a lease per scope. The
  replica-local limiter is then replaced by an unlimited one, so a request is never charged twice.
* ``EndpointBudget``: ``scaleout.endpoint_budget`` (or ``scaleout.endpoint_budgets[<endpoint name>]``)
  concurrent requests per backend endpoint, counted by leases that every replica takes from the same Redis set
  ``endpoint:<name>``. The router takes one per attempt on the endpoint it chose, tries the pool's other
  endpoints when that one is full, and otherwise waits until ``budget_wait_ms`` or the deadline. Leases carry a
  TTL and are renewed while held (``LeaseKeeper``), so a crashed replica's slots free themselves.
* ``AbortBus``: ``POST /admin/requests/{id}/abort`` on a replica that does not run the request publishes it on a
  channel; the replica that runs it cancels it and acknowledges on the asker's own channel.

Redis unreachable: ``scaleout.fail_open`` admits (True) or refuses with 503 (False) what the shared limits would
decide; releases, renewals and refunds that fail are dropped (a restarted Redis forgets leases anyway), so a
request already accepted always runs to its end. The ``SharedState`` breaker and reconnection make it recover
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import TYPE_CHECKING

import msgspec

from tokenyard.config import GatewayConfig
from tokenyard.state import BucketTake, SharedState, StateUnavailable, Subscription, TakeResult, open_state
from tokenyard.state.subscribe import subscribe_when_up
from tokenyard.traffic.ratelimit import (
    ALLOWED,
    CONCURRENCY,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    RateDecision,
    RateLimit,
    RateLimiter,
    RateTicket,
    format_reset,
)

if TYPE_CHECKING:
    from tokenyard.gateway.context import RequestContext
    from tokenyard.traffic.control import TrafficControl

log = logging.getLogger("tokenyard.scaleout")
ABORT_CHANNEL = "abort"
STATE_DOWN = "shared_state_unavailable"
FORCE_LIMIT = 1 << 30  # re-registering a held lease must not be refused


def scope_limits(config: GatewayConfig) -> dict[str, RateLimit]:
    """``key:NAME``/``tenant:NAME``/``class:NAME`` -> its limits, for every scope that has one."""
    out: dict[str, RateLimit] = {}
    for k in config.keys:
        if k.rpm or k.tpm or k.max_concurrency:
            out[f"key:{k.name}"] = RateLimit(k.rpm, k.tpm, k.max_concurrency)
    for name, t in config.tenants.items():
        if t.rpm or t.tpm or t.max_concurrency:
            out[f"tenant:{name}"] = RateLimit(t.rpm, t.tpm, t.max_concurrency)
    for name, c in config.classes.items():
        if c.rpm or c.tpm or c.max_concurrency:
            out[f"class:{name}"] = RateLimit(c.rpm, c.tpm, c.max_concurrency)
    return out


class LeaseKeeper:
    """Renews every lease this replica holds each ``ttl_s / 3``, so live requests keep their slots."""

    def __init__(self, state: SharedState, ttl_s: float) -> None:
        self._state = state
        self.ttl_s = ttl_s
        self.held: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_forever(), name="tokenyard-lease-keeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    async def acquire(self, resource: str, holder: str, limit: int) -> bool:
        """Raises ``StateUnavailable``; True when the slot is ours (and now kept alive)."""
        if await self._state.acquire_lease(resource, holder, limit, self.ttl_s):
            self.held[(resource, holder)] = monotonic()
            return True
        return False

    async def release(self, resource: str, holder: str) -> None:
        if self.held.pop((resource, holder), None) is None:
            return
        with contextlib.suppress(StateUnavailable):
            await self._state.release_lease(resource, holder)

    def release_soon(self, resource: str, holder: str) -> asyncio.Task[None]:
        """Release from synchronous code (or after a cancelled acquire: sent even when not known as held)."""
        self.held.pop((resource, holder), None)
        task = asyncio.create_task(self._release_now(resource, holder), name="tokenyard-lease-release")
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        return task

    async def _release_now(self, resource: str, holder: str) -> None:
        with contextlib.suppress(StateUnavailable):
            await self._state.release_lease(resource, holder)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            for resource, holder in list(self.held):
                try:
                    if not await self._state.renew_lease(resource, holder, self.ttl_s) \
                            and (resource, holder) in self.held:
                        # Redis forgot it (a restart, or a renewal missed): the request still runs, count it again.
                        await self._state.acquire_lease(resource, holder, FORCE_LIMIT, self.ttl_s)
                except StateUnavailable:
                    break  # Redis is down: try again next round


class GlobalLimiter:
    """The rate limits of the config, enforced across replicas (see the module docstring)."""

    def __init__(self, state: SharedState, limits: Mapping[str, RateLimit], leases: LeaseKeeper,
                 fail_open: bool) -> None:
        self._state = state
        self._limits = dict(limits)
        self._leases = leases
        self.fail_open = fail_open

    def _scopes(self, ticket: RateTicket) -> list[tuple[str, RateLimit]]:
        names = (f"key:{ticket.key}", f"tenant:{ticket.tenant}", f"class:{ticket.klass}")
        return [(n, self._limits[n]) for n in names if n in self._limits]

    @staticmethod
    def _takes(scopes: list[tuple[str, RateLimit]], tokens: int) -> tuple[list[BucketTake], list[str]]:
        takes: list[BucketTake] = []
        labels: list[str] = []
        for name, limit in scopes:
            if limit.rpm:
                takes.append(BucketTake(f"rl:{name}:rpm", 1, limit.rpm / 60, limit.rpm))
                labels.append(REQUESTS_PER_MINUTE)
            if limit.tpm:
                takes.append(BucketTake(f"rl:{name}:tpm", tokens, limit.tpm / 60, limit.tpm))
                labels.append(TOKENS_PER_MINUTE)
        return takes, labels

    async def check(self, ticket: RateTicket, holder: str) -> RateDecision:
        """Charge every scope's buckets and take its concurrency lease, or refuse having charged nothing."""
        scopes = self._scopes(ticket)
        if not scopes:
            return RateDecision(True, ALLOWED)
        takes, labels = self._takes(scopes, ticket.estimated_tokens)
        try:
            result = await self._state.take_all(takes) if takes else None
            if result is not None and not result.allowed:
                failed = next(i for i, b in enumerate(result.buckets) if not b.allowed)
                retry = max(1, math.ceil(min(result.retry_after_s, 3600.0)))
                headers = _headers(takes, result.buckets)
                headers["retry-after"] = str(retry)
                scope = takes[failed].key.split(":", 1)[1].rsplit(":", 1)[0]
                return RateDecision(False, labels[failed], scope, retry, headers)
            for name, limit in scopes:
                if limit.max_concurrency and not await self._leases.acquire(f"conc:{name}", holder,
                                                                           limit.max_concurrency):
                    await self._undo(ticket, holder, takes)
                    return RateDecision(False, CONCURRENCY, name, 1, {"retry-after": "1"})
        except StateUnavailable:
            if self.fail_open:
                return RateDecision(True, ALLOWED)
            return RateDecision(False, STATE_DOWN, "shared-state", 1, {"retry-after": "1"})
        return RateDecision(True, ALLOWED, headers=_headers(takes, result.buckets) if result else {})

    async def _undo(self, ticket: RateTicket, holder: str, takes: list[BucketTake]) -> None:
        for take in takes:
            await self._state.adjust(take.key, take.cost)
        await self.release(ticket, holder)

    async def settle(self, ticket: RateTicket, holder: str, used_tokens: int) -> None:
        """Refund (or debit) the token estimate against what was used; give the concurrency leases back."""
        delta = ticket.estimated_tokens - used_tokens
        for name, limit in self._scopes(ticket):
            if limit.tpm and delta:
                with contextlib.suppress(StateUnavailable):
                    await self._state.adjust(f"rl:{name}:tpm", delta)
        await self.release(ticket, holder)

    async def release(self, ticket: RateTicket, holder: str) -> None:
        for name, limit in self._scopes(ticket):
            if limit.max_concurrency:
                await self._leases.release(f"conc:{name}", holder)


def _headers(takes: list[BucketTake], buckets: list[TakeResult]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers from the tightest request and token buckets."""
    headers: dict[str, str] = {}
    for label, suffix in (("requests", ":rpm"), ("tokens", ":tpm")):
        rows = [(t, b) for t, b in zip(takes, buckets, strict=True) if t.key.endswith(suffix)]
        if not rows:
            continue
        take, bucket = min(rows, key=lambda row: row[1].remaining)
        remaining = max(0, int(bucket.remaining))
        headers[f"x-ratelimit-limit-{label}"] = str(int(take.burst))
        headers[f"x-ratelimit-remaining-{label}"] = str(remaining)
        headers[f"x-ratelimit-reset-{label}"] = format_reset((take.burst - remaining) / take.rate_per_s)
    return headers


class BudgetExhausted(Exception):
    """No budget slot came free in time (503), or the shared state is down and the policy is fail closed."""


class EndpointBudget:
    """At most ``limit(endpoint)`` requests in flight per backend endpoint, counted across all replicas.

    A slot is a lease on ``endpoint:<name>`` held by one attempt (holder ``<replica>:<n>``, unique per attempt so
    hedged attempts count twice). ``acquire`` tries the endpoint the picker chose, then the pool's other
    endpoints; when every one is full it waits and tries again until ``wait_s`` or the request's deadline. The
    wait ends early when this replica releases a slot (an in-process event) and otherwise is a poll with jitter
    (5 ms growing to 50 ms, +-50%): every waiting request on every replica keeps getting its chance, so work queued
    on one replica is not starved by another's, and no pub/sub message is needed for the common case.
    """

    def __init__(self, leases: LeaseKeeper, replica: str, default: int | None, per_endpoint: Mapping[str, int],
                 wait_s: float, fail_open: bool, rng: random.Random | None = None) -> None:
        self._leases = leases
        self._replica = replica
        self.default = default
        self._per_endpoint = dict(per_endpoint)
        self.wait_s = wait_s
        self.fail_open = fail_open
        self._rng = rng if rng is not None else random.Random()
        self._ids = itertools.count()
        self._released = asyncio.Event()

    def limit(self, endpoint: str) -> int | None:
        """The endpoint's budget (None: unlimited)."""
        return self._per_endpoint.get(endpoint, self.default)

    async def acquire(self, first: str, others: Callable[[], Sequence[str]], claim: Callable[[str], bool],
                      deadline: float | None) -> tuple[str, str | None]:
        """A slot on ``first`` or else on one of ``others()`` (asked again each round) that ``claim`` accepts.

        Returns ``(endpoint, holder)``; holder None when no lease is held (unlimited endpoint, or Redis down and
        fail open). Give the slot back with ``release``. Raises ``BudgetExhausted``.
        """
        give_up = monotonic() + self.wait_s
        if deadline is not None:
            give_up = min(give_up, deadline)
        holder = f"{self._replica}:{next(self._ids)}"
        pause = 0.005
        while True:
            for name in (first, *(n for n in others() if n != first)):
                limit = self.limit(name)
                if limit is None:
                    if name == first or claim(name):
                        return name, None
                    continue
                try:
                    got = await self._leases.acquire(f"endpoint:{name}", holder, limit)
                except StateUnavailable:
                    if self.fail_open:
                        return first, None
                    raise BudgetExhausted(STATE_DOWN) from None
                except asyncio.CancelledError:
                    self._leases.release_soon(f"endpoint:{name}", holder)  # the script may have run
                    raise
                if got:
                    if name == first or claim(name):
                        return name, holder
                    self._leases.release_soon(f"endpoint:{name}", holder)
            now = monotonic()
            if now >= give_up:
                raise BudgetExhausted("budget_exhausted")
            released = self._released
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), min(give_up - now, pause * self._rng.uniform(0.5, 1.5)))
            pause = min(pause * 1.5, 0.05)

    def release(self, endpoint: str, holder: str) -> None:
        """Give the slot back (in the background: called from synchronous clean-up) and wake local waiters."""
        self._leases.release_soon(f"endpoint:{endpoint}", holder).add_done_callback(self._wake)

    def _wake(self, _: object) -> None:
        self._released.set()
        self._released = asyncio.Event()


class AbortBus:
    """Admin aborts across replicas: publish on ``abort``, the running replica cancels and acknowledges."""

    def __init__(self, state: SharedState, replica: str, find: Callable[[str], RequestContext | None]) -> None:
        self._state = state
        self.replica = replica
        self._find = find
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = 0  # channels listened to (2 once the state was reachable)

    async def start(self) -> None:
        """Listen on both channels; with the state down, keep subscribing in the background (never fails)."""
        for channel, handler in ((ABORT_CHANNEL, self._on_abort), (f"abort-ack:{self.replica}", self._on_ack)):
            sub = None
            with contextlib.suppress(StateUnavailable):  # subscribed before start returns when the state is up
                sub = await self._state.subscribe(channel)
            self._tasks.append(asyncio.create_task(self._subscribe_and_read(channel, sub, handler),
                                                   name=f"tokenyard-{channel}"))

    async def _subscribe_and_read(self, channel: str, sub: Subscription | None,
                                  handler: Callable[[dict[str, str]], object]) -> None:
        if sub is None:
            sub = await subscribe_when_up(self._state, channel, log, "cross-replica admin abort")
        self.subscribed += 1
        await self._read(sub, handler)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @staticmethod
    async def _read(sub: Subscription, handler: Callable[[dict[str, str]], object]) -> None:
        try:
            async for raw in sub:
                try:
                    message = msgspec.json.decode(raw, type=dict[str, str])
                except msgspec.DecodeError:
                    continue
                result = handler(message)
                if asyncio.iscoroutine(result):
                    await result
        finally:
            await sub.aclose()

    async def _on_abort(self, message: dict[str, str]) -> None:
        ctx = self._find(message.get("id", ""))
        if ctx is None or message.get("from") == self.replica:
            return
        aborted = ctx.cancel("admin", monotonic())
        reply = msgspec.json.encode({"id": ctx.request_id, "aborted": "1" if aborted else "0",
                                     "replica": self.replica})
        with contextlib.suppress(StateUnavailable):
            await self._state.publish(f"abort-ack:{message.get('from', '')}", reply)

    def _on_ack(self, message: dict[str, str]) -> None:
        waiter = self._waiting.get(message.get("id", ""))
        if waiter is not None and not waiter.done():
            waiter.set_result(message.get("aborted") == "1")

    async def abort(self, request_id: str, timeout_s: float = 0.5) -> bool | None:
        """Ask every replica; True/False from the one running it, None when none answered in time."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            await self._state.publish(ABORT_CHANNEL, msgspec.json.encode({"id": request_id,
                                                                          "from": self.replica}))
            return await asyncio.wait_for(waiter, timeout_s)
        except (TimeoutError, StateUnavailable):
            return None
        finally:
            self._waiting.pop(request_id, None)


class ScaleOut:
    """The shared state of one gateway and the cross-replica features built on it (see the module docstring)."""

    def __init__(self, config: GatewayConfig, traffic: TrafficControl,
                 find: Callable[[str], RequestContext | None]) -> None:
        self.config = config
        self.shared = config.state != "memory"
        self.state: SharedState = open_state(config.state)
        self.replica = os.urandom(6).hex()
        settings = config.scaleout
        self.leases = LeaseKeeper(self.state, settings.lease_ttl_ms / 1000)
        self.limiter: GlobalLimiter | None = None
        self.budget: EndpointBudget | None = None
        self.aborts: AbortBus | None = None
        if not self.shared:
            return
        limits = scope_limits(config)
        if limits:
            self.limiter = GlobalLimiter(self.state, limits, self.leases, settings.fail_open)
            # One limiter per request: the shared one. The replica-local one (traffic stage) passes all.
            traffic.limiter = RateLimiter()
        if settings.endpoint_budget is not None or settings.endpoint_budgets:
            self.budget = EndpointBudget(self.leases, self.replica, settings.endpoint_budget,
                                         settings.endpoint_budgets, settings.budget_wait_ms / 1000,
                                         settings.fail_open)
        self.aborts = AbortBus(self.state, self.replica, find)

    def holder(self, ctx: RequestContext) -> str:
        return f"{self.replica}:{ctx.request_id}"

    def key_limiter(self, name: str, limit: RateLimit) -> GlobalLimiter | None:
        """The limits of one key-store key (``key:NAME``) counted across replicas; None with ``state: memory``.

        Store keys are not in the config, so ``scope_limits`` cannot know them: their limits come with the
        request, and a limiter this small is built for each one (it holds no state of its own).
        """
        if not self.shared:
            return None
        return GlobalLimiter(self.state, {f"key:{name}": limit}, self.leases, self.config.scaleout.fail_open)

    async def start(self) -> None:
        if self.shared:
            self.leases.start()
        if self.aborts is not None:
            await self.aborts.start()

    async def close(self) -> None:
        if self.aborts is not None:
            await self.aborts.close()
        await self.leases.close()
        await self.state.aclose()
