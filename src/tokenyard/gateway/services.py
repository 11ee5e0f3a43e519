"""``Gateway``: the long-lived parts of one gateway instance, built once from config and shared by the stages."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tokenyard.cache.service import ResponseCache
from tokenyard.config import PASS_THROUGH_MODEL, GatewayConfig
from tokenyard.gateway.context import RequestContext
from tokenyard.gateway.resume import ResumeRegistry
from tokenyard.gateway.stages.chain import Next, build_chain
from tokenyard.security.service import SecurityService
from tokenyard.telemetry.access_log import AccessLog
from tokenyard.telemetry.metrics import GatewayMetrics
from tokenyard.telemetry.tracing import build_tracing
from tokenyard.traffic.control import TrafficControl
from tokenyard.traffic.distributed import ScaleOut
from tokenyard.traffic.drain_sync import DrainSync
from tokenyard.traffic.router import Router
from tokenyard.upstream.client import UpstreamClient
from tokenyard.upstream.pools import Pool, build_pools

log = logging.getLogger("tokenyard.gateway")
PROBE_INTERVAL_S = 2.0


class Gateway:
    """Config, metrics, upstream client, pools, router, in-flight requests and the composed stage chain."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.tracing = build_tracing(config.telemetry)  # None unless telemetry.otlp_endpoint is set
        self.client = UpstreamClient(config.timeouts)
        self.pools: dict[str, Pool] = build_pools(config.models, self.metrics, config.routing)
        self.router = Router(self.client, self.pools, config, self.metrics)
        self.inflight: dict[str, RequestContext] = {}
        self.access_log = AccessLog(config.access_log) if config.access_log.enabled else None
        self.traffic = TrafficControl(config, {name: [(e.name, e.url) for e in pool.endpoints]
                                               for name, pool in self.pools.items()}, self.metrics)
        self.security = SecurityService(config)
        self.scaleout = ScaleOut(config, self.traffic, self.inflight.get)  # shared state: limits across replicas
        self.router.budget = self.scaleout.budget  # per-endpoint budget shared by all replicas (None: off)
        # Backend drains shared by every worker and replica (None with state: memory: drain is per process).
        self.drains = DrainSync(self.scaleout.state, self.router.drain,
                                (e.name for pool in self.pools.values() for e in pool.endpoints)) \
            if self.scaleout.shared else None
        self.cache = ResponseCache(config.cache, self.scaleout.state, self.metrics) if config.cache.enabled else None
        self.resume = ResumeRegistry(config.streams, self.metrics)  # resumable streams (docs/resume.md)
        self.chain: Next = build_chain(self)
        self._prober: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the connection pool, learn the pass-through pool's models, start the health prober."""
        await self.security.start()
        await self.client.start()
        await self.discover_models()
        await self.traffic.start(self.client.session)
        await self.scaleout.start()
        if self.drains is not None:
            await self.drains.start()
        await self.resume.start(self.scaleout.state if self.scaleout.shared else None)
        await self.router.start()
        self._prober = asyncio.create_task(self._probe_forever(), name="tokenyard-health-prober")

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None
        await self.resume.close()  # before the pool: detached streams close their upstreams
        await self.router.close()
        await self.traffic.close()
        if self.drains is not None:
            await self.drains.close()
        await self.scaleout.close()
        await self.client.close()
        await self.security.close()
        if self.access_log is not None:
            self.access_log.close()
        if self.tracing is not None:
            await self.tracing.close()

    async def discover_models(self) -> None:
        """``GET /v1/models`` of every endpoint of the ``*`` pool: the names it then accepts."""
        pool = self.pools.get(PASS_THROUGH_MODEL)
        if pool is None:
            return
        names: set[str] = set()
        for endpoint in pool.endpoints:
            try:
                names.update(await self.client.list_models(endpoint.url))
            except Exception as exc:  # an unreachable upstream must not stop the gateway from starting
                log.warning("could not list the models of %s: %s", endpoint.url, exc)
        pool.known_models = frozenset(names) if names else None

    def model_ids(self) -> list[str]:
        """The model names clients may send: configured names, and what the pass-through pool's upstreams list."""
        ids = [name for name in self.config.models if name != PASS_THROUGH_MODEL]
        pool = self.pools.get(PASS_THROUGH_MODEL)
        if pool is not None and pool.known_models:
            ids.extend(sorted(n for n in pool.known_models if n not in self.config.models))
        return ids

    @property
    def ready(self) -> bool:
        return any(pool.healthy for pool in self.pools.values())

    async def _probe_forever(self) -> None:
        """Learn the pass-through pool's models once an upstream answers (health is the router's job)."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            if self.pools.get(PASS_THROUGH_MODEL) is not None and self.pools[PASS_THROUGH_MODEL].known_models is None:
                await self.discover_models()
