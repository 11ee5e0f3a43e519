"""Backend load from a model server's Prometheus ``/metrics`` page (vLLM names), and a scraper task per endpoint.

The parser reads the Prometheus text exposition format tolerantly: comments and HELP/TYPE lines, labels with
escaped quotes and commas, optional timestamps, NaN/Inf values and unknown metrics are all fine; a missing
metric reads as 0 (or None for the prefix-cache counters). Several series of one metric (labels per model or
per data-parallel engine) are summed, except KV-cache usage, which takes the highest (the fullest engine is the
one that will queue first).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from tokenyard.policy.pickers.endpoint import BackendLoad

__all__ = ["BackendLoad", "LoadScraper", "ScrapeConfig", "metrics_url", "parse_backend_load", "parse_samples"]

RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
# vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc (v0.10); read either.
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits_total")
PREFIX_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries_total")
_READ = frozenset(RUNNING + WAITING + KV_USAGE + PREFIX_HITS + PREFIX_QUERIES)


def _metric_name(line: str) -> tuple[str, str]:
    """Split a sample line into its metric name and the rest (labels and value)."""
    for index, char in enumerate(line):
        if char in "{ \t":
            return line[:index], line[index:]
    return line, ""


def _skip_labels(rest: str) -> str | None:
    """The text after a ``{...}`` label set (quotes and escapes honoured); None when unterminated."""
    if not rest.startswith("{"):
        return rest
    in_quotes = False
    escaped = False
    for index, char in enumerate(rest):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "}" and not in_quotes:
            return rest[index + 1 :]
    return None


def _wanted_lines(text: str, names: frozenset[str]) -> list[str]:
    """The sample lines of ``names``, found by substring search (C speed) instead of walking every line."""
    found: dict[int, str] = {}  # by line start: one name can be the prefix of another (``x`` and ``x_total``)
    for name in names:
        start = text.find(name)
        while start != -1:
            end = text.find("\n", start)
            if end == -1:
                end = len(text)
            line_start = text.rfind("\n", 0, start) + 1
            if not text[line_start:start].strip():  # the name begins the line (a comment or label does not)
                found[line_start] = text[line_start:end]
            start = text.find(name, end)
    return [found[at] for at in sorted(found)]


def parse_samples(text: str, only: frozenset[str] | None = None) -> dict[str, list[float]]:
    """Every sample value per metric name (labels dropped); malformed lines are skipped, never raised.

    ``only``: read just these metric names. A vLLM page has a thousand lines of histograms the gateway never
    uses; finding the wanted lines by substring search before any per-character work makes parsing a realistic
    page (~1,000 lines) about 100x cheaper, and a scrape runs on the event loop every request shares.
    """
    samples: dict[str, list[float]] = {}
    lines = text.splitlines() if only is None else _wanted_lines(text, only)
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, rest = _metric_name(line)
        if only is not None and name not in only:
            continue
        after = _skip_labels(rest)
        if not name or after is None:
            continue
        fields = after.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        samples.setdefault(name, []).append(value)
    return samples


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _first(samples: Mapping[str, list[float]], names: tuple[str, ...]) -> list[float] | None:
    for name in names:
        if name in samples:
            return _finite(samples[name])
    return None


def parse_backend_load(text: str, scraped_at: float) -> BackendLoad:
    """The load figures routing uses, from one ``/metrics`` page."""
    samples = parse_samples(text, _READ)
    running = _first(samples, RUNNING) or []
    waiting = _first(samples, WAITING) or []
    kv = _first(samples, KV_USAGE) or []
    hits = _first(samples, PREFIX_HITS)
    queries = _first(samples, PREFIX_QUERIES)
    return BackendLoad(
        running=sum(running),
        waiting=sum(waiting),
        kv_usage=min(1.0, max(kv)) if kv else 0.0,
        prefix_cache_hits=sum(hits) if hits else None,
        prefix_cache_queries=sum(queries) if queries else None,
        scraped_at=scraped_at,
    )


def metrics_url(endpoint_url: str) -> str:
    """``http://h:p/v1`` (an endpoint's API base) -> ``http://h:p/metrics``, where vLLM serves its metrics."""
    base = endpoint_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + "/metrics"


@dataclass(frozen=True, slots=True)
class ScrapeConfig:
    """Defaults: scrape every 0.5 s with a 1 s timeout; a sample older than 2 s is stale."""

    interval_s: float = 0.5
    timeout_s: float = 1.0
    stale_after_s: float = 2.0


class LoadScraper:
    """One task per endpoint scrapes its ``/metrics`` and keeps the latest :class:`BackendLoad`.

    ``targets`` maps endpoint name -> metrics URL. A failed scrape keeps the previous sample (which then goes
    stale by its timestamp) and counts in :attr:`failures`. Use ``async with`` or :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        targets: Mapping[str, str],
        config: ScrapeConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._targets = dict(targets)
        self.config = config or ScrapeConfig()
        self._clock = clock
        self._latest: dict[str, BackendLoad] = {}
        # Counts stored samples: a reader that derives something from all samples (a pool's saturation, read on
        # every request) recomputes only when it moved.
        self.generation = 0
        self.failures: dict[str, int] = dict.fromkeys(self._targets, 0)
        self._tasks: list[asyncio.Task[None]] = []

    def latest(self, name: str) -> BackendLoad | None:
        """The newest sample for ``name`` whatever its age (None before the first successful scrape)."""
        return self._latest.get(name)

    def fresh(self, name: str) -> BackendLoad | None:
        """The newest sample if it is younger than ``stale_after_s``, else None."""
        load = self._latest.get(name)
        if load is None or load.age(self._clock()) > self.config.stale_after_s:
            return None
        return load

    async def scrape_once(self, name: str) -> BackendLoad | None:
        """Scrape one endpoint now; returns the new sample or None on failure."""
        url = self._targets[name]
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
            async with self._session.get(url, timeout=timeout) as response:
                if response.status != 200:
                    raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            self.failures[name] = self.failures.get(name, 0) + 1
            return None
        load = parse_backend_load(text, self._clock())
        self._latest[name] = load
        self.generation += 1
        return load

    async def _loop(self, name: str) -> None:
        while True:
            await self.scrape_once(name)
            await asyncio.sleep(self.config.interval_s)

    def start(self) -> None:
        """Start one scrape loop per target (idempotent)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(name), name=f"scrape:{name}") for name in self._targets]

    async def stop(self) -> None:
        """Cancel the loops and wait for them to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> LoadScraper:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
