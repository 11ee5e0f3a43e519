"""A minimal Chrome DevTools Protocol driver for headless Chromium (tests only): launch, evaluate, screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One page target over its DevTools websocket; ``call`` sends a command and waits for its answer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await self._ws.receive_json(timeout=30)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path, width: int = 1400, height: int = 1000) -> None:
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def headless_page(chromium: str, url: str, profile_dir: Path) -> AsyncIterator[Page]:
    """Start headless Chromium on ``url`` (flags safe as root, no network beyond loopback) and yield its Page."""
    proc = await asyncio.create_subprocess_exec(
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0", "--window-size=1400,1000", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        browser_ws = await asyncio.wait_for(_devtools_url(proc.stderr), timeout=60)
        port = int(browser_ws.split(":")[2].split("/")[0])
        async with aiohttp.ClientSession() as session:
            page_ws = None
            for _ in range(100):
                async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json()
                page_ws = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
                if page_ws:
                    break
                await asyncio.sleep(0.1)
            assert page_ws, "no page target in Chromium"
            async with session.ws_connect(page_ws, max_msg_size=0) as ws:
                drain = asyncio.create_task(_drain(proc.stderr))
                try:
                    yield Page(ws)
                finally:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drain
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _devtools_url(stream: asyncio.StreamReader) -> str:
    while True:
        line = await stream.readline()
        if not line:
            raise RuntimeError("Chromium exited before DevTools was listening")
        found = _DEVTOOLS.search(line.decode(errors="replace"))
        if found:
            return found.group(1)


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading Chromium's stderr so a full pipe never blocks it."""
    while await stream.readline():
        pass
