"""The engine loop: one asyncio task per simulator drives the pure ``Scheduler`` on the wall clock.

There is exactly one timer: the loop computes a step, sleeps to that step's absolute deadline (so timer overshoot
does not accumulate), then hands each sequence its new token by resolving that request's waiter. Requests never
sleep on their own. When idle, the loop waits for an arrival (or the next front-end deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import Any, Protocol

from tokenyard.sim.metrics import EngineHistograms
from tokenyard.sim.params import SimParams
from tokenyard.sim.scheduler import Scheduler, Sequence, StepResult
from tokenyard.sim.text import VOCAB, block_hashes, count_tokens

LAG_RESET_MIN_S = 0.005  # lag (behind the deadline) tolerated before the next step restarts from "now"


class QueueFull(Exception):
    """The waiting queue is at ``max_queue``."""


class RequestInvalid(Exception):
    """The request can never run on this engine (too long for the model or the KV cache)."""


class DirectWriter(Protocol):
    """Writes a stream's new tokens from inside the engine loop (the hot path: no handler wake-up per token)."""

    def push(self) -> int:
        """Send what was delivered: ``REFUSED`` (connection closing, client not reading), ``SENT``, or
        ``SENT_WAKE`` when the handler must now run (its stream reached a point it handles itself, e.g. a drop)."""


REFUSED, SENT, SENT_WAKE = 0, 1, 2


class RequestHandle:
    """The HTTP side of one sequence: what it may send (``available``) and a waiter to sleep on."""

    __slots__ = ("aborted", "available", "detached", "direct", "finished", "seq", "text_start", "text_stride",
                 "waiter")

    def __init__(self, seq: Sequence, text_start: int, text_stride: int) -> None:
        self.seq = seq
        self.text_start = text_start
        self.text_stride = text_stride
        self.available = 0  # tokens delivered by the engine (their step has ended)
        self.finished = False  # the last token was delivered
        self.aborted = False  # the engine dropped the sequence
        self.detached = False  # the client went away (zombie if the sequence still runs)
        self.direct: DirectWriter | None = None  # set by a streaming handler once its headers are out
        self.waiter: asyncio.Future[None] | None = None

    def notify(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_beyond(self, have: int) -> None:
        """Sleep until more than ``have`` tokens are available, or the sequence finished or was aborted.

        Uses only what the engine has *delivered*: the scheduler marks a sequence finished when its last step
        starts, but its tokens exist for the client only once that step's time has passed.
        """
        while self.available <= have and not self.finished and not self.aborted:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    def token_index(self, k: int) -> int:
        """Vocabulary index of output token ``k``."""
        return (self.text_start + k * self.text_stride) % len(VOCAB)


class Engine:
    """One simulated engine: scheduler, counters, histograms and the loop task."""

    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.scheduler = Scheduler(params, random.Random(params.seed))
        self._rng = random.Random(params.seed * 7919 + 1)  # output lengths and text, in arrival order
        self.hist = EngineHistograms()
        self.delivered_tokens = 0
        self.injected_faults = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_id = 0
        self._reset_step_stats()

    def _reset_step_stats(self) -> None:
        self.step_time_sum = 0.0
        self.predicted_sum = 0.0
        self.batch_sum = 0
        self.steps_timed = 0
        self.lag_max = 0.0
        self.lag_events = 0

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- requests -----------------------------------------------------------------------------------------
    def submit(self, prompt_text: str, max_tokens: int | None, salt: str = "",
               extra_frontend_ms: float = 0.0, received_at: float | None = None) -> RequestHandle:
        """Admit a request; raises ``RequestInvalid`` (400) or ``QueueFull`` (429).

        ``received_at`` (loop clock) is when the request reached the server, if known: its front-end delay and
        TTFT run from then, so the time the simulator's own busy event loop held the request before this call
        is absorbed into the modelled front-end delay instead of being added to it (see ``sim.arrival``).
        """
        params = self.params
        prompt_tokens = count_tokens(prompt_text)
        target, reason = self._output_length(prompt_tokens, max_tokens)
        problem = self.scheduler.check(prompt_tokens, target)
        if problem is not None:
            raise RequestInvalid(problem)
        now = asyncio.get_running_loop().time()
        arrival = now if received_at is None else min(received_at, now)
        self._next_id += 1
        seq = Sequence(self._next_id, prompt_tokens, target, block_hashes(prompt_text, salt), arrival=arrival,
                       frontend_s=(params.frontend_ms + extra_frontend_ms) / 1000.0, stop_reason=reason)
        handle = RequestHandle(seq, self._rng.randrange(len(VOCAB)), 1 + 2 * self._rng.randrange(len(VOCAB) // 2))
        seq.sink = handle
        if not self.scheduler.add(seq):
            raise QueueFull(f"the waiting queue is full ({params.max_queue} requests)")
        self._wake.set()
        return handle

    def _output_length(self, prompt_tokens: int, max_tokens: int | None) -> tuple[int, str]:
        params = self.params
        room = max(1, params.max_model_len - prompt_tokens)
        if params.output_len_dist == "fixed":
            if max_tokens is not None:
                return max_tokens, "length"  # like ignore_eos: exactly max_tokens
            return min(params.output_len, room), "stop"
        mean = params.output_len
        if params.output_len_dist == "uniform":
            natural = self._rng.randint(1, 2 * mean - 1)
        else:  # exponential
            natural = max(1, math.ceil(self._rng.expovariate(1.0 / mean)))
        cap = max_tokens if max_tokens is not None else room
        return (natural, "stop") if natural < cap else (cap, "length")

    def abort(self, handle: RequestHandle) -> None:
        """The client went away: the sequence leaves the batch at the start of the next step."""
        handle.detached = True
        if self.params.abort_on_disconnect and not handle.seq.done:
            self.scheduler.abort(handle.seq)
            self._wake.set()

    def detach(self, handle: RequestHandle) -> None:
        """The client went away but the engine keeps generating (``--no-abort-on-disconnect``)."""
        handle.detached = True

    def set_slots(self, slots: int | None) -> None:
        """Capacity loss: at most ``slots`` running sequences (None restores ``max_num_seqs``)."""
        self.scheduler.slots = self.params.max_num_seqs if slots is None else max(0, min(slots,
                                                                                           self.params.max_num_seqs))
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        sched = self.scheduler
        deadline = loop.time()
        last_duration = 0.0
        idle = True
        while True:
            now = loop.time()
            if idle or not sched.has_work():
                ready = sched.next_ready_at()
                if not sched.has_work() and (ready is None or ready > now):
                    await self._sleep_until_work(None if ready is None else ready - now)
                    idle = True
                    continue
                deadline = now  # resuming from idle: the step starts now
            elif now > deadline:
                # Late (delivery took long or the process was descheduled): record it. Up to one step of lag is
                # caught up on the next step, as a GPU keeps computing while the CPU side is busy; beyond that
                # the schedule restarts from now, so time is lost rather than steps being compressed.
                self.lag_max = max(self.lag_max, now - deadline)
                if now - deadline > max(LAG_RESET_MIN_S, last_duration):
                    self.lag_events += 1
                    deadline = now
            result = sched.step(deadline)
            if result.batch == 0:
                # Nothing can run (no slots, or the queue head does not fit): wait for a change.
                ready = sched.next_ready_at()
                await self._sleep_until_work(None if ready is None else max(0.0, ready - loop.time()))
                idle = True
                self._push(result, self._deliver(result, loop.time()), loop.time())
                continue
            idle = False
            last_duration = result.duration_s
            deadline += result.duration_s
            self.step_time_sum += result.duration_s
            self.predicted_sum += result.predicted_s
            self.batch_sum += result.batch
            self.steps_timed += 1
            delay = deadline - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            direct_handles = self._deliver(result, deadline)
            if direct_handles and len(direct_handles) < len(result.emitted):
                await asyncio.sleep(0)  # let the handlers woken in phase 1 write first
            self._push(result, direct_handles, deadline)

    async def _sleep_until_work(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _deliver(self, result: StepResult, now: float) -> list[RequestHandle]:
        """Phase 1 of delivery: record times, wake handlers that write themselves (first tokens, slow path).

        Returns the streams whose tokens the engine writes itself (phase 2, ``_push``). The loop yields between
        the phases so the few handlers woken here (a first token, a new request to accept) are not queued behind
        thousands of socket writes: that wait would land on TTFT.
        """
        hist = self.hist
        ttft, itl = hist.ttft, hist.itl
        direct_handles: list[RequestHandle] = []
        for seq in result.emitted:
            # Hot loop (every streaming sequence, every step).
            last = seq.last_token_at
            if last is None:
                ttft.observe(now - seq.arrival)
            else:
                itl.observe(now - last)
            seq.last_token_at = now
            handle: RequestHandle = seq.sink
            handle.available = seq.num_output
            if handle.direct is None:
                handle.notify()
            else:
                direct_handles.append(handle)
        return direct_handles

    def _push(self, result: StepResult, direct_handles: list[RequestHandle], now: float) -> None:
        """Phase 2: write the direct streams' tokens, then report finished and aborted sequences."""
        for handle in direct_handles:
            direct = handle.direct
            if direct is None:
                handle.notify()
                continue
            outcome = direct.push()
            if outcome == SENT:
                continue
            if outcome == REFUSED:
                handle.direct = None  # the handler takes over, with flow control
            handle.notify()
        for seq in result.finished:
            self.hist.e2e.observe(now - seq.arrival)
            handle = seq.sink
            handle.finished = True
            handle.notify()
        for seq in result.aborted:
            seq.sink.aborted = True
            seq.sink.notify()
        for seq in result.preempted:
            seq.last_token_at = None if seq.num_output == 0 else seq.last_token_at

    # -- reporting ----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        sched = self.scheduler
        c = sched.counters
        steps = self.steps_timed or 1
        return {
            "model": self.params.model_name,
            "generated_tokens": c.generated_tokens,
            "delivered_tokens": self.delivered_tokens,
            "prompt_tokens": c.prompt_tokens,
            "aborted_requests": c.aborted_requests,
            "completed_requests": c.completed_requests,
            "rejected_requests": c.rejected_requests,
            "injected_faults": self.injected_faults,
            "preemptions": c.preemptions,
            "finished_by_reason": dict(c.finished_by_reason),
            "running": len(sched.running),
            "waiting": sched.queued,
            # What vLLM's num_requests_waiting counts: the scheduler's queue (preempted included), not requests
            # still in the API server. Counting those made every request look queued for its whole front-end
            # delay, and a gateway reading the gauge saw a server queue where there was none.
            "scheduler_waiting": len(sched.waiting),
            "zombies": sum(1 for s in sched.running if s.sink is not None and s.sink.detached),
            "slots": sched.slots,
            "kv_cache_usage": sched.kv.usage,
            "kv_free_blocks": sched.kv.free_blocks,
            "prefix_cache_queries": sched.kv.queries,
            "prefix_cache_hits": sched.kv.hits,
            "steps": self.steps_timed,
            "mean_step_ms": 1000.0 * self.step_time_sum / steps,
            "mean_predicted_step_ms": 1000.0 * self.predicted_sum / steps,
            "mean_batch": self.batch_sum / steps,
            "step_lag_ms_max": 1000.0 * self.lag_max,
            "step_lag_events": self.lag_events,
        }

    def reset(self) -> None:
        """Zero counters, histograms and step statistics (requests in flight carry on)."""
        self.scheduler.reset_counters()
        self.hist = EngineHistograms()
        self.delivered_tokens = 0
        self.injected_faults = 0
        self._reset_step_stats()
