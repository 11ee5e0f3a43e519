"""In-process simulators for tests: ``async with running_sim(profile="fast", seed=0, **overrides) as sim``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tokenyard.sim.faults import FaultConfig, parse_faults
from tokenyard.sim.params import profile as load_profile
from tokenyard.sim.server import LLMSim


class RunningSim:
    """A started simulator on loopback and a small client for its control API."""

    def __init__(self, server: LLMSim, session: aiohttp.ClientSession) -> None:
        self.server = server
        self._session = session

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; the OpenAI API is under ``base_url + "/v1"``."""
        return self.server.base_url

    @property
    def model(self) -> str:
        return self.server.params.model_name

    async def stats(self) -> dict[str, Any]:
        async with self._session.get(self.base_url + "/sim/stats") as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    async def set_faults(self, **fields: Any) -> dict[str, Any]:
        async with self._session.post(self.base_url + "/sim/faults", json=fields) as resp:
            data: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise ValueError(data["error"]["message"])
            return data

    async def reset(self) -> None:
        async with self._session.post(self.base_url + "/sim/reset") as resp:
            resp.raise_for_status()


@asynccontextmanager
async def running_sim(profile: str = "fast", seed: int = 0, faults: dict[str, Any] | None = None,
                      **overrides: Any) -> AsyncIterator[RunningSim]:
    """Start an LLM simulator on a free loopback port; ``overrides`` are ``SimParams`` fields."""
    params = load_profile(profile).replace(seed=seed, **overrides)
    fault_config = parse_faults(faults) if faults else FaultConfig()
    server = LLMSim(params, fault_config)
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield RunningSim(server, session)
    finally:
        await server.stop()
