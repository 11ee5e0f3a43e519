"""``StreamLog`` on one SQLite file in WAL mode: the embedded default, shared by worker processes on one machine.

Every operation is one short transaction (``BEGIN IMMEDIATE`` where it reads and then writes, so two workers never
take the same entry). Blocking reads poll with a growing sleep (1 ms up to 20 ms) until ``block_ms`` passes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable

from tokenyard.pipeline.streams import Entry, id_seq

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, fields TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_stream ON entries (stream, seq);
CREATE TABLE IF NOT EXISTS groups (stream TEXT, grp TEXT, last_seq INTEGER NOT NULL, PRIMARY KEY (stream, grp));
CREATE TABLE IF NOT EXISTS pending (stream TEXT, grp TEXT, seq INTEGER, consumer TEXT NOT NULL,
    delivered_at REAL NOT NULL, deliveries INTEGER NOT NULL, PRIMARY KEY (stream, grp, seq));
CREATE TABLE IF NOT EXISTS dedupe (stream TEXT, key TEXT, seq INTEGER NOT NULL, PRIMARY KEY (stream, key));
"""


def _eid(seq: int) -> str:
    return f"{seq}-0"


class SqliteStreamLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- writes --------------------------------------------------------------------------------------------
    def _insert(self, stream: str, fields: dict[str, str]) -> int:
        cur = self._db.execute("INSERT INTO entries (stream, fields) VALUES (?, ?)", (stream, json.dumps(fields)))
        return int(cur.lastrowid or 0)

    async def append(self, stream: str, fields: dict[str, str], maxlen: int | None = None) -> str:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            seq = self._insert(stream, fields)
            if maxlen is not None:
                self._db.execute("DELETE FROM entries WHERE stream = ? AND seq <= ?", (stream, seq - maxlen))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return _eid(seq)

    async def append_once(self, stream: str, dedupe_key: str, fields: dict[str, str]) -> tuple[str, bool]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT seq FROM dedupe WHERE stream = ? AND key = ?",
                                   (stream, dedupe_key)).fetchone()
            if row is not None:
                self._db.execute("COMMIT")
                return _eid(row[0]), False
            seq = self._insert(stream, fields)
            self._db.execute("INSERT INTO dedupe (stream, key, seq) VALUES (?, ?, ?)", (stream, dedupe_key, seq))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return _eid(seq), True

    async def ensure_group(self, stream: str, group: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO groups (stream, grp, last_seq) VALUES (?, ?, 0)", (stream, group))

    # -- consumer groups -----------------------------------------------------------------------------------
    def _take_new(self, stream: str, group: str, consumer: str, count: int) -> list[Entry]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT last_seq FROM groups WHERE stream = ? AND grp = ?",
                                   (stream, group)).fetchone()
            if row is None:
                raise ValueError(f"no consumer group {group!r} on stream {stream!r}")
            rows = self._db.execute("SELECT seq, fields FROM entries WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
                                    (stream, row[0], count)).fetchall()
            if rows:
                now = time.time()
                self._db.execute("UPDATE groups SET last_seq = ? WHERE stream = ? AND grp = ?",
                                 (rows[-1][0], stream, group))
                self._db.executemany(
                    "INSERT OR REPLACE INTO pending (stream, grp, seq, consumer, delivered_at, deliveries) "
                    "VALUES (?, ?, ?, ?, ?, 1)", [(stream, group, seq, consumer, now) for seq, _ in rows])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return [Entry(_eid(seq), json.loads(f)) for seq, f in rows]

    async def read_group(self, stream: str, group: str, consumer: str, count: int, block_ms: int) -> list[Entry]:
        return await self._poll(lambda: self._take_new(stream, group, consumer, count), block_ms)

    async def ack(self, stream: str, group: str, ids: list[str]) -> None:
        if ids:
            self._db.executemany("DELETE FROM pending WHERE stream = ? AND grp = ? AND seq = ?",
                                 [(stream, group, id_seq(i)[0]) for i in ids])

    async def claim_idle(self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute(
                "SELECT p.seq, p.deliveries, e.fields FROM pending p LEFT JOIN entries e ON e.seq = p.seq "
                "WHERE p.stream = ? AND p.grp = ? AND p.delivered_at <= ? ORDER BY p.seq LIMIT ?",
                (stream, group, now - min_idle_ms / 1000.0, count)).fetchall()
            gone = [(stream, group, seq) for seq, _, f in rows if f is None]  # trimmed away: drop, like XAUTOCLAIM
            self._db.executemany("DELETE FROM pending WHERE stream = ? AND grp = ? AND seq = ?", gone)
            self._db.executemany(
                "UPDATE pending SET consumer = ?, delivered_at = ?, deliveries = deliveries + 1 "
                "WHERE stream = ? AND grp = ? AND seq = ?",
                [(consumer, now, stream, group, seq) for seq, _, f in rows if f is not None])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return [Entry(_eid(seq), json.loads(f), n + 1) for seq, n, f in rows if f is not None]

    # -- plain reads ---------------------------------------------------------------------------------------
    async def read_range(self, stream: str, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        lo = 0 if start == "-" else id_seq(start)[0]
        hi = 2**62 if end == "+" else id_seq(end)[0]
        rows = self._db.execute("SELECT seq, fields FROM entries WHERE stream = ? AND seq BETWEEN ? AND ? "
                                "ORDER BY seq LIMIT ?", (stream, lo, hi, count if count is not None else -1))
        return [Entry(_eid(seq), json.loads(f)) for seq, f in rows.fetchall()]

    async def read_after(self, stream: str, after_id: str, count: int, block_ms: int) -> list[Entry]:
        after = 2**62 if after_id == "$" else id_seq(after_id)[0]
        if after_id == "$":
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM entries WHERE stream = ?", (stream,)).fetchone()
            after = int(row[0])

        def take() -> list[Entry]:
            rows = self._db.execute("SELECT seq, fields FROM entries WHERE stream = ? AND seq > ? ORDER BY seq "
                                    "LIMIT ?", (stream, after, count)).fetchall()
            return [Entry(_eid(seq), json.loads(f)) for seq, f in rows]

        return await self._poll(take, block_ms)

    async def lag(self, stream: str, group: str) -> int:
        row = self._db.execute("SELECT last_seq FROM groups WHERE stream = ? AND grp = ?", (stream, group)).fetchone()
        last = row[0] if row is not None else 0
        undelivered = self._db.execute("SELECT COUNT(*) FROM entries WHERE stream = ? AND seq > ?",
                                       (stream, last)).fetchone()[0]
        pending = self._db.execute("SELECT COUNT(*) FROM pending WHERE stream = ? AND grp = ?",
                                   (stream, group)).fetchone()[0]
        return int(undelivered) + int(pending)

    async def length(self, stream: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries WHERE stream = ?", (stream,)).fetchone()[0])

    async def close(self) -> None:
        self._db.close()

    @staticmethod
    async def _poll(take: Callable[[], list[Entry]], block_ms: int) -> list[Entry]:
        deadline = time.monotonic() + block_ms / 1000.0
        pause = 0.001
        while True:
            found: list[Entry] = take()
            if found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.02)
