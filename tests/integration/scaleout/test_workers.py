"""``tokenyard serve --workers 2``: two processes on one port, ended by PID; a dead worker is restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from tests.conftest import RedisServer
from tokenyard.sim.testing import running_sim


def _start(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tokenyard", "serve", "--config", str(config), "--port", "0",
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "tokenyard serve listening on http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr
                                                                             else "")
    return proc, line.rsplit(" ", 1)[1].strip()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


async def test_two_workers_serve_on_one_port(redis_server: RedisServer, tmp_path: Path) -> None:
    async with running_sim("fast") as sim:
        config = tmp_path / "gw.yaml"
        config.write_text(yaml.safe_dump({
            "listen": {"host": "127.0.0.1", "port": 0}, "state": redis_server.url,
            "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}},
        }))
        proc, url = await asyncio.to_thread(_start, config)  # the in-process sim keeps answering
        try:
            workers = _children(proc.pid)
            assert len(workers) == 2
            body = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            async with aiohttp.ClientSession() as session:
                for _ in range(20):
                    # a new connection each time, so the kernel may pick either worker
                    async with session.post(url + "/v1/chat/completions", json=body,
                                            headers={"Connection": "close"}) as resp:
                        assert resp.status == 200
            os.kill(workers[0], signal.SIGKILL)  # a worker dies: the supervisor starts another
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = _children(proc.pid)
                if len(now) == 2 and workers[0] not in now:
                    break
                await asyncio.sleep(0.1)
            assert len(_children(proc.pid)) == 2
            async with aiohttp.ClientSession() as session, \
                    session.post(url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            if proc.stdout is not None:
                proc.stdout.close()
            if proc.stderr is not None:
                proc.stderr.close()
        assert code == 0
        assert all(not _alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_sigterm_lets_a_stream_finish(tmp_path: Path) -> None:
    """SIGTERM drains like one process does (requests in progress get up to 60 s, docs/server.md): a stream
    longer than the supervisor's old 10 s grace runs to its end instead of being cut by a SIGKILL."""
    async with running_sim("fast", itl_ms=100.0) as sim:  # 120 tokens: about 12 s
        config = tmp_path / "gw.yaml"
        config.write_text(yaml.safe_dump({"listen": {"host": "127.0.0.1", "port": 0},
                                          "models": {"*": {"endpoints": [{"url": sim.base_url + "/v1"}]}}}))
        proc, url = await asyncio.to_thread(_start, config)
        body = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 120,
                "stream": True}
        chunks, done, signalled = 0, False, False
        try:
            async with aiohttp.ClientSession() as session, \
                    session.post(url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                async for line in resp.content:
                    if not line.startswith(b"data: "):
                        continue
                    chunks += 1
                    if chunks == 2:
                        proc.send_signal(signal.SIGTERM)
                        signalled = True
                    done = done or line.strip() == b"data: [DONE]"
        finally:
            if not signalled:
                proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 90)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        assert done and chunks > 120
        assert code == 0


def test_sigterm_while_workers_start_stops_them_cleanly() -> None:
    """A signal before the workers are ready (here: each waits 5 s to list a silent upstream's models) stops
    the supervisor and its workers cleanly: exit 0, no tracebacks, no worker left behind."""
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        upstream = f"http://127.0.0.1:{silent.getsockname()[1]}"
        proc = subprocess.Popen([sys.executable, "-m", "tokenyard", "serve", "--upstream", upstream, "--port", "0",
                                 "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "listening" not in out
    assert all(not _alive(pid) for pid in workers)
