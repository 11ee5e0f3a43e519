"""The pure timing model: a vLLM-V1-like continuous-batching scheduler over virtual time (no I/O).

One call to ``Scheduler.step(now)`` is one engine iteration:

1. requests whose front-end delay has passed join the waiting queue; aborted requests leave and free their KV;
2. RUNNING sequences first, in admission order: each gets ``min(tokens it still needs, budget left)`` tokens of the
   ``max_num_batched_tokens`` budget; when the KV cache cannot hold them the newest running sequence is preempted
   (recompute: blocks freed, progress lost, back to the front of the waiting queue) until it fits;
3. WAITING sequences next, FCFS, only if nothing was preempted this step, while fewer than ``slots`` run: a
   prefix-cache lookup, then a (possibly partial, i.e. chunked) prefill; if the head does not fit in KV, stop;
4. the step's duration is ``step_time_ms`` (times a seeded jitter factor); every sequence whose computed tokens
   caught up samples one output token; sequences that reached their target length finish and free their KV.

The caller (``engine.Engine``) sleeps for the returned duration on the wall clock and then delivers the tokens.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tokenyard.sim.kvcache import KVCache
from tokenyard.sim.params import BLOCK_SIZE, SimParams


class SeqStatus(Enum):
    FRONTEND = "frontend"  # in the API server, not yet visible to the scheduler
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


class Sequence:
    """One request inside the engine. ``sink`` belongs to the I/O layer; the scheduler never touches it."""

    __slots__ = (
        "arrival", "blocks", "finish_reason", "first_token_at", "hashes", "last_token_at", "num_computed",
        "num_output", "preemptions", "prompt_tokens", "published", "ready_at", "seq_id", "sink", "status",
        "stop_reason", "target_output",
    )

    def __init__(self, seq_id: int, prompt_tokens: int, target_output: int, hashes: list[int] | None = None,
                 arrival: float = 0.0, frontend_s: float = 0.0, stop_reason: str = "length") -> None:
        self.seq_id = seq_id
        self.prompt_tokens = prompt_tokens
        self.target_output = target_output
        self.hashes = hashes or []
        self.arrival = arrival
        self.ready_at = arrival + frontend_s
        self.stop_reason = stop_reason  # finish_reason once target_output tokens are out
        self.num_output = 0
        self.num_computed = 0
        self.blocks: list[int] = []
        self.published = 0  # prompt blocks already published to the prefix cache
        self.status = SeqStatus.FRONTEND
        self.preemptions = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.finish_reason: str | None = None
        self.sink: Any = None

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.num_output

    @property
    def done(self) -> bool:
        return self.status in (SeqStatus.FINISHED, SeqStatus.ABORTED)


def blocks_for(tokens: int) -> int:
    return -(-tokens // BLOCK_SIZE)


def step_time_ms(params: SimParams, batch: int, prefill_tokens: int) -> float:
    """Predicted duration of one step that runs ``batch`` sequences and ``prefill_tokens`` prompt tokens.

    ``itl_ms * (1 + (load_factor - 1) * (batch - 1) / (max_num_seqs - 1)) + prefill_tokens * prefill_ms_per_token``
    """
    if batch <= 0:
        return 0.0
    span = max(1, params.max_num_seqs - 1)
    load = 1.0 + (params.load_factor - 1.0) * min(batch - 1, span) / span
    return params.itl_ms * load + prefill_tokens * params.prefill_ms_per_token


@dataclass
class Counters:
    """Monotonic totals (zeroed only by ``reset``)."""

    generated_tokens: int = 0
    prompt_tokens: int = 0
    completed_requests: int = 0
    aborted_requests: int = 0
    rejected_requests: int = 0
    preemptions: int = 0
    steps: int = 0
    finished_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class StepResult:
    duration_s: float  # with jitter: what the engine sleeps
    predicted_s: float  # without jitter
    batch: int
    tokens: int  # scheduled tokens, <= max_num_batched_tokens
    prefill_tokens: int
    emitted: list[Sequence]  # got one new output token this step
    finished: list[Sequence]  # reached their target this step (subset of emitted)
    aborted: list[Sequence]  # removed at the start of this step
    preempted: list[Sequence]


class Scheduler:
    """Continuous batching over a KV cache; all times are seconds on the caller's clock."""

    def __init__(self, params: SimParams, rng: random.Random | None = None) -> None:
        self.params = params
        self.kv = KVCache(params.kv_blocks)
        self.rng = rng if rng is not None else random.Random(params.seed)
        self.slots = params.max_num_seqs  # lowered by the capacity_slots fault
        self.frontend: list[tuple[float, int, Sequence]] = []  # heap by ready time
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._aborts: dict[int, Sequence] = {}
        self.counters = Counters()

    # -- queue --------------------------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Requests not running: in the front end or waiting (preempted included)."""
        return len(self.frontend) + len(self.waiting)

    def check(self, prompt_tokens: int, max_output: int) -> str | None:
        """Why a request can never run here (a 400), or None."""
        total = prompt_tokens + max_output
        if total > self.params.max_model_len:
            return (f"This model's maximum context length is {self.params.max_model_len} tokens. However, you "
                    f"requested {total} tokens ({prompt_tokens} in the messages, {max_output} in the completion).")
        if blocks_for(total) > self.params.kv_blocks:
            return f"The request needs {blocks_for(total)} KV blocks but the cache has {self.params.kv_blocks}."
        return None

    def add(self, seq: Sequence) -> bool:
        """Accept ``seq`` into the front end; False when the waiting queue is full (the HTTP layer says 429)."""
        if self.queued >= self.params.max_queue:
            self.counters.rejected_requests += 1
            return False
        seq.status = SeqStatus.FRONTEND
        heapq.heappush(self.frontend, (seq.ready_at, seq.seq_id, seq))
        self.counters.prompt_tokens += seq.prompt_tokens
        return True

    def abort(self, seq: Sequence) -> None:
        """Remove ``seq`` at the start of the next step (a client went away)."""
        if not seq.done:
            self._aborts[seq.seq_id] = seq

    def has_work(self) -> bool:
        return bool(self.running or self.waiting or self._aborts)

    def next_ready_at(self) -> float | None:
        """When the earliest front-end request becomes schedulable (None if there is none)."""
        while self.frontend and self.frontend[0][2].done:
            heapq.heappop(self.frontend)
        return self.frontend[0][0] if self.frontend else None

    # -- one step -----------------------------------------------------------------------------------------
    def step(self, now: float) -> StepResult:
        aborted = self._apply_aborts()
        while self.frontend and self.frontend[0][0] <= now:
            seq = heapq.heappop(self.frontend)[2]
            if not seq.done:
                seq.status = SeqStatus.WAITING
                self.waiting.append(seq)
        budget = self.params.max_num_batched_tokens
        scheduled: list[tuple[Sequence, int]] = []
        preempted: list[Sequence] = []
        budget = self._schedule_running(budget, scheduled, preempted)
        if not preempted:
            self._schedule_waiting(budget, scheduled)
        prefill = 0
        for seq, chunk in scheduled:
            if not (chunk == 1 and seq.num_output > 0 and seq.num_computed == seq.num_tokens - 1):
                prefill += chunk
        predicted = step_time_ms(self.params, len(scheduled), prefill) / 1000.0
        jitter = self.params.jitter
        duration = predicted * self.rng.uniform(1.0 - jitter, 1.0 + jitter) if jitter and predicted else predicted
        emitted, finished = self._complete(scheduled, now + duration)
        if scheduled:
            self.counters.steps += 1
        tokens = sum(chunk for _seq, chunk in scheduled)
        return StepResult(duration, predicted, len(scheduled), tokens, prefill, emitted, finished, aborted, preempted)

    def _apply_aborts(self) -> list[Sequence]:
        if not self._aborts:
            return []
        aborted, self._aborts = list(self._aborts.values()), {}
        gone = set()
        for seq in aborted:
            if seq.done:
                continue
            if seq.status is SeqStatus.RUNNING:
                gone.add(id(seq))
            elif seq.status is SeqStatus.WAITING:
                self.waiting.remove(seq)
            # FRONTEND entries are dropped lazily from the heap.
            self.kv.free(seq.blocks)
            seq.blocks = []
            seq.status = SeqStatus.ABORTED
            seq.finish_reason = "abort"
            self._count_finish("abort")
            self.counters.aborted_requests += 1
        if gone:
            self.running = [s for s in self.running if id(s) not in gone]
        return aborted

    def _schedule_running(self, budget: int, scheduled: list[tuple[Sequence, int]],
                          preempted: list[Sequence]) -> int:
        # Hot loop (every running sequence, every step): attribute access kept to a minimum.
        running = self.running
        kv = self.kv
        running_status = SeqStatus.RUNNING
        append = scheduled.append
        idx = 0
        while idx < len(running) and budget > 0:
            seq = running[idx]
            computed = seq.num_computed
            chunk = seq.prompt_tokens + seq.num_output - computed
            chunk = min(chunk, budget)
            need = (computed + chunk + BLOCK_SIZE - 1) // BLOCK_SIZE - len(seq.blocks)
            if need > 0:
                while not kv.can_allocate([], need):
                    victim = running.pop()  # FCFS: the newest running sequence goes first
                    self._preempt(victim)
                    preempted.append(victim)
                    if victim is seq:
                        break
                if seq.status is not running_status:
                    break
                seq.blocks.extend(kv.allocate(need))
            append((seq, chunk))
            budget -= chunk
            idx += 1
        return budget

    def _preempt(self, seq: Sequence) -> None:
        self.kv.free(seq.blocks)
        seq.blocks = []
        seq.num_computed = 0
        seq.published = 0
        seq.preemptions += 1
        seq.status = SeqStatus.WAITING
        self.waiting.appendleft(seq)
        self.counters.preemptions += 1

    def _schedule_waiting(self, budget: int, scheduled: list[tuple[Sequence, int]]) -> None:
        kv = self.kv
        while self.waiting and len(self.running) < self.slots and budget > 0:
            seq = self.waiting[0]
            hit = kv.cached_prefix(seq.hashes, (seq.num_tokens - 1) // BLOCK_SIZE)
            cached = len(hit) * BLOCK_SIZE
            chunk = min(seq.num_tokens - cached, budget)
            need = blocks_for(cached + chunk) - len(hit)
            if not kv.can_allocate(hit, need):
                break  # the head blocks everything behind it, as in vLLM
            kv.touch(hit)
            seq.blocks = hit + kv.allocate(need)
            seq.num_computed = cached
            seq.published = len(hit)
            kv.record_lookup(seq.num_tokens, cached)
            self.waiting.popleft()
            seq.status = SeqStatus.RUNNING
            self.running.append(seq)
            scheduled.append((seq, chunk))
            budget -= chunk

    def _complete(self, scheduled: list[tuple[Sequence, int]], end: float) -> tuple[list[Sequence], list[Sequence]]:
        emitted: list[Sequence] = []
        finished: list[Sequence] = []
        kv = self.kv
        emit = emitted.append
        for seq, chunk in scheduled:
            computed = seq.num_computed + chunk
            seq.num_computed = computed
            if seq.published < len(seq.hashes):
                full = min(computed // BLOCK_SIZE, len(seq.hashes))
                while seq.published < full:
                    kv.publish(seq.blocks[seq.published], seq.hashes[seq.published])
                    seq.published += 1
            if computed >= seq.prompt_tokens + seq.num_output:
                seq.num_output += 1
                if seq.first_token_at is None:
                    seq.first_token_at = end
                emit(seq)
                if seq.num_output >= seq.target_output:
                    finished.append(seq)
        self.counters.generated_tokens += len(emitted)
        if finished:
            for seq in finished:
                kv.free(seq.blocks)
                seq.blocks = []
                seq.status = SeqStatus.FINISHED
                seq.finish_reason = seq.stop_reason
                self._count_finish(seq.stop_reason)
            self.counters.completed_requests += len(finished)
            self.running = [s for s in self.running if s.status is SeqStatus.RUNNING]
        return emitted, finished

    def _count_finish(self, reason: str) -> None:
        by = self.counters.finished_by_reason
        by[reason] = by.get(reason, 0) + 1

    def reset_counters(self) -> None:
        self.counters = Counters()
        self.kv.queries = 0
        self.kv.hits = 0
