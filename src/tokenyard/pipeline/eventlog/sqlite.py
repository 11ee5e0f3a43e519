"""The embedded EventLog: one SQLite file in WAL mode, same semantics as Redis Streams.

All SQL runs on one dedicated thread with one connection (sqlite3 objects are not shared across threads), so
the event loop never blocks on disk. Every operation is one ``BEGIN IMMEDIATE`` transaction, which makes
claims atomic even when several worker processes on one machine share the file. Ids are ``<ms>-<seq>`` from the
wall clock, kept strictly increasing per stream (the last id is remembered even after trimming).
Blocking reads wake at once on appends from this process and poll every 50 ms for other processes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import msgspec

from tokenyard.pipeline.eventlog.base import (
    DEAD_DELIVERIES,
    DEAD_GROUP,
    DEAD_ID,
    DEAD_REASON,
    Entry,
    EventLogUnavailable,
    GroupInfo,
    GroupNotFound,
    PendingEntry,
    dead_stream,
)
from tokenyard.pipeline.eventlog.ids import StreamId, format_id, lower_bound, parse_id, upper_bound

T = TypeVar("T")
_POLL_S = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (name TEXT PRIMARY KEY, last_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    stream TEXT NOT NULL, ms INTEGER NOT NULL, seq INTEGER NOT NULL, fields TEXT NOT NULL,
    PRIMARY KEY (stream, ms, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    stream TEXT NOT NULL, name TEXT NOT NULL, last_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (stream, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
    stream TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (stream, grp, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe (
    stream TEXT NOT NULL, key TEXT NOT NULL, ms INTEGER NOT NULL, seq INTEGER NOT NULL, expires_ms INTEGER,
    PRIMARY KEY (stream, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    stream TEXT NOT NULL, grp TEXT NOT NULL, ms INTEGER NOT NULL, seq INTEGER NOT NULL, consumer TEXT NOT NULL,
    delivered_ms INTEGER NOT NULL, deliveries INTEGER NOT NULL,
    PRIMARY KEY (stream, grp, ms, seq)) WITHOUT ROWID;
"""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _dumps(fields: Mapping[str, str]) -> str:
    """An entry's fields as stored: JSON text (msgspec: UTF-8 as is, where ``json.dumps`` escaped it; both read
    back the same). Strings msgspec refuses (lone surrogates) go through ``json.dumps``."""
    try:
        return _encode(fields).decode()
    except (TypeError, UnicodeEncodeError, msgspec.EncodeError):
        return json.dumps(dict(fields), separators=(",", ":"))


def _loads(text: str) -> Any:
    try:
        return _decode(text)
    except msgspec.DecodeError:  # e.g. an escaped lone surrogate, which only Python's parser takes
        return json.loads(text)


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqliteEventLog:
    """EventLog on one SQLite database file (``":memory:"`` for a private, process-local log)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenyard-sqlite-log")
        self._db: sqlite3.Connection | None = None
        self._appended = asyncio.Event()

    # -- plumbing -------------------------------------------------------------------------------------------
    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._in_transaction, fn)

    def _in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10.0)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; WAL fsyncs at checkpoints
                db.executescript(_SCHEMA)
            except sqlite3.Error as exc:  # a missing directory, not a database: the log cannot be used at all
                raise EventLogUnavailable(f"cannot open the SQLite event log {self._path}: {exc}") from exc
            self._db = db
        return self._db

    def _wake_readers(self) -> None:
        event, self._appended = self._appended, asyncio.Event()
        event.set()

    # -- writing --------------------------------------------------------------------------------------------
    async def append(self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None) -> str:
        payload = _dumps(fields)
        entry_id = await self._call(lambda db: format_id(*_append(db, stream, payload, maxlen)))
        self._wake_readers()
        return entry_id

    async def append_many(self, stream: str, records: Sequence[Mapping[str, str]]) -> list[str]:
        if not records:
            return []
        payloads = [_dumps(fields) for fields in records]
        ids = await self._call(lambda db: [format_id(*i) for i in _append_many(db, stream, payloads)])
        self._wake_readers()
        return ids

    async def append_once(
        self, stream: str, dedupe_key: str, fields: Mapping[str, str], *, maxlen: int | None = None,
        ttl_s: float | None = None,
    ) -> tuple[str, bool]:
        payload = json.dumps(dict(fields), separators=(",", ":"))

        def append_once(db: sqlite3.Connection) -> tuple[str, bool]:
            now = _now_ms()
            row = db.execute("SELECT ms, seq, expires_ms FROM dedupe WHERE stream = ? AND key = ?",
                             (stream, dedupe_key)).fetchone()
            if row is not None and (row[2] is None or row[2] > now):
                return format_id(row[0], row[1]), False
            new = _append(db, stream, payload, maxlen)
            expires = None if ttl_s is None else now + max(1, int(ttl_s * 1000))
            db.execute("INSERT OR REPLACE INTO dedupe VALUES (?, ?, ?, ?, ?)", (stream, dedupe_key, *new, expires))
            return format_id(*new), True

        result = await self._call(append_once)
        if result[1]:
            self._wake_readers()
        return result

    async def create_group(self, stream: str, group: str, start_id: str = "0") -> bool:
        def create(db: sqlite3.Connection) -> bool:
            last = _ensure_stream(db, stream)
            start = last if start_id == "$" else parse_id(start_id)
            cursor = db.execute("INSERT OR IGNORE INTO groups VALUES (?, ?, ?, ?)", (stream, group, *start))
            return cursor.rowcount == 1

        return await self._call(create)

    # -- consuming ------------------------------------------------------------------------------------------
    async def read_group(
        self, stream: str, group: str, consumer: str, *, count: int = 10, block_s: float | None = None
    ) -> list[Entry]:
        return await self._blocking(lambda db: _read_new(db, stream, group, consumer, count), block_s)

    async def read_after(
        self, stream: str, after: str = "0-0", *, count: int = 100, block_s: float | None = None
    ) -> list[Entry]:
        start = await self._call(lambda db: _ensure_stream(db, stream)) if after == "$" else parse_id(after)
        return await self._blocking(lambda db: _read_after(db, stream, start, count), block_s)

    async def _blocking(self, read: Callable[[sqlite3.Connection], list[Entry]], block_s: float | None) -> list[Entry]:
        """Run ``read``; with ``block_s``, again on every append here (and every 50 ms) until it finds entries."""
        deadline = time.monotonic() + (block_s or 0.0)
        while True:
            woken = self._appended
            entries = await self._call(read)
            remaining = deadline - time.monotonic()
            if entries or block_s is None or remaining <= 0:
                return entries
            try:
                async with asyncio.timeout(min(_POLL_S, remaining)):
                    await woken.wait()
            except TimeoutError:
                pass  # poll: another process may have appended

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        keys = [(stream, group, *parse_id(i)) for i in ids]

        def ack(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.executemany("DELETE FROM pending WHERE stream = ? AND grp = ? AND ms = ? AND seq = ?", keys)
            return db.total_changes - before

        return await self._call(ack)

    async def pending(
        self, stream: str, group: str, *, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        def query(db: sqlite3.Connection) -> list[PendingEntry]:
            now = _now_ms()
            rows = db.execute(
                "SELECT ms, seq, consumer, delivered_ms, deliveries FROM pending WHERE stream = ? AND grp = ?"
                " AND (? IS NULL OR consumer = ?) ORDER BY ms, seq LIMIT ?",
                (stream, group, consumer, consumer, count)).fetchall()
            return [PendingEntry(format_id(ms, seq), who, max(0, now - at) / 1000, n) for ms, seq, who, at, n in rows]

        return await self._call(query)

    async def claim_idle(
        self, stream: str, group: str, consumer: str, min_idle_s: float, *, count: int = 10,
        max_deliveries: int | None = None,
    ) -> list[Entry]:
        min_idle_ms = int(min_idle_s * 1000)
        return await self._call(lambda db: _claim(db, stream, group, consumer, min_idle_ms, count, max_deliveries))

    async def touch(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> int:
        keys = [parse_id(i) for i in ids]

        def touch(db: sqlite3.Connection) -> int:
            now, before = _now_ms(), db.total_changes
            db.executemany("UPDATE pending SET delivered_ms = ? WHERE stream = ? AND grp = ? AND ms = ? AND seq = ?"
                           " AND consumer = ?", [(now, stream, group, *key, consumer) for key in keys])
            return db.total_changes - before

        return await self._call(touch) if keys else 0

    async def dead_letter(self, stream: str, group: str, entry_id: str, reason: str = "") -> bool:
        key = parse_id(entry_id)

        def move(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT deliveries FROM pending WHERE stream = ? AND grp = ? AND ms = ? AND seq = ?",
                             (stream, group, *key)).fetchone()
            if row is None:
                return False
            _move_to_dead(db, stream, group, key, int(row[0]), reason)
            return True

        moved = await self._call(move)
        self._wake_readers()
        return moved

    # -- reading --------------------------------------------------------------------------------------------
    async def read_range(
        self, stream: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[Entry]:
        low, low_inclusive = lower_bound(start)
        high, high_inclusive = upper_bound(end)
        sql = ("SELECT ms, seq, fields FROM entries WHERE stream = ?"
               f" AND (ms, seq) {'>=' if low_inclusive else '>'} (?, ?)"
               f" AND (ms, seq) {'<=' if high_inclusive else '<'} (?, ?) ORDER BY ms, seq LIMIT ?")
        limit = -1 if count is None else count

        def query(db: sqlite3.Connection) -> list[Entry]:
            rows = db.execute(sql, (stream, *low, *high, limit)).fetchall()
            return [Entry(format_id(ms, seq), _loads(fields), 0) for ms, seq, fields in rows]

        return await self._call(query)

    async def length(self, stream: str) -> int:
        return await self._call(
            lambda db: int(db.execute("SELECT count(*) FROM entries WHERE stream = ?", (stream,)).fetchone()[0]))

    async def group_info(self, stream: str, group: str) -> GroupInfo:
        def query(db: sqlite3.Connection) -> GroupInfo:
            last = _group_last(db, stream, group)
            pending = db.execute("SELECT count(*) FROM pending WHERE stream = ? AND grp = ?", (stream, group))
            lag = db.execute("SELECT count(*) FROM entries WHERE stream = ? AND (ms, seq) > (?, ?)", (stream, *last))
            consumers = db.execute("SELECT count(*) FROM consumers WHERE stream = ? AND grp = ?", (stream, group))
            return GroupInfo(int(pending.fetchone()[0]), int(lag.fetchone()[0]), format_id(*last),
                             int(consumers.fetchone()[0]))

        return await self._call(query)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)


# -- SQL helpers, run on the log's thread inside a transaction ------------------------------------------------
def _ensure_stream(db: sqlite3.Connection, stream: str) -> StreamId:
    row = db.execute("SELECT last_ms, last_seq FROM streams WHERE name = ?", (stream,)).fetchone()
    if row is None:
        db.execute("INSERT INTO streams VALUES (?, 0, 0)", (stream,))
        return (0, 0)
    return (int(row[0]), int(row[1]))


def _append(db: sqlite3.Connection, stream: str, payload: str, maxlen: int | None) -> StreamId:
    last_ms, last_seq = _ensure_stream(db, stream)
    now = _now_ms()
    new = (now, 0) if now > last_ms else (last_ms, last_seq + 1)  # never goes back, even if the clock does
    db.execute("UPDATE streams SET last_ms = ?, last_seq = ? WHERE name = ?", (*new, stream))
    db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (stream, *new, payload))
    if maxlen is not None:
        db.execute(
            "DELETE FROM entries WHERE stream = ? AND (ms, seq) < (SELECT ms, seq FROM entries WHERE stream = ?"
            " ORDER BY ms DESC, seq DESC LIMIT 1 OFFSET ?)", (stream, stream, max(0, maxlen - 1)))
    return new


def _append_many(db: sqlite3.Connection, stream: str, payloads: list[str]) -> list[StreamId]:
    """``_append`` for several entries with three statements in all (not three per entry): consecutive ids
    after the stream's last, from one reading of the clock."""
    last_ms, last_seq = _ensure_stream(db, stream)
    now = _now_ms()
    ms, seq = (now, 0) if now > last_ms else (last_ms, last_seq + 1)
    ids = [(ms, seq + i) for i in range(len(payloads))]
    db.execute("UPDATE streams SET last_ms = ?, last_seq = ? WHERE name = ?", (*ids[-1], stream))
    db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)",
                   [(stream, i_ms, i_seq, payload) for (i_ms, i_seq), payload in zip(ids, payloads, strict=True)])
    return ids


def _group_last(db: sqlite3.Connection, stream: str, group: str) -> StreamId:
    row = db.execute("SELECT last_ms, last_seq FROM groups WHERE stream = ? AND name = ?", (stream, group)).fetchone()
    if row is None:
        raise GroupNotFound(f"no consumer group {group!r} on stream {stream!r}")
    return (int(row[0]), int(row[1]))


def _read_after(db: sqlite3.Connection, stream: str, after: StreamId, count: int) -> list[Entry]:
    rows = db.execute("SELECT ms, seq, fields FROM entries WHERE stream = ? AND (ms, seq) > (?, ?)"
                      " ORDER BY ms, seq LIMIT ?", (stream, *after, count)).fetchall()
    return [Entry(format_id(ms, seq), _loads(fields), 0) for ms, seq, fields in rows]


def _read_new(db: sqlite3.Connection, stream: str, group: str, consumer: str, count: int) -> list[Entry]:
    last = _group_last(db, stream, group)
    db.execute("INSERT OR IGNORE INTO consumers VALUES (?, ?, ?)", (stream, group, consumer))
    rows = db.execute("SELECT ms, seq, fields FROM entries WHERE stream = ? AND (ms, seq) > (?, ?)"
                      " ORDER BY ms, seq LIMIT ?", (stream, *last, count)).fetchall()
    if not rows:
        return []
    now = _now_ms()
    db.executemany("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, 1)",
                   [(stream, group, ms, seq, consumer, now) for ms, seq, _ in rows])
    db.execute("UPDATE groups SET last_ms = ?, last_seq = ? WHERE stream = ? AND name = ?",
               (rows[-1][0], rows[-1][1], stream, group))
    return [Entry(format_id(ms, seq), _loads(fields), 1) for ms, seq, fields in rows]


def _claim(db: sqlite3.Connection, stream: str, group: str, consumer: str, min_idle_ms: int, count: int,
           max_deliveries: int | None) -> list[Entry]:
    _group_last(db, stream, group)
    now = _now_ms()
    rows = db.execute("SELECT ms, seq, deliveries FROM pending WHERE stream = ? AND grp = ? AND delivered_ms <= ?"
                      " ORDER BY ms, seq LIMIT ?", (stream, group, now - min_idle_ms, count)).fetchall()
    claimed: list[Entry] = []
    for ms, seq, deliveries in rows:
        key = (int(ms), int(seq))
        entry = db.execute("SELECT fields FROM entries WHERE stream = ? AND ms = ? AND seq = ?",
                           (stream, *key)).fetchone()
        if entry is None:  # trimmed away meanwhile: nothing left to deliver
            db.execute("DELETE FROM pending WHERE stream = ? AND grp = ? AND ms = ? AND seq = ?", (stream, group, *key))
        elif max_deliveries is not None and deliveries >= max_deliveries:
            _move_to_dead(db, stream, group, key, int(deliveries), f"delivered {deliveries} times without ack")
        else:
            db.execute("UPDATE pending SET consumer = ?, delivered_ms = ?, deliveries = deliveries + 1"
                       " WHERE stream = ? AND grp = ? AND ms = ? AND seq = ?", (consumer, now, stream, group, *key))
            claimed.append(Entry(format_id(*key), json.loads(entry[0]), int(deliveries) + 1))
    if claimed:
        db.execute("INSERT OR IGNORE INTO consumers VALUES (?, ?, ?)", (stream, group, consumer))
    return claimed


def _move_to_dead(db: sqlite3.Connection, stream: str, group: str, key: StreamId, deliveries: int,
                  reason: str) -> None:
    row = db.execute("SELECT fields FROM entries WHERE stream = ? AND ms = ? AND seq = ?", (stream, *key)).fetchone()
    fields = json.loads(row[0]) if row is not None else {}
    fields.update({DEAD_ID: format_id(*key), DEAD_GROUP: group, DEAD_DELIVERIES: str(deliveries), DEAD_REASON: reason})
    _append(db, dead_stream(stream), json.dumps(fields, separators=(",", ":")), None)
    db.execute("DELETE FROM pending WHERE stream = ? AND grp = ? AND ms = ? AND seq = ?", (stream, group, *key))
