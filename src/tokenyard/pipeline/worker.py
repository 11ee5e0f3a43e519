"""The pipeline worker: consumer-group reads, bounded in-flight work, lifecycle checks, inference, idempotent
sinks, lineage, dead letters and recovery of idle pending entries. Several workers (processes, machines) share a
source stream through one consumer group; see docs/pipelines.md for the delivery semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

from tokenyard.pipeline import event as ev
from tokenyard.pipeline.event import Event, EventInvalid, decode_event
from tokenyard.pipeline.eventlog import Entry, EventLog, GroupNotFound
from tokenyard.pipeline.finisher import Finisher
from tokenyard.pipeline.inference import ExpiredInFlight, InferenceStep, Progress
from tokenyard.pipeline.lifecycle import ControlState, FanOut, Supersession, Valuable
from tokenyard.pipeline.lineage import Lineage
from tokenyard.pipeline.logs import id_rank, tail
from tokenyard.pipeline.logs import lag as group_lag
from tokenyard.pipeline.metrics import PipelineMetrics
from tokenyard.pipeline.sinks import Result, Sink
from tokenyard.pipeline.spec import PipelineSpec
from tokenyard.pipeline.transforms import PermanentError, Transform, TransientError

log = logging.getLogger("tokenyard.pipeline")
STOP_GRACE_S = 5.0
READ_RETRY_S = 0.5  # between group reads while the log is unavailable
WASTE_FOR = {ev.ABORTED: "aborted", ev.EXPIRED: "expired", ev.SUPERSEDED: "superseded"}
TIMED_OUT = "timed_out"  # a cancel reason, not an outcome: the attempt failed (an event without a deadline)


class _Running:
    """An inference in flight in its event's handler task: cancelling it with a reason interrupts the handler
    there (closing the upstream request); the handler then finishes the event with that reason."""

    __slots__ = ("event", "progress", "reason", "task")

    def __init__(self, event: Event, task: asyncio.Task[None], progress: Progress) -> None:
        self.event = event
        self.task = task
        self.progress = progress
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self.reason and not self.task.done():
            self.reason = reason
            self.task.cancel()


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, spec: PipelineSpec, log: EventLog, inference: InferenceStep, transforms: list[Transform],
                 sinks: list[Sink], metrics: PipelineMetrics, *, consumer: str | None = None,
                 clock: Callable[[], float] = ev.now_ms) -> None:
        self.spec = spec
        self.log = log
        self.inference = inference
        self.transforms = transforms
        self.sinks = sinks
        self.metrics = metrics
        self.consumer = consumer or spec.worker.consumer or default_consumer()
        self.clock = clock
        self.control = ControlState()
        self.supersession = Supersession()
        self.fanout = FanOut(spec.lifecycle.per_key, spec.lifecycle.per_tenant)
        self.valuable = Valuable(spec.lifecycle.valuable)
        self.finisher = Finisher(log, spec.source.stream, spec.source.group, spec.lineage_stream)
        self.stream = spec.source.stream
        self.group = spec.source.group
        self._slots = asyncio.Semaphore(spec.worker.max_inflight)
        self._changed = asyncio.Condition()  # fan-out freed, control applied, newer event seen
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._active: dict[str, asyncio.Task[None]] = {}  # entry id -> handler
        self._running: dict[str, _Running] = {}  # entry id -> inference
        self._held: set[str] = set()  # entry ids read or claimed and not yet finished (renewed by the heartbeat)
        self.control_ready = asyncio.Event()  # the control stream's history has been applied
        self._stopping = False
        self._fanout_waiters = 0  # handlers waiting in _wait_fanout (none: finishing need not wake anyone)
        # Read when scraped, not moved twice per event.
        metrics.inflight.set_function(lambda: len(self._active))
        metrics.inferring.set_function(lambda: len(self._running))

    # ---- the loops ----------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then stop reading, cancel in-flight work (left pending for others)."""
        await self.log.create_group(self.stream, self.group, "0")
        helpers = [asyncio.create_task(self._control_loop(), name="pipeline-control"),
                   asyncio.create_task(self._claim_loop(), name="pipeline-claim"),
                   asyncio.create_task(self._lag_loop(), name="pipeline-lag"),
                   asyncio.create_task(self.finisher.run(), name="pipeline-finisher")]
        reader = asyncio.create_task(self._read_loop(), name="pipeline-read")
        try:
            await stop.wait()
        finally:
            self._stopping = True  # see Finisher.run: loops also check the flag, not only cancellation
            self.finisher.stop()
            tasks = [reader, *helpers, *self._active.values()]
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            if stuck:
                log.warning("%d pipeline tasks did not stop within %.0f s: %s", len(stuck), STOP_GRACE_S,
                            ", ".join(sorted({t.get_name() for t in stuck})))
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.warning("pipeline task %s failed: %r", task.get_name(), task.exception())
            await self.finisher.close()

    async def _read_loop(self) -> None:
        await self.control_ready.wait()
        cfg = self.spec.worker
        while not self._stopping:
            await self._resumed.wait()
            async with self._slots:  # wait for a free slot before reading: bounded in-flight work
                pass
            free = max(1, self._free_slots())
            try:
                entries = await self.log.read_group(self.stream, self.group, self.consumer,
                                                    count=min(cfg.batch, free), block_s=cfg.block_ms / 1000.0)
            except Exception as exc:
                # The reader must outlive a log outage (a Redis restart): were it to end here, the worker would
                # look alive and never read again.
                await self._recover_read(exc)
                continue
            await self._dispatch(entries)

    async def _recover_read(self, exc: Exception) -> None:
        """After a failed group read: recreate the group if it is gone (a Redis restarted without its data;
        a worker that started before the producers' first event), else wait a moment before reading again."""
        if isinstance(exc, GroupNotFound):
            log.warning("consumer group %r on %r is gone; creating it again", self.group, self.stream)
            with contextlib.suppress(Exception):  # the log is still unavailable: the next read says so again
                await self.log.create_group(self.stream, self.group, "0")
                return
        else:
            log.warning("reading %r failed (retrying): %s", self.stream, exc)
        await asyncio.sleep(READ_RETRY_S)

    async def _claim_loop(self) -> None:
        await self.control_ready.wait()
        cfg = self.spec.worker
        while not self._stopping:
            await asyncio.sleep(cfg.claim_every_ms / 1000.0)
            await self._heartbeat()
            if self.control.paused:  # no new work, but the heartbeat goes on: held events stay this worker's
                continue
            free = self._free_slots()
            if free <= 0:
                continue
            try:
                entries = await self.log.claim_idle(self.stream, self.group, self.consumer,
                                                    self.spec.delivery.claim_idle_ms / 1000.0, count=free)
            except Exception as exc:  # the log is down: try again next round
                log.warning("claiming idle entries failed: %s", exc)
                continue
            # Our own long inference, or finished and about to be acked: not a dead worker's event.
            entries = [e for e in entries if e.id not in self._active and e.id not in self.finisher.finishing]
            self.metrics.redeliveries.inc(len(entries))
            await self._dispatch(entries)

    async def _heartbeat(self) -> None:
        """Renew the entries this worker holds (reset their idle time without counting a delivery): other workers
        claim only a stopped worker's events, however long an inference, a fan-out wait or a pause lasts."""
        held = [*self._held, *self.finisher.finishing]
        if not held:
            return
        try:
            await self.log.touch(self.stream, self.group, self.consumer, held)
        except Exception as exc:  # the log is down: claims by others fail too; try again next round
            log.warning("renewing %d held entries failed: %s", len(held), exc)

    async def _lag_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(Exception):
                self.metrics.lag.set(await group_lag(self.log, self.stream, self.group))
            await asyncio.sleep(1.0)

    async def _control_loop(self) -> None:
        """Tail the control stream from its start (so pause/abort history applies to a new worker too)."""
        last = "0-0"
        while not self._stopping:
            try:
                async for entries in tail(self.log, self.spec.control_stream, last):
                    if self._stopping:
                        return
                    for entry in entries:
                        last = entry.id
                        self._apply_control(entry)
                    if not entries:
                        self.control_ready.set()
                    else:
                        async with self._changed:
                            self._changed.notify_all()
            except Exception as exc:  # the log is unavailable: keep the state we have, try again
                log.warning("reading the control stream failed: %s", exc)
                await asyncio.sleep(0.5)

    def _apply_control(self, entry: Entry) -> None:
        try:
            # Without at_ms (a control entry XADDed by hand), the abort is as old as its entry, not "now": a
            # worker that replays the history later must not abort the key's events created after it.
            at = float(entry.fields.get("at_ms") or id_rank(entry.id)[0])
            action = self.control.apply(entry.fields, at)
        except ValueError as exc:
            log.warning("ignoring control entry %s: %s", entry.id, exc)
            return
        self.metrics.control.labels(self.metrics.pipeline, action).inc()
        if action == "pause":
            self._resumed.clear()
        elif action == "resume":
            self._resumed.set()
        self.metrics.paused.set(1 if self.control.paused else 0)
        for running in list(self._running.values()):
            if self.control.is_aborted(running.event):
                running.cancel(ev.ABORTED)

    # ---- one event ----------------------------------------------------------------------------------------
    def _free_slots(self) -> int:
        return self.spec.worker.max_inflight - len(self._active)

    async def _dispatch(self, entries: list[Entry]) -> None:
        events: list[tuple[Entry, Event | None, str]] = []
        self._held.update(entry.id for entry in entries)
        for entry in entries:
            try:
                event: Event | None = decode_event(entry.id, entry.fields, entry.deliveries,
                                                   self.spec.lifecycle.ttl_ms)
                error = ""
            except EventInvalid as exc:
                event, error = None, str(exc)
            if event is not None and self.spec.lifecycle.supersede:
                self.supersession.observe(event)
            events.append((entry, event, error))
        if self.spec.lifecycle.supersede:
            for running in list(self._running.values()):
                if self.supersession.is_superseded(running.event):
                    running.cancel(ev.SUPERSEDED)
            async with self._changed:
                self._changed.notify_all()
        for entry, event, error in events:
            await self._slots.acquire()
            task = asyncio.create_task(self._handle(entry, event, error))
            self._active[entry.id] = task
            task.add_done_callback(self._done_callback(entry.id))

    def _done_callback(self, entry_id: str) -> Callable[[asyncio.Task[None]], None]:
        return lambda _task: self._done(entry_id)

    def _done(self, entry_id: str) -> None:
        self._active.pop(entry_id, None)
        self._held.discard(entry_id)
        self._slots.release()

    async def _handle(self, entry: Entry, event: Event | None, error: str) -> None:
        try:
            await self._handle_one(entry, event, error)
        except Exception as exc:  # a sink or the log failed: the entry stays pending and is redelivered
            self.metrics.retries.inc()
            log.warning("event entry %s could not be finished (left pending): %r", entry.id, exc)

    async def _handle_one(self, entry: Entry, event: Event | None, error: str) -> None:
        started = time.monotonic()
        if event is None:
            # Not a valid event, but its producer's id (the sinks' idempotency key) and key/tenant still hold.
            fields = entry.fields
            unreadable = Event(id=fields.get("id") or entry.id, entry_id=entry.id, data={}, key=fields.get("key", ""),
                               tenant=fields.get("tenant") or "default", deliveries=entry.deliveries)
            await self._dead_letter(entry, unreadable, error)
            return
        if event.deliveries > self.spec.delivery.max_attempts:
            await self._dead_letter(entry, event, f"gave up after {event.deliveries - 1} attempts")
            return
        progress = self.inference.new_progress()
        try:
            outcome = await self._process(event, progress)
        except PermanentError as exc:
            await self._dead_letter(entry, event, str(exc), progress)
            return
        except (TransientError, Exception) as exc:
            self.metrics.retries.inc()
            if progress.tokens:
                self.metrics.wasted["failed"].inc(progress.tokens)
            if event.deliveries >= self.spec.delivery.max_attempts:
                await self._dead_letter(entry, event, f"attempt {event.deliveries} failed: {exc}", progress)
            else:
                log.info("event %s attempt %d failed (left pending): %s", event.id, event.deliveries, exc)
            return
        await self._finish(event, outcome, progress)
        self.metrics.duration.observe(time.monotonic() - started)

    def _verdict(self, event: Event) -> str:
        """A reason to stop before inference, or ''."""
        now = self.clock()
        if self.control.is_aborted(event):
            return ev.ABORTED
        if event.expired(now):
            return ev.EXPIRED
        if self.spec.lifecycle.supersede and self.supersession.is_superseded(event):
            return ev.SUPERSEDED
        if not self.valuable(event, now):
            return ev.NOT_VALUABLE
        return ""

    async def _process(self, event: Event, progress: Progress) -> str:
        verdict = self._verdict(event)  # checked at dequeue
        if verdict:
            return verdict
        for transform in self.transforms:
            if not await transform.apply(event):
                return ev.FILTERED
        verdict = await self._wait_fanout(event)
        if verdict:
            return verdict
        self.fanout.start(event)
        try:
            return await self._infer(event, progress)
        finally:
            self.fanout.finish(event)
            if self._fanout_waiters:  # only a handler waiting for a fan-out slot cares
                async with self._changed:
                    self._changed.notify_all()

    async def _wait_fanout(self, event: Event) -> str:
        """Wait for a per-key/per-tenant slot (and for resume); give up when the event stops being worth it."""
        verdict = self._verdict(event)
        if verdict or (self.fanout.can_start(event) and not self.control.paused):
            return verdict  # the common case: no lock, no wait
        async with self._changed:
            self._fanout_waiters += 1
            try:
                while True:
                    verdict = self._verdict(event)
                    if verdict or (self.fanout.can_start(event) and not self.control.paused):
                        return verdict
                    timeout = None
                    if event.deadline_ms is not None:
                        timeout = max(0.0, (event.deadline_ms - self.clock()) / 1000.0) + 0.001
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout)
            finally:
                self._fanout_waiters -= 1

    async def _infer(self, event: Event, progress: Progress) -> str:
        prompt = str(event.fields().get(self.spec.inference.prompt_field, ""))
        if not prompt:
            raise PermanentError(f"the event has no {self.spec.inference.prompt_field!r} field to send")
        budget_ms = None if event.deadline_ms is None else max(1.0, event.deadline_ms - self.clock())
        # Inference runs in this handler task (not a task of its own per event): a reasoned cancel interrupts
        # the handler inside ``run`` and is taken back here, so the event still finishes with the reason.
        task: asyncio.Task[None] = asyncio.current_task()  # type: ignore[assignment]
        running = _Running(event, task, progress)
        self._running[event.entry_id] = running
        loop = asyncio.get_running_loop()
        # Past its deadline an event has expired; an event without one cannot expire: an inference longer than
        # inference.timeout_ms is a failed attempt (retried by redelivery, dead-lettered after max_attempts).
        if budget_ms is None:
            timer = loop.call_later(self.spec.inference.timeout_ms / 1000.0, running.cancel, TIMED_OUT)
        else:
            timer = loop.call_later(budget_ms / 1000.0, running.cancel, ev.EXPIRED)
        try:
            text = await self.inference.run(event, prompt, budget_ms, progress)
        except asyncio.CancelledError:
            if not running.reason:
                raise  # the worker itself is stopping: leave the event pending
            if running.reason == TIMED_OUT:
                raise TransientError(
                    f"inference took longer than inference.timeout_ms ({self.spec.inference.timeout_ms} ms)"
                ) from None
            return running.reason
        except ExpiredInFlight:
            return ev.EXPIRED
        finally:
            timer.cancel()
            self._running.pop(event.entry_id, None)
            if running.reason:
                task.uncancel()  # the cancel was ours, taken back: later timeouts in this task count right
        event.vars["output"] = text
        return ev.COMPLETED

    # ---- results ------------------------------------------------------------------------------------------
    def _result(self, event: Event, outcome: str, progress: Progress | None, error: str = "") -> Result:
        sent = progress is not None and bool(progress.backend)
        return Result(event_id=event.id, status=outcome, entry_id=event.entry_id, key=event.key,
                      tenant=event.tenant, request_id=progress.request_id if progress is not None and sent else "",
                      output=str(event.vars.get("output", "")) if outcome == ev.COMPLETED else "",
                      prompt_tokens=progress.prompt_tokens if progress else 0,
                      completion_tokens=(progress.completion_tokens or progress.tokens) if progress else 0,
                      backend=progress.backend if progress else "", attempts=event.deliveries,
                      worker=self.consumer, finished_ms=self.clock(), error=error)

    async def _finish(self, event: Event, outcome: str, progress: Progress) -> None:
        result = self._result(event, outcome, progress)
        if outcome in WASTE_FOR and progress.tokens:
            self.metrics.wasted[WASTE_FOR[outcome]].inc(progress.tokens)
        new = True
        for sink in self.sinks:
            if outcome in sink.outcomes:
                new = await sink.write(result) and new
        if outcome == ev.COMPLETED:
            if new:
                self.metrics.prompt_tokens.inc(result.prompt_tokens)
                self.metrics.completion_tokens.inc(result.completion_tokens)
            else:
                self.metrics.wasted["duplicate"].inc(result.completion_tokens)
        self.finisher.submit(event.entry_id, Lineage.record(result, new))
        if new:  # a redelivered event whose result was already written is not counted twice
            self.metrics.events[outcome].inc()
        self.metrics.end_to_end.observe(max(0.0, (self.clock() - event.created_ms) / 1000.0))

    async def _dead_letter(self, entry: Entry, event: Event, error: str, progress: Progress | None = None) -> None:
        result = self._result(event, ev.DEAD_LETTERED, progress, error[:1000])
        for sink in self.sinks:
            if ev.DEAD_LETTERED in sink.outcomes:
                await sink.write(result)
        await self.log.append(self.spec.lineage_stream, Lineage.record(result, True))
        # Moves the entry to <stream>:dead (with the reason and delivery count) and acks it, atomically.
        if await self.log.dead_letter(self.stream, self.group, entry.id, error[:1000]):
            self.metrics.events[ev.DEAD_LETTERED].inc()
