"""Assembly: a ``PipelineService`` builds the log, traffic core, transforms, sinks, metrics, worker and the
optional HTTP side from a ``PipelineSpec``. ``running_pipeline(spec)`` runs one in-process (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from tokenyard.pipeline.eventlog import EventLog, open_event_log
from tokenyard.pipeline.inference import InferenceStep, gateway_config_for
from tokenyard.pipeline.ingest import build_http_app
from tokenyard.pipeline.metrics import PipelineMetrics
from tokenyard.pipeline.sinks import build_sinks
from tokenyard.pipeline.spec import PipelineSpec
from tokenyard.pipeline.transforms import build_transforms
from tokenyard.pipeline.worker import Worker

# A worker allocates in bursts (a read of up to ``worker.batch`` events creates thousands of short-lived objects
# at once, while hundreds of events are in flight); at Python's default first threshold (700) every burst set off
# collections that walked all in-flight events: ~0.1 ms of CPU per event in the throughput benchmark, ~13 % of
# the worker. The objects die by reference counting; cycles are still collected, just less often.
WORKER_GC_THRESHOLDS = (20_000, 20, 50)


def tune_worker_gc() -> None:
    """Set the garbage collector's thresholds for a process whose job is to be a pipeline worker (``tokenyard
    pipeline run``, the throughput benchmark). A process-wide setting: ``running_pipeline`` does not call it."""
    gc.set_threshold(*WORKER_GC_THRESHOLDS)


class PipelineService:
    def __init__(self, spec: PipelineSpec, base_dir: Path | None = None, consumer: str | None = None) -> None:
        self.spec = spec
        self.base_dir = base_dir or Path.cwd()
        self.consumer = consumer
        self.metrics = PipelineMetrics(spec.name)
        self.log: EventLog | None = None
        self.worker: Worker | None = None
        self.base_url: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inference: InferenceStep | None = None
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        spec = self.spec
        self._inference = InferenceStep(spec.inference, gateway_config_for(spec.inference, self.base_dir))
        self.log = open_event_log(spec.log)
        await self.log.create_group(spec.source.stream, spec.source.group, "0")
        self._session = aiohttp.ClientSession()
        await self._inference.start()
        sinks = build_sinks(spec.sinks, spec.log, self.log, self._session)
        transforms = build_transforms(spec.transforms, self._session)
        self.worker = Worker(spec, self.log, self._inference, transforms, sinks, self.metrics,
                             consumer=self.consumer)
        http = spec.source.http
        port = http.port if http is not None else spec.worker.metrics.port
        if port is not None:
            host = http.host if http is not None else spec.worker.metrics.host
            self._runner = web.AppRunner(build_http_app(spec, self.log, self.metrics, http), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, port)
            await site.start()
            self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        self._task = asyncio.create_task(self.worker.run(self._stop), name="pipeline-worker")
        await asyncio.wait_for(self.worker.control_ready.wait(), 30)

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()
        if self.worker is not None:
            for sink in self.worker.sinks:
                await sink.close()
        if self._inference is not None:
            await self._inference.close()
        if self._session is not None:
            await self._session.close()
        if self.log is not None:
            await self.log.aclose()


@asynccontextmanager
async def running_pipeline(spec: PipelineSpec, base_dir: Path | None = None,
                           consumer: str | None = None) -> AsyncIterator[PipelineService]:
    service = PipelineService(spec, base_dir, consumer)
    try:
        await service.start()
        yield service
    finally:
        await service.close()
