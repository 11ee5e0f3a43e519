"""EventLog on Redis Streams: consumer groups shared by workers on several machines.

Plain commands where Redis already has the semantics (XADD, XGROUP CREATE, XREADGROUP, XACK, XPENDING, XRANGE);
claiming with dead-lettering and explicit dead-lettering are Lua scripts (``claim.lua``, ``dead_letter.lua``)
so that two workers never both claim or both dead-letter an entry. The two hot-path batch calls are scripts too,
for the client's CPU: ``read_group`` gets its entries as one JSON string (``read_group.lua``; decoded by msgspec
instead of redis-py's pure-Python parser walking every field) and ``append_many`` sends one JSON argument
(``append_many.lua``) instead of packing each field of each entry as a separate protocol argument. Stream names
are used as given (no prefix), so external producers and consumers can share them.

Each call is bounded by ``timeout_s`` (blocking reads by ``block_s + timeout_s``); transport failures raise
``EventLogUnavailable``; the connection pool reconnects on the next call after Redis restarts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Mapping, Sequence
from importlib import resources
from typing import Any

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tokenyard.pipeline.eventlog.base import (
    DEAD_DELIVERIES,
    DEAD_GROUP,
    DEAD_ID,
    DEAD_REASON,
    DEDUPE_INFIX,
    Entry,
    EventLogUnavailable,
    GroupInfo,
    GroupNotFound,
    PendingEntry,
    dead_stream,
)

DEFAULT_TIMEOUT_S = 1.0
TOUCH_BATCH = 500  # ids per touch.lua call
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_DEAD_FIELDS = (DEAD_ID, DEAD_GROUP, DEAD_DELIVERIES, DEAD_REASON)
# read_group.lua's reply: [[id, [field, value, ...]], ...] (cjson writes an empty table as an object).
_decode_entries = msgspec.json.Decoder(list[tuple[str, list[str] | dict[str, str]]]).decode
_encode = msgspec.json.Encoder().encode


def _load_script(name: str) -> str:
    return resources.files("tokenyard.pipeline.eventlog").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _fields(raw: Any) -> dict[str, str]:
    """Field lists come back as dicts (XRANGE, XREADGROUP) or flat lists (Lua scripts)."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    items = list(raw)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items), 2)}


class RedisStreamsEventLog:
    """EventLog on one Redis. Build with ``open_event_log("redis://...")`` or ``from_url``."""

    def __init__(self, client: Redis, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._claim = client.register_script(_load_script("claim"))
        self._dead_letter = client.register_script(_load_script("dead_letter"))
        self._append_once = client.register_script(_load_script("append_once"))
        self._read_batch = client.register_script(_load_script("read_group"))
        self._append_batch = client.register_script(_load_script("append_many"))
        self._touch = client.register_script(_load_script("touch"))

    @classmethod
    def from_url(
        cls, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, max_connections: int = 64
    ) -> RedisStreamsEventLog:
        # No socket timeout: blocking reads legitimately wait; every call is bounded by asyncio.timeout instead.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=None, decode_responses=True,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        return cls(Redis.from_pool(pool), timeout_s=timeout_s)

    async def _run(self, awaitable: Awaitable[Any], what: str, extra_s: float = 0.0) -> Any:
        # Any: redis-py's reply types are unions that the parsing below narrows by shape.
        try:
            async with asyncio.timeout(self._timeout_s + extra_s):
                return await awaitable
        except _UNAVAILABLE as exc:
            raise EventLogUnavailable(f"redis unavailable ({what}): {exc!r}") from exc
        except ResponseError as exc:
            if str(exc).startswith("NOGROUP") or "no such key" in str(exc):
                raise GroupNotFound(str(exc)) from exc
            raise

    async def append(self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None) -> str:
        payload: dict[Any, Any] = dict(fields)
        return str(await self._run(self._client.xadd(stream, payload, maxlen=maxlen, approximate=False), "append"))

    async def append_many(self, stream: str, records: Sequence[Mapping[str, str]]) -> list[str]:
        if not records:
            return []
        payload = _encode([list(itertools.chain.from_iterable(fields.items())) for fields in records])
        return [str(i) for i in await self._run(self._append_batch(keys=[stream], args=[payload]), "append_many")]

    async def append_once(
        self, stream: str, dedupe_key: str, fields: Mapping[str, str], *, maxlen: int | None = None,
        ttl_s: float | None = None,
    ) -> tuple[str, bool]:
        args: list[Any] = ["" if ttl_s is None else max(1, int(ttl_s * 1000)), "" if maxlen is None else maxlen]
        for name, value in fields.items():
            args += [name, value]
        entry_id, appended = await self._run(self._append_once(
            keys=[stream, stream + DEDUPE_INFIX + dedupe_key], args=args), "append_once")
        return str(entry_id), bool(appended)

    async def create_group(self, stream: str, group: str, start_id: str = "0") -> bool:
        try:
            await self._run(self._client.xgroup_create(stream, group, id=start_id, mkstream=True), "create_group")
        except ResponseError as exc:
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise
        return True

    async def read_group(
        self, stream: str, group: str, consumer: str, *, count: int = 10, block_s: float | None = None
    ) -> list[Entry]:
        # What is there already comes back as one JSON string; only an empty stream costs a blocking read.
        raw = await self._run(self._read_batch(keys=[stream], args=[group, consumer, count]), "read_group")
        if raw:
            return [Entry(i, f if isinstance(f, dict) else dict(zip(f[::2], f[1::2], strict=True)), 1)
                    for i, f in _decode_entries(raw)]
        if block_s is None:
            return []
        reply = await self._run(
            self._client.xreadgroup(group, consumer, {stream: ">"}, count=count, block=max(1, int(block_s * 1000))),
            "read_group", extra_s=block_s)
        entries: list[Entry] = []
        for _, messages in reply or []:
            entries.extend(Entry(str(i), _fields(f), 1) for i, f in messages if f is not None)
        return entries

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(await self._run(self._client.xack(stream, group, *ids), "ack"))

    async def pending(
        self, stream: str, group: str, *, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        rows = await self._run(
            self._client.xpending_range(stream, group, min="-", max="+", count=count, consumername=consumer),
            "pending")
        return [PendingEntry(str(r["message_id"]), str(r["consumer"]), int(r["time_since_delivered"]) / 1000,
                             int(r["times_delivered"])) for r in rows]

    async def claim_idle(
        self, stream: str, group: str, consumer: str, min_idle_s: float, *, count: int = 10,
        max_deliveries: int | None = None,
    ) -> list[Entry]:
        rows = await self._run(self._claim(
            keys=[stream, dead_stream(stream)],
            args=[group, consumer, int(min_idle_s * 1000), count, max_deliveries or 0, *_DEAD_FIELDS]), "claim_idle")
        return [Entry(str(i), _fields(f), int(n)) for i, f, n in rows]

    async def touch(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> int:
        touched = 0
        for start in range(0, len(ids), TOUCH_BATCH):
            touched += int(await self._run(self._touch(
                keys=[stream], args=[group, consumer, *ids[start:start + TOUCH_BATCH]]), "touch"))
        return touched

    async def dead_letter(self, stream: str, group: str, entry_id: str, reason: str = "") -> bool:
        moved = await self._run(self._dead_letter(
            keys=[stream, dead_stream(stream)], args=[group, entry_id, reason, *_DEAD_FIELDS]), "dead_letter")
        return bool(moved)

    async def read_range(
        self, stream: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[Entry]:
        rows = await self._run(self._client.xrange(stream, min=start, max=end, count=count), "read_range")
        return [Entry(str(i), _fields(f), 0) for i, f in rows]

    async def read_after(
        self, stream: str, after: str = "0-0", *, count: int = 100, block_s: float | None = None
    ) -> list[Entry]:
        block_ms = None if block_s is None else max(1, int(block_s * 1000))
        reply = await self._run(self._client.xread({stream: after}, count=count, block=block_ms),
                                "read_after", extra_s=block_s or 0.0)
        entries: list[Entry] = []
        for _, messages in reply or []:
            entries.extend(Entry(str(i), _fields(f), 0) for i, f in messages)
        return entries

    async def length(self, stream: str) -> int:
        return int(await self._run(self._client.xlen(stream), "length"))

    async def group_info(self, stream: str, group: str) -> GroupInfo:
        groups = await self._run(self._client.xinfo_groups(stream), "group_info")
        info = next((g for g in groups if str(g["name"]) == group), None)
        if info is None:
            raise GroupNotFound(f"no consumer group {group!r} on stream {stream!r}")
        last = str(info["last-delivered-id"])
        lag = info.get("lag")
        if lag is None:  # Redis cannot tell after some deletions: count what lies after the last delivered id
            lag = await self._count_after(stream, last)
        return GroupInfo(int(info["pending"]), int(lag), last, int(info["consumers"]))

    async def _count_after(self, stream: str, last: str) -> int:
        total, cursor = 0, f"({last}"
        while True:
            rows = await self._run(self._client.xrange(stream, min=cursor, max="+", count=1000), "group_info")
            total += len(rows)
            if len(rows) < 1000:
                return total
            cursor = f"({rows[-1][0]}"

    async def aclose(self) -> None:
        await self._client.aclose()
