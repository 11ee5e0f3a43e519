"""``StreamLog`` on Redis Streams: XADD, XREADGROUP, XACK, XAUTOCLAIM (+ XPENDING for delivery counts), XRANGE."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tokenyard.pipeline.streams import Entry

# Append unless the dedupe key was seen: the hash maps dedupe key -> entry id, atomically with the XADD.
_APPEND_ONCE = """
local found = redis.call('HGET', KEYS[2], ARGV[1])
if found then return {found, 0} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], id)
return {id, 1}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    items = list(raw or [])
    return {_text(items[i]): _text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


class RedisStreamLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)
        self._append_once = self.redis.register_script(_APPEND_ONCE)

    async def append(self, stream: str, fields: dict[str, str], maxlen: int | None = None) -> str:
        return _text(await self.redis.xadd(stream, fields, maxlen=maxlen, approximate=True))  # type: ignore[arg-type]

    async def append_once(self, stream: str, dedupe_key: str, fields: dict[str, str]) -> tuple[str, bool]:
        args: list[str] = [dedupe_key]
        for k, v in fields.items():
            args += [k, v]
        found = await self._append_once(keys=[stream, stream + ":dedupe"], args=args)
        return _text(found[0]), bool(int(found[1]))

    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_group(self, stream: str, group: str, consumer: str, count: int, block_ms: int) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms or None)
        out: list[Entry] = []
        for _name, entries in reply or []:
            out.extend(Entry(_text(eid), _fields(f)) for eid, f in entries)
        return out

    async def ack(self, stream: str, group: str, ids: list[str]) -> None:
        if ids:
            await self.redis.xack(stream, group, *ids)

    async def claim_idle(self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        reply: Any = await self.redis.xautoclaim(stream, group, consumer, min_idle_ms, "0-0", count=count)
        claimed = [(_text(eid), _fields(f)) for eid, f in reply[1] if f is not None]
        if not claimed:
            return []
        ids = [eid for eid, _ in claimed]
        pending = await self.redis.xpending_range(stream, group, min=ids[0], max=ids[-1], count=len(ids) + 100,
                                                  consumername=consumer)
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [Entry(eid, f, counts.get(eid, 2)) for eid, f in claimed]

    async def read_range(self, stream: str, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        found: Any = await self.redis.xrange(stream, start, end, count)
        return [Entry(_text(eid), _fields(f)) for eid, f in found]

    async def read_after(self, stream: str, after_id: str, count: int, block_ms: int) -> list[Entry]:
        reply: Any = await self.redis.xread({stream: after_id}, count=count, block=block_ms or None)
        out: list[Entry] = []
        for _name, entries in reply or []:
            out.extend(Entry(_text(eid), _fields(f)) for eid, f in entries)
        return out

    async def lag(self, stream: str, group: str) -> int:
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return 0
        for info in groups:
            if _text(info["name"]) == group:
                lag = info.get("lag")
                undelivered = int(lag) if lag is not None else await self._undelivered(stream, info)
                return undelivered + int(info.get("pending", 0))
        return await self.length(stream)

    async def _undelivered(self, stream: str, info: dict[Any, Any]) -> int:
        last = _text(info.get("last-delivered-id", "0-0"))
        found: Any = await self.redis.xrange(stream, "(" + last, "+")
        return len(found)

    async def length(self, stream: str) -> int:
        return int(await self.redis.xlen(stream))

    async def close(self) -> None:
        await self.redis.aclose()
