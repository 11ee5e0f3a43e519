"""Endpoint health for one pool: active checks, passive outlier detection, circuit breakers, slow start.

The router asks :meth:`PoolHealth.view` for the state to hand to a picker, :meth:`PoolHealth.try_begin`
before sending (the circuit breaker's permit) and reports every attempt's end with :meth:`PoolHealth.report`.
:class:`ActiveHealthChecker` probes each endpoint on an interval through an injected probe function, so the
whole engine is testable without a network (:func:`http_probe` is the real probe).

An endpoint is routable when it is actively healthy, not ejected as an outlier, its breaker lets traffic
through, and an operator has not drained it (``drain``: the admin API). A drained endpoint is shown to pickers as
ejected and refused a permit, so no picker sends it new requests; those in flight finish. Whenever it becomes
routable again (health check passes after failing, ejection ends, breaker closes, undrain), slow start ramps its
weight from the floor back to 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp
import msgspec

from tokenyard.policy.circuit_breaker import BreakerConfig, BreakerState, CircuitBreaker
from tokenyard.policy.outlier import OutlierConfig, OutlierDetector
from tokenyard.policy.pickers.base import Picker
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures
from tokenyard.policy.slow_start import SlowStart

Probe = Callable[[str], Awaitable[bool]]


class Outcome(enum.Enum):
    """How one attempt on an endpoint ended, as far as the endpoint's health is concerned."""

    SUCCESS = "success"  # answered (2xx, or a 4xx that is the client's fault)
    FAILURE = "failure"  # 5xx, or broke off mid-answer
    CONNECT_ERROR = "connect_error"  # refused, reset before any answer, DNS
    TIMEOUT = "timeout"  # no answer within the attempt's timeout
    OVERLOADED = "overloaded"  # 429 from the upstream: retry elsewhere, but the endpoint is not broken
    CANCELLED = "cancelled"  # no verdict: client went away, hedge loser, deadline

    @classmethod
    def from_status(cls, status: int) -> Outcome:
        """The outcome of an attempt that got an HTTP status back."""
        if status == 429:
            return cls.OVERLOADED
        return cls.FAILURE if status >= 500 else cls.SUCCESS


FAILURES = frozenset({Outcome.FAILURE, Outcome.CONNECT_ERROR, Outcome.TIMEOUT})


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Active checks every 5 s (2 s timeout), down after 2 failed probes, up after 1 good one; plus the
    outlier, breaker and slow-start policies with their own defaults."""

    interval_s: float = 5.0
    timeout_s: float = 2.0
    unhealthy_threshold: int = 2
    healthy_threshold: int = 1
    outlier: OutlierConfig = field(default_factory=OutlierConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    slow_start: SlowStart = field(default_factory=SlowStart)


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint's health at a moment."""

    healthy: bool
    ejected: bool
    circuit: BreakerState
    slow_start: float
    drained: bool = False

    @property
    def routable(self) -> bool:
        return self.healthy and not self.ejected and not self.drained


@dataclass(slots=True)
class _Active:
    healthy: bool = True
    passes: int = 0
    fails: int = 0
    returned_at: float | None = None


class PoolHealth:
    """Health state of one pool's endpoints (by name). Not thread-safe; use from the event loop."""

    def __init__(
        self, names: Iterable[str], config: HealthConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or HealthConfig()
        self._clock = clock
        members = list(names)
        self._active = {name: _Active() for name in members}
        self._breakers = {name: CircuitBreaker(self.config.breaker) for name in members}
        self._outliers = OutlierDetector(members, self.config.outlier)
        # Endpoints that may not be in the clear (actively healthy, not ejected, breaker closed, full slow-start
        # weight). Every event that can take one out of the clear adds it; ``views`` drops it once it is back for
        # good, so a request computes health fields only for these, not for every endpoint of the pool.
        self._unsettled: set[str] = set()
        self._drained: set[str] = set()  # taken out by an operator: no new requests (kept unsettled meanwhile)

    @property
    def names(self) -> list[str]:
        return list(self._active)

    def status(self, name: str) -> EndpointStatus:
        """Health of ``name`` now; unknown names read as unhealthy."""
        now = self._clock()
        fields = self._fields(name, now)
        if fields is None:
            return EndpointStatus(False, True, BreakerState.OPEN, 0.0)
        healthy, ejected, factor = fields
        return EndpointStatus(healthy, ejected, self._breakers[name].state(now), factor, name in self._drained)

    def drain(self, name: str, drained: bool = True) -> bool:
        """Take ``name`` out of rotation for new requests (``drained``) or put it back; False for an unknown name.

        Requests already sent to it finish. Put back, it warms up through slow start like any endpoint that returns.
        """
        active = self._active.get(name)
        if active is None:
            return False
        if drained:
            self._drained.add(name)
        elif name in self._drained:
            self._drained.discard(name)
            active.returned_at = self._clock()
        self._unsettled.add(name)  # its view changes either way
        return True

    def drained(self, name: str) -> bool:
        return name in self._drained

    def _fields(self, name: str, now: float) -> tuple[bool, bool, float] | None:
        """(healthy, ejected, slow-start factor) of ``name`` at ``now``; None for an unknown name."""
        active = self._active.get(name)
        breaker = self._breakers.get(name)
        if active is None or breaker is None:
            return None
        ejected = self._outliers.is_ejected(name, now) or not breaker.available(now)
        outlier_return = self._outliers.returned_at(name, now)
        returned = active.returned_at
        if returned is None and outlier_return is None and breaker.closed_at is None:
            factor = 1.0  # never left: the slow start has nothing to ramp (SlowStart.factor(None, now))
        else:
            returns = [t for t in (returned, outlier_return, breaker.closed_at) if t is not None]
            factor = self.config.slow_start.factor(max(returns), now)
        return active.healthy, ejected, factor

    def view(self, endpoint: EndpointView) -> EndpointView:
        """``endpoint`` with its health fields filled in, ready for a picker (``endpoint`` itself when they
        already say so: the views are frozen, so an equal one need not be built)."""
        fields = self._fields(endpoint.name, self._clock())
        healthy, ejected, factor = fields if fields is not None else (False, True, 0.0)
        if endpoint.name in self._drained:
            ejected = True  # pickers leave ejected endpoints out: a drained one is the same for new requests
        if healthy is endpoint.healthy and ejected is endpoint.ejected and factor == endpoint.slow_start:
            return endpoint
        return msgspec.structs.replace(endpoint, healthy=healthy, ejected=ejected, slow_start=factor)

    def views(self, candidates: Iterable[EndpointView], as_listed: bool = False) -> list[EndpointView]:
        """``[self.view(c) for c in candidates]``, computing fields only for endpoints not in the clear.

        ``as_listed``: the candidates are this pool's members as their endpoints list them (health fields at their
        defaults), so with every endpoint in the clear they are returned as they are, without a look at each.
        """
        unsettled = self._unsettled
        if unsettled:
            self._settle(self._clock())
        elif as_listed:
            return list(candidates)
        known = self._active
        out = []
        for candidate in candidates:
            name = candidate.name
            if name in unsettled or name not in known:
                out.append(self.view(candidate))
            elif candidate.healthy and not candidate.ejected and candidate.slow_start == 1.0:
                out.append(candidate)
            else:
                out.append(msgspec.structs.replace(candidate, healthy=True, ejected=False, slow_start=1.0))
        return out

    def _settle(self, now: float) -> None:
        """Forget the endpoints back in the clear for good: nothing but a new event (a failed probe, a failed
        attempt, a latency ejection, all of which mark them again) can change their fields any more."""
        for name in list(self._unsettled):
            if (name not in self._drained and self._fields(name, now) == (True, False, 1.0)
                    and self._breakers[name].state(now) is BreakerState.CLOSED):
                self._unsettled.discard(name)

    def try_begin(self, name: str) -> bool:
        """Ask the endpoint's circuit breaker for a permit before sending; False: pick another endpoint (a drained
        one never gets a permit, whatever chose it)."""
        breaker = self._breakers.get(name)
        return breaker is not None and name not in self._drained and breaker.allow(self._clock())

    def report(self, name: str, outcome: Outcome, latency_s: float | None = None) -> None:
        """The end of an attempt that :meth:`try_begin` allowed. ``latency_s``: time to the first byte."""
        breaker = self._breakers.get(name)
        if breaker is None:
            return
        now = self._clock()
        if outcome in FAILURES:
            breaker.record_failure(now)
            self._outliers.record_failure(name, now)
            self._unsettled.add(name)  # its breaker may have opened, or the detector ejected it
        elif outcome is Outcome.SUCCESS:
            # A half-open breaker that closes here belongs to an endpoint already unsettled (it was not closed).
            breaker.record_success(now)
            if self._outliers.record_success(name, now, latency_s):
                self._unsettled.add(name)  # ejected for its latency
        else:
            # Overloaded or cancelled: no verdict on the endpoint's health, only the probe slot is freed.
            breaker.record_cancelled()

    def record_probe(self, name: str, ok: bool) -> None:
        """The result of one active health check."""
        active = self._active.get(name)
        if active is None:
            return
        if ok:
            active.passes += 1
            active.fails = 0
            if not active.healthy and active.passes >= self.config.healthy_threshold:
                active.healthy = True
                active.returned_at = self._clock()  # unsettled since its first failed probe: stays so
        else:
            self._unsettled.add(name)
            active.fails += 1
            active.passes = 0
            if active.healthy and active.fails >= self.config.unhealthy_threshold:
                active.healthy = False

    def any_routable(self) -> bool:
        """Whether some endpoint can take traffic now (for ``/readyz``)."""
        return any(self.status(name).routable for name in self._active)


def pick_with_permit(
    picker: Picker, health: PoolHealth, candidates: Iterable[EndpointView], request: RequestFeatures,
    as_listed: bool = False,
) -> EndpointView | None:
    """Fill in health, let ``picker`` choose, and take the chosen endpoint's circuit-breaker permit.

    An endpoint whose breaker refuses (a half-open probe slot taken since the view was made) is dropped and the
    picker asked again. The returned endpoint holds a permit: report its attempt with :meth:`PoolHealth.report`.
    ``as_listed`` as in :meth:`PoolHealth.views`.
    """
    remaining = health.views(candidates, as_listed)
    while True:
        chosen = picker.pick(remaining, request)
        if chosen is None or health.try_begin(chosen.name):
            return chosen
        remaining = [c for c in remaining if c.name != chosen.name]


async def http_probe(session: aiohttp.ClientSession, url: str, timeout_s: float) -> bool:
    """GET ``url``; healthy when it answers 2xx within ``timeout_s``."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            await response.read()
            return 200 <= response.status < 300
    except (aiohttp.ClientError, TimeoutError):
        return False


def health_url(endpoint_url: str, path: str = "/health") -> str:
    """``http://h:p/v1`` -> ``http://h:p/health`` (vLLM and the simulator serve ``/health`` at the root)."""
    base = endpoint_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + path


class ActiveHealthChecker:
    """Probes every target each ``interval_s`` (concurrently) and feeds the results to a :class:`PoolHealth`.

    ``targets`` maps endpoint name -> what the probe receives (a health URL for :func:`http_probe`).
    """

    def __init__(self, health: PoolHealth, targets: Mapping[str, str], probe: Probe) -> None:
        self._health = health
        self._targets = dict(targets)
        self._probe = probe
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    async def check_once(self) -> None:
        """Probe every target once and record the results."""
        names = list(self._targets)
        results = await asyncio.gather(*(self._probe(self._targets[n]) for n in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            self._health.record_probe(name, result is True)
        self.rounds += 1

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._health.config.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="active-health-checks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> ActiveHealthChecker:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
