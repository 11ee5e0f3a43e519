"""Ready-made scenario parts: faults that drive a chaos proxy (in process or over its API) and a bounded
HTTP request loop workload with client retries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tokenyard.chaos.faults import Faults, faults_to_dict
from tokenyard.chaos.netns import Host, NetnsLab
from tokenyard.chaos.proxy import ChaosProxy
from tokenyard.chaos.scenario import Sample


class ProxyFault:
    """Sets ``faults`` on an in-process :class:`ChaosProxy`; ``clear`` restores what was there before."""

    def __init__(self, proxy: ChaosProxy, faults: Faults, name: str) -> None:
        self.name = name
        self._proxy = proxy
        self._faults = faults
        self._previous = proxy.faults

    async def inject(self) -> None:
        self._previous = self._proxy.faults
        self._proxy.set_faults(self._faults)

    async def clear(self) -> None:
        self._proxy.set_faults(self._previous)


class ApiFault:
    """Sets ``faults`` on a proxy process through its control API (``api_url`` is ``http://HOST:PORT``)."""

    def __init__(self, api_url: str, faults: Faults, name: str) -> None:
        self.name = name
        self._url = api_url.rstrip("/") + "/faults"
        self._faults = faults
        self._previous: dict[str, Any] = {"clear": True}

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        async with session.post(self._url, json=body) as resp:
            resp.raise_for_status()

    async def inject(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(self._url) as resp:
                resp.raise_for_status()
                self._previous = await resp.json()
            await self._post(session, faults_to_dict(self._faults))

    async def clear(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await self._post(session, self._previous)


class LossFault:
    """Random packet loss (nftables) on a namespace host's egress, for scenarios in a :class:`NetnsLab`."""

    def __init__(self, lab: NetnsLab, hosts: list[Host], percent: int) -> None:
        self.name = f"{percent}% packet loss from {', '.join(h.name for h in hosts)}"
        self._lab = lab
        self._hosts = hosts
        self._percent = percent

    async def inject(self) -> None:
        for host in self._hosts:
            await asyncio.to_thread(self._lab.add_loss, host, self._percent)

    async def clear(self) -> None:
        for host in self._hosts:
            await asyncio.to_thread(self._lab.clear_nft, host)


async def http_request_loop(
    url: str,
    *,
    requests: int,
    concurrency: int = 4,
    timeout_s: float = 5.0,
    retries: int = 2,
    backoff_s: float = 0.02,
    method: str = "GET",
    json_body: Any = None,
) -> list[Sample]:
    """Send ``requests`` requests (``concurrency`` at a time), each on a new connection, retrying transport
    errors, timeouts and 5xx up to ``retries`` times. Bounded: at most ``requests * (retries + 1)`` attempts,
    each limited to ``timeout_s``.

    aiohttp itself retries idempotent requests (GET) once when a connection drops before the response, so
    ``Sample.attempts`` only counts the retries this loop makes; use POST to see every transport failure.
    """
    if requests < 0 or concurrency < 1 or retries < 0:
        raise ValueError("requests >= 0, concurrency >= 1 and retries >= 0 are required")
    samples: list[Sample] = []
    remaining = iter(range(requests))
    connector = aiohttp.TCPConnector(force_close=True, limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> Sample:
            start = time.monotonic()
            for attempt in range(1, retries + 2):
                try:
                    async with session.request(method, url, json=json_body) as resp:
                        await resp.read()
                        if resp.status < 500:
                            return Sample(time.monotonic() - start, resp.status < 400, attempt)
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if attempt <= retries:
                    await asyncio.sleep(backoff_s * attempt)
            return Sample(time.monotonic() - start, False, retries + 1)

        async def worker() -> None:
            for _ in remaining:
                samples.append(await one())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples
