"""``tokenyard pipeline``: run workers, replay a range into a new sink, send control events, look up lineage."""

from __future__ import annotations

import asyncio
import errno
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import click
import msgspec

from tokenyard.cli import port_type
from tokenyard.pipeline.spec import JsonlSinkSpec, PipelineSpec, SinkSpec, SpecError, StreamSinkSpec, load_spec

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")


def _load(path: str) -> PipelineSpec:
    try:
        return load_spec(path)
    except SpecError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


def _check_sink_files(spec: PipelineSpec) -> None:
    """A JSONL sink that cannot write its file is one line and exit 1 before the worker starts."""
    from tokenyard.pipeline.sinks import jsonl_path_problem

    for index, sink in enumerate(spec.sinks):
        problem = jsonl_path_problem(sink.jsonl.path) if sink.jsonl is not None else None
        if problem is not None:
            click.echo(f"error: sinks[{index}].jsonl.path: {problem}", err=True)
            sys.exit(1)


def _on_log(spec: PipelineSpec, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``; an event log that cannot be reached or opened is one line and exit 1, not a traceback."""
    from tokenyard import runtime
    from tokenyard.pipeline.eventlog import EventLogUnavailable

    try:
        return runtime.run(main)
    except EventLogUnavailable as exc:
        click.echo(f"error: log: {_without_password(spec.log)}: {exc}", err=True)
        sys.exit(1)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


@click.group("pipeline")
def pipeline_group() -> None:
    """Streaming-first pipeline workers (graph reference: docs/pipelines.md)."""


@pipeline_group.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--consumer", default=None, help="Consumer name in the group (default: hostname-pid).")
@click.option("--port", type=port_type(), default=None, help="Override the HTTP port (ingest/metrics); 0 picks one.")
def run_command(file: str, consumer: str | None, port: int | None) -> None:
    """Run a worker of the pipeline FILE until SIGINT/SIGTERM."""

    spec = _load(file)
    _check_sink_files(spec)
    if port is not None:
        if spec.source.http is not None:
            spec = _with(spec, source=_with(spec.source, http=_with(spec.source.http, port=port)))
        else:
            spec = _with(spec, worker=_with(spec.worker, metrics=_with(spec.worker.metrics, port=port)))
    sys.exit(_on_log(spec, _run(spec, Path(file).resolve().parent, consumer)))


def _with(obj: S, **changes: object) -> S:
    return msgspec.structs.replace(obj, **changes)


async def _run(spec: PipelineSpec, base_dir: Path, consumer: str | None) -> int:
    from tokenyard.pipeline.service import PipelineService, tune_worker_gc
    from tokenyard.runtime import wait_for_shutdown

    tune_worker_gc()  # this process is a worker
    service = PipelineService(spec, base_dir, consumer)
    try:
        try:
            await service.start()
        except OSError as exc:  # the HTTP side's port in use or not ours: one line, as serve and sim say it
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                raise
            key = "source.http" if spec.source.http is not None else "worker.metrics"
            print(f"error: {key}: cannot listen: {exc.strerror or exc}", file=sys.stderr, flush=True)
            return 1
        assert service.worker is not None
        where = service.base_url or f"stream {spec.source.stream} (no HTTP port)"
        print(f"tokenyard pipeline listening on {where}" if service.base_url else
              f"tokenyard pipeline worker {service.worker.consumer} reading {where}", flush=True)
        shutdown = asyncio.create_task(wait_for_shutdown())
        worker = asyncio.create_task(service.wait())
        done, _ = await asyncio.wait({shutdown, worker}, return_when=asyncio.FIRST_COMPLETED)
        shutdown.cancel()
        if worker in done and worker.exception() is not None:
            print(f"pipeline worker failed: {worker.exception()}", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        await service.close()


@pipeline_group.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "start", default="-", show_default=True, help="First entry id of the source stream.")
@click.option("--to", "end", default="+", show_default=True, help="Last entry id (inclusive).")
@click.option("--sink-stream", default=None, help="Write results to this stream of the pipeline's log.")
@click.option("--sink-jsonl", default=None, type=click.Path(dir_okay=False), help="Write results to a JSONL file.")
def replay_command(file: str, start: str, end: str, sink_stream: str | None, sink_jsonl: str | None) -> None:
    """Run a range of FILE's source stream through the graph again into a new sink."""

    if (sink_stream is None) == (sink_jsonl is None):
        raise click.UsageError("give exactly one of --sink-stream, --sink-jsonl")
    from tokenyard.pipeline.eventlog.ids import lower_bound, upper_bound

    for option, value, parse in (("--from", start, lower_bound), ("--to", end, upper_bound)):
        try:
            parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    from tokenyard.pipeline.sinks import jsonl_path_problem

    problem = jsonl_path_problem(sink_jsonl) if sink_jsonl is not None else None
    if problem is not None:  # before any inference is spent on results that could not be written
        raise click.BadParameter(problem, param_hint="--sink-jsonl")
    spec = _load(file)
    from tokenyard.pipeline.eventlog import dead_stream

    # The pipeline's own streams: results written there would be read back as events or control entries.
    own = {spec.source.stream, spec.control_stream, spec.lineage_stream, dead_stream(spec.source.stream)}
    if sink_stream in own:
        raise click.BadParameter(f"{sink_stream!r} is one of the pipeline's own streams (source, control, "
                                 "lineage, dead letters); replay into a new stream", param_hint="--sink-stream")
    sink = SinkSpec(stream=StreamSinkSpec(stream=sink_stream) if sink_stream else None,
                    jsonl=JsonlSinkSpec(path=sink_jsonl) if sink_jsonl else None, outcomes=("completed", "filtered"))
    report = _on_log(spec, _replay(spec, Path(file).resolve().parent, start, end, sink))
    click.echo(json.dumps(report))
    if report["failed"]:
        sys.exit(1)


async def _replay(spec: PipelineSpec, base_dir: Path, start: str, end: str, sink: SinkSpec) -> dict[str, object]:
    from tokenyard.pipeline.eventlog import open_event_log
    from tokenyard.pipeline.inference import InferenceStep, gateway_config_for
    from tokenyard.pipeline.replay import replay
    from tokenyard.pipeline.sinks import build_sinks
    from tokenyard.pipeline.transforms import build_transforms

    inference = InferenceStep(spec.inference, gateway_config_for(spec.inference, base_dir))
    log = open_event_log(spec.log)
    async with aiohttp.ClientSession() as session:
        await inference.start()
        try:
            sinks = build_sinks((sink,), spec.log, log, session)
            report = await replay(log, spec.source.stream, start, end, build_transforms(spec.transforms, session),
                                  inference, sinks, prompt_field=spec.inference.prompt_field,
                                  concurrency=spec.worker.max_inflight)
            for s in sinks:
                await s.close()
        finally:
            await inference.close()
            await log.aclose()
    return {"read": report.read, "outcomes": report.outcomes, "failed": report.failed}


@pipeline_group.command("control")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("action", type=click.Choice(["abort", "pause", "resume"]))
@click.option("--event-id", default=None, help="abort: the event id.")
@click.option("--key", default=None, help="abort: every event of this key created up to now.")
def control_command(file: str, action: str, event_id: str | None, key: str | None) -> None:
    """Append a control event to FILE's control stream."""

    spec = _load(file)
    body = {"action": action, "event_id": event_id, "key": key}
    try:
        entry_id = _on_log(spec, _control(spec, {k: v for k, v in body.items() if v is not None}))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(entry_id)


async def _control(spec: PipelineSpec, body: dict[str, str]) -> str:
    from tokenyard.pipeline.control import send_control
    from tokenyard.pipeline.eventlog import open_event_log

    log = open_event_log(spec.log)
    try:
        return await send_control(log, spec, **body)
    finally:
        await log.aclose()


@pipeline_group.command("lineage")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("event_id")
def lineage_command(file: str, event_id: str) -> None:
    """Print the lineage records of EVENT_ID (event -> inference request id -> result) as JSON."""

    spec = _load(file)
    found = _on_log(spec, _lineage(spec, event_id))
    if not found:
        raise click.ClickException(f"no lineage for event {event_id!r}")
    click.echo(json.dumps(found))


async def _lineage(spec: PipelineSpec, event_id: str) -> list[dict[str, str]]:
    from tokenyard.pipeline.eventlog import open_event_log
    from tokenyard.pipeline.lineage import Lineage

    log = open_event_log(spec.log)
    try:
        return await Lineage(log, spec.lineage_stream).find(event_id)
    finally:
        await log.aclose()
