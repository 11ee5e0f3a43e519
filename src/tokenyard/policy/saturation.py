"""Backend saturation: how full an endpoint (and a pool) is, from scraped load and the gateway's own counts.

Per endpoint (after GIE's utilization detector): ``s = max(waiting / waiting_threshold, kv / kv_threshold)``
from the model server's scraped ``vllm:num_requests_waiting`` and ``vllm:kv_cache_usage_perc``. ``s >= 1``
means saturated. A scrape that is missing or older than ``stale_after_s`` counts as ``1.0`` (fail closed: we
would rather shed batch than pile requests onto a server we cannot see).

The scrape lags; the gateway's own in-flight requests and tokens per endpoint are instant (but blind to KV
and to traffic from other gateways). When a capacity for them is configured they give
``max(inflight_requests / request_capacity, inflight_tokens / token_capacity)``; the endpoint value is the
max of both signals, so either a slow scrape or a burst the scrape has not seen yet raises it.

The pool value is the mean over its endpoints; a pool with no endpoints gives ``empty_pool_value``
(1.0 by default: fail closed, so sheddable traffic is shed while nothing can serve it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SaturationSettings:
    waiting_threshold: float = 5.0
    kv_threshold: float = 0.8
    stale_after_s: float = 2.0
    stale_value: float = 1.0
    empty_pool_value: float = 1.0


class LoadSample(Protocol):
    """Anything with the scraped fields (``ScrapedLoad`` here, ``upstream.scrape``'s ``BackendLoad``)."""

    @property
    def waiting(self) -> float: ...

    @property
    def kv_usage(self) -> float: ...

    @property
    def scraped_at(self) -> float | None: ...


@dataclass(frozen=True)
class ScrapedLoad:
    """What the model server last reported; ``scraped_at`` on the same clock as ``now`` (None = never)."""

    waiting: float
    kv_usage: float
    scraped_at: float | None


class SustainedQueue:
    """The scraped queue that counts as saturation: ``min(waiting)`` of an endpoint's last two samples.

    A scrape is a point sample, and a model server lists requests that arrived since its last engine step as
    waiting until the next step schedules them (vLLM does; so does the simulator). A burst that has just
    arrived therefore reads as a queue of its size even when every one of them is about to run, and the
    sheddable tier, shed with probability 1 above saturation ~0.32, was refused for a whole scrape interval
    after every such sample while the backend sat idle. A real queue persists from one scrape to the next; a
    burst in transit does not. Kept per endpoint; ``kv_usage`` (a level, not an arrival count) passes as is.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[LoadSample | None, LoadSample, ScrapedLoad]] = {}

    def sample(self, endpoint: str, latest: LoadSample) -> ScrapedLoad:
        """The saturation input for ``endpoint`` given its newest scraped sample."""
        seen = self._seen.get(endpoint)
        if seen is not None and seen[1] is latest:
            return seen[2]  # the same scrape as last time: computed once per scrape, not per request
        previous = seen[1] if seen is not None else None
        waiting = latest.waiting if previous is None else min(latest.waiting, previous.waiting)
        derived = ScrapedLoad(waiting, latest.kv_usage, latest.scraped_at)
        self._seen[endpoint] = (previous, latest, derived)
        return derived


@dataclass(frozen=True)
class InstantLoad:
    """The gateway's own view of one endpoint; capacities of None disable that part of the signal."""

    inflight_requests: int = 0
    inflight_tokens: int = 0
    request_capacity: int | None = None
    token_capacity: int | None = None

    def value(self) -> float:
        parts = [0.0]
        if self.request_capacity:
            parts.append(self.inflight_requests / self.request_capacity)
        if self.token_capacity:
            parts.append(self.inflight_tokens / self.token_capacity)
        return max(parts)


def scraped_saturation(load: LoadSample | None, now: float, settings: SaturationSettings) -> float:
    """``max(waiting / 5, kv / 0.8)``, or the stale value when missing or too old."""
    if load is None or load.scraped_at is None or now - load.scraped_at > settings.stale_after_s:
        return settings.stale_value
    return max(load.waiting / settings.waiting_threshold, load.kv_usage / settings.kv_threshold)


def endpoint_saturation(
    load: LoadSample | None,
    now: float,
    settings: SaturationSettings,
    instant: InstantLoad | None = None,
) -> float:
    """The endpoint's saturation: max of the scraped and the instant signal."""
    scraped = scraped_saturation(load, now, settings)
    return max(scraped, instant.value()) if instant is not None else scraped


def pool_saturation(values: Iterable[float], settings: SaturationSettings) -> float:
    """Mean endpoint saturation; ``empty_pool_value`` for a pool without endpoints."""
    items = list(values)
    if not items:
        return settings.empty_pool_value
    return sum(items) / len(items)
