"""The plain data a picker sees: one endpoint's state, the backend's scraped load and the request's features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec


@dataclass(frozen=True, slots=True)
class BackendLoad:
    """Load a model server reports on its ``/metrics`` page (vLLM names), as of ``scraped_at`` (monotonic s).

    ``prefix_cache_hits``/``prefix_cache_queries`` are the cumulative counters (tokens), None when not exported.
    """

    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    prefix_cache_hits: float | None = None
    prefix_cache_queries: float | None = None
    scraped_at: float = 0.0

    def age(self, now: float) -> float:
        """Seconds since this sample was taken."""
        return max(0.0, now - self.scraped_at)


class EndpointView(msgspec.Struct, frozen=True):
    """One endpoint as the router sees it at the moment of a decision.

    ``weight`` is the configured weight (0: configured but sent nothing new); ``slow_start`` in (0, 1] scales it
    while an endpoint that came back warms up. ``healthy`` is the active health verdict, ``ejected`` the passive
    (outlier) one; an endpoint whose circuit is open should be left out by the router or marked ``ejected``.
    """

    name: str
    url: str = ""
    weight: float = 1.0
    zone: str | None = None
    inflight_requests: int = 0
    inflight_tokens: int = 0
    load: BackendLoad | None = None
    healthy: bool = True
    ejected: bool = False
    slow_start: float = 1.0

    @property
    def effective_weight(self) -> float:
        """Configured weight scaled by the slow-start factor."""
        return self.weight * self.slow_start

    @property
    def available(self) -> bool:
        """Whether new traffic may go here at all."""
        return self.healthy and not self.ejected and self.weight > 0


class RequestFeatures(msgspec.Struct, frozen=True):
    """What routing may know about a request, extracted once by the front (gateway or pipeline).

    ``prompt_prefix`` is the leading text of the prompt (system + first messages, rendered in order); the
    prefix-affinity picker hashes only its first blocks. ``prompt_tokens`` is an estimate. ``zone`` is the
    client's zone for the locality picker. ``headers`` holds the request headers with lower-case names.
    """

    model: str = ""
    prompt_prefix: str = ""
    prompt_tokens: int = 0
    max_tokens: int | None = None
    has_images: bool = False
    has_tools: bool = False
    tenant: str | None = None
    traffic_class: str | None = None
    zone: str | None = None
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        return self.headers.get(name.lower())
