"""``TrafficControl``: the rate limiter, the degradation ladder and the admission controller of one gateway,
built from its config, fed by a load scraper and one small background loop.

The gateway holds one (``Gateway.traffic``); its stages (``gateway/stages/ratelimit|degrade|admission``) call
the engines, the forward terminal feeds leases back. The background loop, every scrape interval, passes the
scraped KV usage to the adaptive limits and the pools' saturation to the ladder. Metrics are bound here once:
queue depth and the ladder level are read at scrape time (``set_function``), queue waits from admission events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import aiohttp

from tokenyard.config import GatewayConfig
from tokenyard.config.admission import AdmissionConfig, DegradationConfig
from tokenyard.policy.adaptive_limit import AdaptiveLimitSettings
from tokenyard.policy.degradation import DegradationSettings
from tokenyard.policy.pickers.endpoint import BackendLoad
from tokenyard.policy.saturation import LoadSample, SaturationSettings, ScrapedLoad, SustainedQueue
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.traffic.admission import AdmissionController, AdmissionSettings
from tokenyard.traffic.admission_setup import rate_limiter_for, shed_tiers
from tokenyard.traffic.admission_types import DISPATCHED, EXPIRED, AdmissionEvent
from tokenyard.traffic.degrade import DegradeEngine
from tokenyard.traffic.saturation_signal import SaturationSignal
from tokenyard.upstream.scrape import LoadScraper, ScrapeConfig, metrics_url

log = logging.getLogger("tokenyard.traffic")


def admission_settings(config: AdmissionConfig) -> AdmissionSettings:
    limits = AdaptiveLimitSettings(initial_limit=float(config.initial_limit), min_limit=float(config.min_limit),
                                   max_limit=float(config.max_limit))
    return AdmissionSettings(limits=limits, queue_caps=dict(config.queue_caps),
                             default_queue_cap=config.default_queue_cap, critical_reserve=config.critical_reserve)


def degradation_settings(config: DegradationConfig) -> DegradationSettings:
    return DegradationSettings(
        enabled_actions=frozenset(config.actions),
        classes=frozenset(config.classes) if config.classes is not None else None,
        class_offsets=dict(config.class_offsets),
        up_threshold=config.up_threshold,
        down_threshold=config.down_threshold,
        up_dwell_s=config.up_dwell_ms / 1000,
        down_dwell_s=config.down_dwell_ms / 1000,
        queue_wait_target_s=config.queue_wait_target_ms / 1000,
        saturation_target=config.saturation_target,
        top_k_cap=config.top_k_cap,
        max_tools=config.max_tools,
        concise_max_tokens=dict(config.concise_max_tokens),
        default_concise_max_tokens=config.default_concise_max_tokens,
        concise_instruction=config.concise_instruction,
    )


class TrafficControl:
    """The traffic engines of one gateway. ``pools`` maps pool name -> its endpoints as (name, API base URL).

    ``admission`` is None when ``admission.enabled`` is false (requests go straight to the router: FIFO at the
    model servers); ``degrade`` is None when ``degradation.enabled`` is false.
    """

    def __init__(self, config: GatewayConfig, pools: Mapping[str, list[tuple[str, str]]],
                 metrics: GatewayMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._metrics = metrics
        self._clock = clock
        self.tiers = shed_tiers(config.classes)
        self._interactive = {name for name, c in config.classes.items() if c.ttft_slo_ms is not None}
        self.limiter = rate_limiter_for(config, clock)
        self.degrade: DegradeEngine | None = None
        if config.degradation.enabled:
            slos = {name: c.ttft_slo_ms / 1000 for name, c in config.classes.items() if c.ttft_slo_ms is not None}
            engine = self.degrade = DegradeEngine(degradation_settings(config.degradation), ttft_slo_s=slos,
                                                  window_s=config.degradation.window_ms / 1000, clock=clock)
            metrics.degradation_level.set_function(lambda: float(engine.level))
        adm = config.admission
        self._targets = {name: metrics_url(url) for endpoints in pools.values() for name, url in endpoints}
        self.signal = SaturationSignal(
            {pool: [name for name, _ in endpoints] for pool, endpoints in pools.items()},
            self._load,
            request_capacity=adm.endpoint_request_capacity,
            token_capacity=adm.endpoint_token_capacity,
            settings=SaturationSettings(stale_after_s=adm.stale_after_ms / 1000),
            clock=clock,
            generation=self._samples_generation,
        )
        self.admission: AdmissionController | None = None
        if adm.enabled:
            self.admission = AdmissionController(admission_settings(adm), saturation=self.signal, clock=clock,
                                                 on_event=self._on_event)
            self.signal.inflight = self.admission.endpoint_inflight
            for pool, endpoints in pools.items():
                self.admission.set_endpoints(pool, [name for name, _ in endpoints])
            for klass in config.classes:
                metrics.queue_depth.labels(klass).set_function(self._depth_reader(self.admission, klass))
        self._queue_wait = {klass: metrics.queue_wait.labels(klass) for klass in config.classes}
        self._scraper: LoadScraper | None = None
        self._sustained = SustainedQueue()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _depth_reader(controller: AdmissionController, klass: str) -> Callable[[], float]:
        return lambda: float(controller.depth(klass))

    def _samples_generation(self) -> int:
        """Moves whenever a new sample is stored, so the saturation signal may keep a pool's value until then
        (``SaturationSignal``); starting or stopping the scraper clears what it kept."""
        scraper = self._scraper
        return -1 if scraper is None else scraper.generation

    def scraped_load(self, endpoint: str) -> BackendLoad | None:
        """The endpoint's newest scraped sample, whatever its age (None: scraping off or never answered)."""
        return self._scraper.latest(endpoint) if self._scraper is not None else None

    def _load(self, endpoint: str) -> LoadSample | None:
        """The endpoint's scraped load. An endpoint never scraped successfully (no vLLM ``/metrics``, or
        scraping off) has no scraped signal: a fresh zero, so only the instant signal counts for it (fail open).
        One that answered before and then went quiet turns stale and counts as saturated (fail closed)."""
        sample = self._scraper.latest(endpoint) if self._scraper is not None else None
        if sample is None:
            return ScrapedLoad(0.0, 0.0, self._clock())
        return self._sustained.sample(endpoint, sample)  # a burst in transit is not a queue (SustainedQueue)

    def _on_event(self, event: AdmissionEvent) -> None:
        if event.kind == DISPATCHED or event.queue_wait_s > 0:
            child = self._queue_wait.get(event.klass)
            if child is None:
                child = self._queue_wait[event.klass] = self._metrics.queue_wait.labels(event.klass)
            child.observe(event.queue_wait_s)
        if self.degrade is not None and event.kind in (DISPATCHED, EXPIRED) and event.klass in self._interactive:
            # Only classes with a latency objective: a deferred class (batch) waiting is by design, not pressure.
            # A request that waited until its queue TTL or deadline ran out waited at least that long: left out,
            # the worse the overload (everything queued expiring), the lower the pressure the ladder saw.
            self.degrade.observe_queue_wait(event.klass, event.queue_wait_s)

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start scraping (when admission or degradation needs the signal) and the feedback loop."""
        adm = self.config.admission
        if self.admission is None and self.degrade is None:
            return
        if adm.scrape and self._targets:
            config = ScrapeConfig(interval_s=adm.scrape_interval_ms / 1000, stale_after_s=adm.stale_after_ms / 1000)
            self._scraper = LoadScraper(session, self._targets, config, self._clock)
            self._scraper.start()
            self.signal.forget()  # its samples replace the fresh zeros of the endpoints never scraped
        self._task = asyncio.create_task(self._feedback_forever(adm.scrape_interval_ms / 1000),
                                         name="tokenyard-traffic-feedback")

    async def close(self) -> None:
        """Stop the loops; queued requests get 503 ``shutting_down``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._scraper is not None:
            await self._scraper.stop()
            self._scraper = None
            self.signal.forget()
        if self.admission is not None:
            await self.admission.close()

    def feedback(self) -> None:
        """One round: KV usage and server queues to the adaptive limits, the worst pool saturation to the ladder."""
        worst = 0.0
        for pool, names in self.signal.endpoints.items():
            if self.admission is not None and self._scraper is not None:
                for name in names:
                    sample = self._scraper.fresh(name)
                    if sample is not None:
                        self.admission.observe_kv(pool, name, sample.kv_usage)
                        self.admission.observe_queue(pool, name, sample.running, sample.waiting, sample.scraped_at)
            if names:
                worst = max(worst, self.signal(pool))
        if self.degrade is not None:
            self.degrade.observe_saturation(worst)
            self.degrade.current_level("")  # re-evaluate even when no request arrives

    async def _feedback_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.feedback()
                if self.admission is not None:
                    self.admission.signal_refreshed()  # refused callers waiting to retry: the signal moved
            except Exception:  # a bug here must not stop the loop that keeps the signals fresh
                log.exception("traffic feedback failed")
