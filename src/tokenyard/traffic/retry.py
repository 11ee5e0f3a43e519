"""Retries, failover and hedging for one request, under a retry budget shared by all requests.

Rules, in order (the first that applies decides):
1. Never retry once any byte of the response went to the client (``sent_to_client``): the client would see
   a duplicate or a splice. Streams are therefore retried only before their first byte.
2. Never retry a cancelled attempt (client gone, deadline) or an answer that is the client's fault (4xx other
   than 429) or a status outside ``retry_on_status``.
3. At most ``max_attempts`` attempts in all; at most ``per_pool_attempts`` in one pool before failing over to the
   next pool of the fallback chain (``models.<name>.fallback``; off when the class's policy says so).
4. A retry needs a slot in the :class:`~tokenyard.policy.retry_budget.RetryBudget`, so a failing fleet sees at
   most ``ratio`` x active requests of extra load.
5. The delay before a retry in the same pool is jittered exponential backoff; failing over waits nothing
   (different backends) and a delay longer than the remaining deadline means no retry.

:func:`hedge` runs a second attempt after a delay and cancels (and awaits) the loser, so it is aborted upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tokenyard.policy.backoff import Backoff
from tokenyard.policy.retry_budget import RetryBudget
from tokenyard.traffic.health import Outcome

T = TypeVar("T")

DEFAULT_RETRY_ON = frozenset({429, 500, 502, 503, 504})
_NOTHING_TRIED: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per traffic class. Defaults: 3 attempts, 2 per pool, fail over along the fallback chain, no hedging."""

    max_attempts: int = 3
    per_pool_attempts: int = 2
    retry_on_status: frozenset[int] = DEFAULT_RETRY_ON
    failover: bool = True
    backoff: Backoff = field(default_factory=Backoff)
    hedge_delay_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.per_pool_attempts < 1:
            raise ValueError("max_attempts and per_pool_attempts must be at least 1")


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """Why an attempt failed. ``status`` when an HTTP status came back; ``sent_to_client`` once any byte of
    the response was written downstream."""

    outcome: Outcome
    status: int | None = None
    sent_to_client: bool = False


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to try again, in which pool and after how long; ``reason`` says why (for logs and tests)."""

    retry: bool
    reason: str
    pool: str | None = None
    delay_s: float = 0.0


class RequestRetries:
    """The retry state of one request; made by :meth:`RetryEngine.begin`, closed by :meth:`finish`."""

    def __init__(
        self, pools: Sequence[str], policy: RetryPolicy, budget: RetryBudget, rng: random.Random
    ) -> None:
        if not pools:
            raise ValueError("a request needs at least one pool")
        self.policy = policy
        self._pools = tuple(pools) if policy.failover else tuple(pools[:1])
        self._index = 0
        self._budget = budget
        self._rng = rng
        self._held = 0
        self._finished = False
        self.attempts = 0
        self._pool_attempts = 0
        self._tried: dict[str, set[str]] = {}
        budget.request_started()

    @property
    def pool(self) -> str:
        """The pool the next attempt goes to."""
        return self._pools[self._index]

    def tried(self, pool: str | None = None) -> frozenset[str]:
        """Endpoint names already tried in ``pool`` (default: the current one): exclude them when picking."""
        tried = self._tried.get(pool or self.pool)
        return frozenset(tried) if tried else _NOTHING_TRIED

    def attempt_started(self, endpoint: str) -> None:
        """An attempt on ``endpoint`` of the current pool is about to be sent."""
        self.attempts += 1
        self._pool_attempts += 1
        self._tried.setdefault(self.pool, set()).add(endpoint)

    def fail_over(self) -> str | None:
        """The current pool has no endpoint left to try: move to the next pool (None when there is none).

        Nothing was sent, so this takes no retry budget.
        """
        if self._index + 1 >= len(self._pools):
            return None
        self._index += 1
        self._pool_attempts = 0
        return self.pool

    def on_failure(self, failure: AttemptFailure, remaining_s: float | None = None) -> RetryDecision:
        """Decide about the attempt that just failed; ``remaining_s`` is the request's remaining deadline."""
        policy = self.policy
        # The previous retry (if any) is over: give its budget slot back before asking for a new one.
        self._release()
        if failure.sent_to_client:
            return RetryDecision(False, "response already started")
        if failure.outcome is Outcome.CANCELLED:
            return RetryDecision(False, "cancelled")
        if failure.outcome is Outcome.SUCCESS:
            return RetryDecision(False, "not a failure")
        if failure.status is not None and failure.status not in policy.retry_on_status:
            return RetryDecision(False, f"status {failure.status} is not retried")
        if self.attempts >= policy.max_attempts:
            return RetryDecision(False, "attempts exhausted")
        failing_over = self._pool_attempts >= policy.per_pool_attempts
        if failing_over and self._index + 1 >= len(self._pools):
            return RetryDecision(False, "pools exhausted")
        delay = 0.0 if failing_over else policy.backoff.delay(self.attempts, self._rng)
        if remaining_s is not None and delay >= remaining_s:
            return RetryDecision(False, "deadline")
        if not self._budget.try_acquire():
            return RetryDecision(False, "retry budget exhausted")
        self._held += 1
        if failing_over:
            self.fail_over()
        return RetryDecision(True, "fail over" if failing_over else "retry", self.pool, delay)

    def try_hedge(self) -> bool:
        """Take a budget slot for a hedged attempt (True) or refuse (False); released by :meth:`finish`."""
        if self._finished or not self._budget.try_acquire():
            return False
        self._held += 1
        return True

    def _release(self) -> None:
        while self._held:
            self._budget.release()
            self._held -= 1

    def finish(self) -> None:
        """The request is over: give back its budget slots (idempotent)."""
        if not self._finished:
            self._finished = True
            self._release()
            self._budget.request_finished()

    def __enter__(self) -> RequestRetries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()


class RetryEngine:
    """Holds the retry budget shared by every request of one gateway (or one upstream cluster)."""

    def __init__(self, budget: RetryBudget | None = None, rng: random.Random | None = None) -> None:
        self.budget = budget or RetryBudget()
        self._rng = rng or random.Random()

    def begin(self, pools: Sequence[str], policy: RetryPolicy | None = None) -> RequestRetries:
        """Retry state for a new request routed to ``pools[0]`` with ``pools[1:]`` as its fallback chain."""
        return RequestRetries(pools, policy or RetryPolicy(), self.budget, self._rng)


class AttemptError(Exception):
    """Raised by a ``send`` function given to :func:`run_with_retries`: the attempt failed like this."""

    def __init__(self, failure: AttemptFailure, message: str = "") -> None:
        super().__init__(message or f"attempt failed: {failure.outcome.value} {failure.status or ''}".strip())
        self.failure = failure


class NoEndpointAvailable(Exception):
    """No pool of the chain had an endpoint to try (answer 503: nothing was sent)."""


E = TypeVar("E")


async def run_with_retries(
    retries: RequestRetries,
    choose: Callable[[str, frozenset[str]], E | None],
    send: Callable[[str, E], Awaitable[T]],
    name_of: Callable[[E], str],
    *,
    remaining_s: Callable[[], float | None] = lambda: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Drive one request through attempts, retries and failover; returns the first successful ``send``.

    ``choose(pool, tried)`` returns an endpoint of ``pool`` not in ``tried`` (e.g. via
    :func:`tokenyard.traffic.health.pick_with_permit`) or None when the pool has none left, which fails over to
    the next pool without taking budget. ``send(pool, endpoint)`` returns the result or raises
    :class:`AttemptError` (after reporting the outcome to the pool's health). When no retry is allowed the last
    :class:`AttemptError` propagates; when no pool had any endpoint, :class:`NoEndpointAvailable`.
    """
    last: AttemptError | None = None
    while True:
        endpoint = choose(retries.pool, retries.tried())
        if endpoint is None:
            if retries.fail_over() is None:
                if last is not None:
                    raise last
                raise NoEndpointAvailable(f"no endpoint available in {retries.pool!r} or its fallbacks")
            continue
        retries.attempt_started(name_of(endpoint))
        try:
            return await send(retries.pool, endpoint)
        except AttemptError as error:
            last = error
            decision = retries.on_failure(error.failure, remaining_s())
            if not decision.retry:
                raise
            if decision.delay_s > 0:
                await sleep(decision.delay_s)


async def _cancel_all(tasks: Sequence[asyncio.Task[T]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        # Await each so its upstream connection is really closed before we return (no zombie generation).
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def hedge(
    attempt: Callable[[int], Awaitable[T]],
    delay_s: float,
    *,
    max_attempts: int = 2,
    allow: Callable[[], bool] = lambda: True,
    on_loser: Callable[[int], None] | None = None,
) -> T:
    """Run ``attempt(0)``; if it has not finished after ``delay_s``, also ``attempt(1)`` (up to ``max_attempts``).

    The first attempt to *return* wins; every other one is cancelled and awaited (``on_loser(index)`` is called
    for each, e.g. to count ``tokenyard_upstream_aborts_total{reason="hedge_loser"}``). An attempt that raises
    does not win: the others go on, and the next one (if any is left) starts at once if ``allow()``.
    For streams, make ``attempt`` return once the upstream's first byte is in, before anything reaches the
    client. ``allow`` is asked before every extra attempt (pass :meth:`RequestRetries.try_hedge`). If every
    attempt fails, the last error is raised; if ``hedge`` itself is cancelled, all attempts are cancelled.
    """
    tasks: list[asyncio.Task[T]] = [asyncio.ensure_future(attempt(0))]
    last_error: BaseException | None = None
    try:
        while True:
            running = [t for t in tasks if not t.done()]
            can_add = len(tasks) < max_attempts
            timeout = delay_s if running and can_add else None
            if running:
                await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for index, task in enumerate(tasks):
                if task.done() and not task.cancelled() and task.exception() is None:
                    losers = [(i, t) for i, t in enumerate(tasks) if i != index and not t.done()]
                    await _cancel_all([t for _, t in losers])
                    for loser_index, _ in losers:
                        if on_loser is not None:
                            on_loser(loser_index)
                    return task.result()
                if task.done() and not task.cancelled():
                    last_error = task.exception()
            still_running = [t for t in tasks if not t.done()]
            if len(tasks) < max_attempts and allow():
                tasks.append(asyncio.ensure_future(attempt(len(tasks))))
            elif not still_running:
                raise last_error if last_error is not None else asyncio.CancelledError()
    except BaseException:
        await _cancel_all([t for t in tasks if not t.done()])
        raise
