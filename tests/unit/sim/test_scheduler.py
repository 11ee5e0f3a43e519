"""The pure timing model, on virtual time: step times, batching limits, prefix cache, KV pressure, aborts."""

from __future__ import annotations

import pytest

from tokenyard.sim.params import BLOCK_SIZE, PROFILES, SimParams
from tokenyard.sim.scheduler import Scheduler, SeqStatus, Sequence, step_time_ms
from tokenyard.sim.text import block_hashes, count_tokens


def params(**overrides: object) -> SimParams:
    base = SimParams(ttft_ms=0.0, itl_ms=10.0, load_factor=3.0, prefill_ms_per_token=0.5, max_num_seqs=5,
                     max_num_batched_tokens=1000, kv_blocks=1000, jitter=0.0, max_queue=100)
    return base.replace(**overrides)


def seq(i: int, prompt: int = 10, out: int = 5, hashes: list[int] | None = None, arrival: float = 0.0,
        frontend_s: float = 0.0) -> Sequence:
    return Sequence(i, prompt, out, hashes, arrival=arrival, frontend_s=frontend_s)


def run_until_done(s: Scheduler, limit: int = 10_000) -> float:
    now = 0.0
    for _ in range(limit):
        if not (s.running or s.waiting or s.frontend):
            return now
        now += s.step(now).duration_s
    raise AssertionError("did not finish")


def test_step_time_formula() -> None:
    p = params()
    assert step_time_ms(p, 0, 0) == 0.0
    assert step_time_ms(p, 1, 0) == pytest.approx(10.0)
    assert step_time_ms(p, 5, 0) == pytest.approx(30.0)  # itl * load_factor at max_num_seqs
    assert step_time_ms(p, 3, 0) == pytest.approx(20.0)  # linear in between
    assert step_time_ms(p, 1, 100) == pytest.approx(60.0)


def test_large_profile_matches_the_contract() -> None:
    large = PROFILES["large"]
    short_prompt = 30
    ttft = large.frontend_ms + step_time_ms(large, 1, short_prompt)
    assert 95 <= ttft <= 110  # "about 100 ms to first token for a short prompt at low load"
    assert step_time_ms(large, 1, 0) == pytest.approx(12.0)
    assert step_time_ms(large, 256, 0) > step_time_ms(large, 64, 0) > step_time_ms(large, 1, 0)
    assert large.max_num_seqs == 256


def test_ttft_and_itl_of_a_lone_request() -> None:
    p = params(ttft_ms=50.0)  # front end = 50 - 10 = 40 ms
    s = Scheduler(p)
    r = seq(1, prompt=20, out=3, frontend_s=p.frontend_ms / 1000)
    s.add(r)
    assert s.step(0.0).batch == 0  # still in the front end
    now = 0.040
    first = s.step(now)
    assert first.batch == 1 and first.prefill_tokens == 20
    assert first.duration_s == pytest.approx((10 + 20 * 0.5) / 1000)
    assert r.num_output == 1 and r.first_token_at == pytest.approx(now + first.duration_s)
    now += first.duration_s
    second = s.step(now)
    assert second.prefill_tokens == 0 and second.duration_s == pytest.approx(0.010)
    s.step(now + second.duration_s)
    assert r.status is SeqStatus.FINISHED and r.num_output == 3 and r.finish_reason == "length"
    assert s.counters.generated_tokens == 3 and s.counters.completed_requests == 1
    assert s.kv.free_blocks == p.kv_blocks


def test_max_num_seqs_and_token_budget_are_respected() -> None:
    s = Scheduler(params(max_num_seqs=3, max_num_batched_tokens=50))
    for i in range(6):
        s.add(seq(i, prompt=20, out=4))
    result = s.step(0.0)
    # 50-token budget: two full 20-token prefills and a 10-token chunk of the third.
    assert result.batch == 3 and result.prefill_tokens == 50 and result.tokens == 50
    assert [r.num_computed for r in s.running] == [20, 20, 10]
    assert s.running[2].num_output == 0  # a partial (chunked) prefill samples nothing
    assert len(s.waiting) == 3
    for _ in range(30):
        result = s.step(0.0)
        assert len(s.running) <= 3
        assert result.tokens <= 50
    run_until_done(s)
    assert s.counters.completed_requests == 6


def test_fcfs_preempts_the_newest_and_admits_nothing_that_step() -> None:
    # 4 blocks: two sequences of 16-token prompts fill 2 blocks; decoding past 32 tokens needs more.
    s = Scheduler(params(kv_blocks=4, max_num_seqs=4))
    a, b = seq(1, prompt=16, out=40), seq(2, prompt=16, out=40)
    s.add(a)
    s.add(b)
    s.step(0.0)
    assert len(s.running) == 2
    late = seq(3, prompt=5, out=1)
    s.add(late)
    preempted_seen = False
    for _ in range(40):
        result = s.step(0.0)
        if result.preempted:
            preempted_seen = True
            assert result.preempted[0] is b  # the newest running sequence
            assert b.status is SeqStatus.WAITING and b.num_computed == 0 and s.waiting[0] is b
            assert late.status is not SeqStatus.RUNNING  # nothing admitted in a step that preempted
            break
    assert preempted_seen and s.counters.preemptions >= 1
    run_until_done(s)
    assert a.num_output == 40 and b.num_output == 40 and late.num_output == 1
    assert s.kv.free_blocks == 4


@pytest.mark.parametrize("chars", [64, 65, 200, 640, 1000])
def test_prefix_hit_is_floor_n_minus_1_over_16_blocks(chars: int) -> None:
    text = "z" * chars
    n = count_tokens(text)
    s = Scheduler(params())
    first = seq(1, prompt=n, out=1, hashes=block_hashes(text))
    s.add(first)
    run_until_done(s)
    queries, hits = s.kv.queries, s.kv.hits
    again = seq(2, prompt=n, out=1, hashes=block_hashes(text))
    s.add(again)
    result = s.step(0.0)
    assert s.kv.queries - queries == n
    assert s.kv.hits - hits == ((n - 1) // BLOCK_SIZE) * BLOCK_SIZE
    assert result.prefill_tokens == n - ((n - 1) // BLOCK_SIZE) * BLOCK_SIZE


def test_salt_separates_prefix_caches() -> None:
    s = Scheduler(params())
    text = "q" * 640
    s.add(seq(1, prompt=count_tokens(text), out=1, hashes=block_hashes(text, "tenant-a")))
    run_until_done(s)
    s.add(seq(2, prompt=count_tokens(text), out=1, hashes=block_hashes(text, "tenant-b")))
    s.step(0.0)
    assert s.kv.hits == 0


def test_lru_evicts_least_recently_freed_and_last_blocks_first() -> None:
    # 6 blocks. A (3 blocks) finishes, then B (3 blocks) finishes; C needs 2 fresh blocks.
    s = Scheduler(params(kv_blocks=6))
    text_a, text_b = "a" * 48 * 4, "b" * 48 * 4
    ha, hb = block_hashes(text_a), block_hashes(text_b)
    for i, (text, h) in enumerate(((text_a, ha), (text_b, hb))):
        s.add(seq(i, prompt=count_tokens(text) - 1, out=1, hashes=h))  # 47 tokens -> 3 blocks, 2 full + 1 partial
        run_until_done(s)
    assert all(s.kv.is_cached(h) for h in ha[:2] + hb[:2])
    s.add(seq(9, prompt=32, out=1))  # no hashes: 2 new blocks, taken from the LRU head
    s.step(0.0)
    # A's blocks were freed first and in reverse order: A's partial block, then A's second block go first.
    assert s.kv.is_cached(ha[0]) and not s.kv.is_cached(ha[1])
    assert all(s.kv.is_cached(h) for h in hb[:2])


@pytest.mark.parametrize("phase", ["frontend", "waiting", "prefill", "decoding"])
def test_abort_frees_blocks_within_one_step(phase: str) -> None:
    p = params(max_num_seqs=1, max_num_batched_tokens=40)
    s = Scheduler(p)
    blocker = seq(1, prompt=16, out=1000)
    target = seq(2, prompt=100, out=50, frontend_s=1.0 if phase == "frontend" else 0.0)
    if phase == "waiting":
        s.add(blocker)
        s.step(0.0)
    s.add(target)
    now = 0.0
    if phase in ("prefill", "decoding"):
        s.step(now)  # 40 of 100 prompt tokens
        assert target.status is SeqStatus.RUNNING and target.num_output == 0
        if phase == "decoding":
            for _ in range(5):
                s.step(now)
            assert target.num_output > 0
    if phase == "waiting":
        s.step(now)
        assert target.status is SeqStatus.WAITING
    generated = s.counters.generated_tokens
    s.abort(target)
    result = s.step(now)
    assert target in result.aborted and target.status is SeqStatus.ABORTED and target.blocks == []
    assert target not in s.running and target not in s.waiting
    assert s.counters.aborted_requests == 1 and s.counters.finished_by_reason == {"abort": 1}
    used_by_blocker = len(blocker.blocks)
    assert s.kv.free_blocks == p.kv_blocks - used_by_blocker
    s.step(now)
    assert s.counters.generated_tokens - generated <= (1 if phase == "waiting" else 0) + 1


def test_queue_bound_and_request_checks() -> None:
    s = Scheduler(params(max_queue=2, max_model_len=100, kv_blocks=5))
    assert s.add(seq(1)) and s.add(seq(2))
    assert not s.add(seq(3))
    assert s.counters.rejected_requests == 1
    assert s.check(90, 20) is not None  # longer than the model
    assert s.check(70, 20) is not None  # needs 6 blocks of 5
    assert s.check(40, 20) is None


def test_load_factor_slows_steps_as_the_batch_fills() -> None:
    s = Scheduler(params(max_num_seqs=5, prefill_ms_per_token=0.0))
    durations = []
    for i in range(5):
        s.add(seq(i, prompt=4, out=100))
        durations.append(s.step(0.0).duration_s)
    assert durations == sorted(durations) and durations[-1] == pytest.approx(0.030)


def test_jitter_is_seeded() -> None:
    def trace(seed: int) -> list[float]:
        s = Scheduler(params(jitter=0.2, seed=seed))
        s.add(seq(1, out=20))
        return [s.step(0.0).duration_s for _ in range(20)]

    assert trace(1) == trace(1) != trace(2)
    assert all(0.008 <= d <= 0.012 for d in trace(1)[1:])
