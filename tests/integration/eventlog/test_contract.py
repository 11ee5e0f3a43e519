"""The EventLog contract: every test runs on the SQLite (WAL) log and on Redis Streams (real redis-server)."""

from __future__ import annotations

import asyncio

import pytest

from tokenyard.pipeline.eventlog import EventLog, GroupNotFound, dead_stream
from tokenyard.pipeline.eventlog.ids import parse_id

IDLE = 0.2  # min-idle for claims; tests sleep IDLE_WAIT so the pending entries are surely idle
IDLE_WAIT = 0.35


async def _fill(log: EventLog, n: int, stream: str = "s") -> list[str]:
    return [await log.append(stream, {"n": str(i), "text": f"event {i}"}) for i in range(n)]


async def test_ids_increase_and_range_replays_in_order(log: EventLog) -> None:
    ids = await _fill(log, 5)
    assert [parse_id(i) for i in ids] == sorted(parse_id(i) for i in ids)
    assert len(set(ids)) == 5
    everything = await log.read_range("s")
    assert [e.id for e in everything] == ids
    assert everything[2].fields == {"n": "2", "text": "event 2"} and everything[2].deliveries == 0
    assert [e.id for e in await log.read_range("s", ids[1], ids[3])] == ids[1:4]
    assert [e.id for e in await log.read_range("s", f"({ids[1]}", f"({ids[3]}")] == [ids[2]]
    assert [e.id for e in await log.read_range("s", ids[2], count=2)] == ids[2:4]
    assert await log.length("s") == 5
    assert await log.length("missing") == 0
    assert await log.read_range("missing") == []


async def test_maxlen_keeps_the_newest_entries(log: EventLog) -> None:
    ids = [await log.append("s", {"n": str(i)}, maxlen=3) for i in range(6)]
    assert await log.length("s") == 3
    assert [e.id for e in await log.read_range("s")] == ids[3:]
    assert parse_id(await log.append("s", {"n": "6"}, maxlen=3)) > parse_id(ids[-1])


async def test_groups_are_created_once_and_start_where_asked(log: EventLog) -> None:
    old = await _fill(log, 2)
    assert await log.create_group("s", "all", "0")
    assert not await log.create_group("s", "all", "0")
    assert await log.create_group("s", "new", "$")
    fresh = await log.append("s", {"n": "fresh"})
    assert [e.id for e in await log.read_group("s", "all", "c", count=10)] == [*old, fresh]
    assert [e.id for e in await log.read_group("s", "new", "c", count=10)] == [fresh]
    assert await log.create_group("empty", "g", "$")  # creates the stream
    assert await log.read_group("empty", "g", "c") == []
    with pytest.raises(GroupNotFound):
        await log.read_group("s", "nope", "c")
    with pytest.raises(GroupNotFound):
        await log.group_info("s", "nope")


async def test_a_group_hands_each_entry_to_one_consumer_until_acked(log: EventLog) -> None:
    ids = await _fill(log, 6)
    await log.create_group("s", "g")
    a = await log.read_group("s", "g", "a", count=4)
    b = await log.read_group("s", "g", "b", count=4)
    assert [e.id for e in a] == ids[:4] and [e.id for e in b] == ids[4:]
    assert all(e.deliveries == 1 for e in a + b)
    assert a[0].fields == {"n": "0", "text": "event 0"}
    assert await log.read_group("s", "g", "a") == []
    pending = await log.pending("s", "g")
    assert [(p.id, p.consumer, p.deliveries) for p in pending] == [(i, "a" if n < 4 else "b", 1)
                                                                   for n, i in enumerate(ids)]
    assert [p.id for p in await log.pending("s", "g", consumer="b")] == ids[4:]
    assert await log.ack("s", "g", ids[:3]) == 3
    assert await log.ack("s", "g", ids[:3]) == 0
    assert [p.id for p in await log.pending("s", "g")] == ids[3:]
    info = await log.group_info("s", "g")
    assert (info.pending, info.lag, info.last_delivered_id, info.consumers) == (3, 0, ids[-1], 2)


async def test_lag_counts_entries_not_yet_delivered(log: EventLog) -> None:
    await log.create_group("s", "g")
    await _fill(log, 5)
    assert (await log.group_info("s", "g")).lag == 5
    await log.read_group("s", "g", "c", count=2)
    info = await log.group_info("s", "g")
    assert (info.lag, info.pending) == (3, 2)


async def test_blocking_read_wakes_on_append_and_times_out_empty(log: EventLog) -> None:
    await log.create_group("s", "g", "$")

    async def produce() -> str:
        await asyncio.sleep(0.2)
        return await log.append("s", {"n": "late"})

    producer = asyncio.create_task(produce())
    entries = await log.read_group("s", "g", "c", block_s=5)
    assert [e.id for e in entries] == [await producer]
    assert await log.read_group("s", "g", "c", block_s=0.1) == []


async def test_a_dead_consumers_entries_are_claimed_without_loss(log: EventLog) -> None:
    ids = await _fill(log, 4)
    await log.create_group("s", "g")
    taken = await log.read_group("s", "g", "doomed", count=4)
    await log.ack("s", "g", [taken[0].id])  # it finished one, then died holding three
    assert await log.claim_idle("s", "g", "rescuer", IDLE) == []  # not idle long enough yet
    await asyncio.sleep(IDLE_WAIT)
    claimed = await log.claim_idle("s", "g", "rescuer", IDLE, count=10)
    assert [e.id for e in claimed] == ids[1:]
    assert all(e.deliveries == 2 for e in claimed)
    assert claimed[0].fields == {"n": "1", "text": "event 1"}
    assert {p.consumer for p in await log.pending("s", "g")} == {"rescuer"}
    assert await log.claim_idle("s", "g", "thief", IDLE) == []  # just claimed: idle time reset
    assert await log.ack("s", "g", [e.id for e in claimed]) == 3
    assert (await log.group_info("s", "g")).pending == 0
    assert {taken[0].id, *(e.id for e in claimed)} == set(ids)  # every event processed, none twice acked


async def test_touch_keeps_a_live_consumers_entries_without_counting_a_delivery(log: EventLog) -> None:
    ids = await _fill(log, 3)
    await log.create_group("s", "g")
    await log.read_group("s", "g", "alive", count=2)
    await log.read_group("s", "g", "other", count=1)
    await asyncio.sleep(IDLE_WAIT)
    # Only its own pending entries are touched: not another consumer's, not an unknown one.
    assert await log.touch("s", "g", "alive", [*ids, "1-0"]) == 2
    assert await log.touch("s", "g", "alive", []) == 0
    claimed = await log.claim_idle("s", "g", "rescuer", IDLE, count=10)
    assert [e.id for e in claimed] == [ids[2]]
    rows = {p.id: p for p in await log.pending("s", "g")}
    assert rows[ids[0]].consumer == "alive" and rows[ids[0]].deliveries == 1
    assert rows[ids[1]].idle_s < IDLE


async def test_claim_respects_count(log: EventLog) -> None:
    ids = await _fill(log, 5)
    await log.create_group("s", "g")
    await log.read_group("s", "g", "doomed", count=5)
    await asyncio.sleep(IDLE_WAIT)
    first = await log.claim_idle("s", "g", "r", IDLE, count=2)
    second = await log.claim_idle("s", "g", "r2", IDLE, count=10)
    assert [e.id for e in first] == ids[:2] and [e.id for e in second] == ids[2:]


async def test_poison_event_is_dead_lettered_after_max_deliveries(log: EventLog) -> None:
    [poison, good] = await _fill(log, 2)
    await log.create_group("s", "g")
    await log.read_group("s", "g", "c1", count=2)
    await log.ack("s", "g", [good])
    deliveries = [1]
    for attempt in range(3):  # each worker that takes it crashes
        await asyncio.sleep(IDLE_WAIT)
        claimed = await log.claim_idle("s", "g", f"c{attempt + 2}", IDLE, max_deliveries=3)
        deliveries.extend(e.deliveries for e in claimed)
    assert deliveries == [1, 2, 3]  # the third claim found it delivered 3 times: dead-lettered instead
    assert await log.pending("s", "g") == []
    dead = await log.read_range(dead_stream("s"))
    assert len(dead) == 1
    assert dead[0].fields["n"] == "0" and dead[0].fields["text"] == "event 0"
    assert dead[0].fields["dead_letter.id"] == poison
    assert dead[0].fields["dead_letter.group"] == "g"
    assert dead[0].fields["dead_letter.deliveries"] == "3"
    assert await log.length("s") == 2  # the original stays in the log for replay


async def test_consumer_can_dead_letter_explicitly(log: EventLog) -> None:
    [entry_id] = await _fill(log, 1)
    await log.create_group("s", "g")
    await log.read_group("s", "g", "c")
    assert await log.dead_letter("s", "g", entry_id, reason="schema mismatch")
    assert not await log.dead_letter("s", "g", entry_id, reason="again")
    [dead] = await log.read_range(dead_stream("s"))
    assert dead.fields["dead_letter.reason"] == "schema mismatch"
    assert dead.fields["dead_letter.deliveries"] == "1"
    assert (await log.group_info("s", "g")).pending == 0


async def test_pending_entries_trimmed_away_are_dropped_on_claim(log: EventLog) -> None:
    await log.create_group("s", "g")
    await _fill(log, 2)
    await log.read_group("s", "g", "doomed", count=2)
    keep = [await log.append("s", {"n": str(i)}, maxlen=2) for i in range(2)]
    await asyncio.sleep(IDLE_WAIT)
    assert await log.claim_idle("s", "g", "r", IDLE) == []
    assert await log.pending("s", "g") == []
    assert [e.id for e in await log.read_group("s", "g", "r")] == keep


async def test_append_once_appends_one_entry_per_dedupe_key(log: EventLog) -> None:
    first, created = await log.append_once("results", "event-1", {"text": "answer"})
    assert created
    again, created_again = await log.append_once("results", "event-1", {"text": "answer, redelivered"})
    assert (again, created_again) == (first, False)
    other, created_other = await log.append_once("results", "event-2", {"text": "other"})
    assert created_other and parse_id(other) > parse_id(first)
    assert [e.fields["text"] for e in await log.read_range("results")] == ["answer", "other"]
    short, _ = await log.append_once("results", "event-3", {"text": "x"}, ttl_s=IDLE)
    await asyncio.sleep(IDLE_WAIT)
    later, created_later = await log.append_once("results", "event-3", {"text": "y"}, ttl_s=IDLE)
    assert created_later and later != short  # the dedupe record expired
    bounded = [await log.append_once("trimmed", f"k{i}", {"n": str(i)}, maxlen=2) for i in range(4)]
    assert [e.id for e in await log.read_range("trimmed")] == [i for i, _ in bounded[2:]]


async def test_read_after_follows_a_stream_without_a_group(log: EventLog) -> None:
    ids = await _fill(log, 3, stream="control")
    assert [e.id for e in await log.read_after("control")] == ids
    assert [e.id for e in await log.read_after("control", ids[0], count=1)] == ids[1:2]
    assert await log.read_after("control", ids[-1]) == []
    assert await log.read_after("control", "$", block_s=0.1) == []

    async def produce() -> str:
        await asyncio.sleep(0.2)
        return await log.append("control", {"op": "abort"})

    producer = asyncio.create_task(produce())
    followed = await log.read_after("control", ids[-1], block_s=5)
    assert [e.id for e in followed] == [await producer]
    assert followed[0].fields == {"op": "abort"} and followed[0].deliveries == 0
    assert [e.id for e in await log.read_after("control", ids[-1])] == [followed[0].id]  # readers all see it
