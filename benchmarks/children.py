"""Child processes for the benchmarks: servers that print ``... listening on http://HOST:PORT`` (``Child``; a
gateway of this or another checkout: ``serve``), a throwaway redis-server (``start_redis``), a free loopback port,
and a process's CPU time so far; all ended by PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis(port: int, workdir: str) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:``port`` without persistence, once it accepts connections (SystemExit when
    redis-server is missing or does not start within 10 s)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    proc.wait(10)
    raise SystemExit("redis-server did not start")


class Child:
    """Starts ``args``, waits until it prints its listening line (``url``), and stops it by its PID."""

    def __init__(self, args: list[str], start_timeout_s: float = 30.0, stop_timeout_s: float = 10.0) -> None:
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self._stop_timeout_s = stop_timeout_s
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            text = Path(self.log.name).read_text()
            if "listening on http://" in text:
                self.url = text.split("listening on ", 1)[1].split()[0]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        output = Path(self.log.name).read_text()[-2000:]
        self.stop()
        raise RuntimeError(f"{args} did not start: {output}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def serve(args: list[str], checkout: str | None = None) -> Child:
    """``tokenyard serve ARGS`` with this interpreter; ``checkout``: the tokenyard of another checkout's ``src/``
    (e.g. a git worktree of an older commit) instead of the installed one."""
    env = ["env", f"PYTHONPATH={Path(checkout).resolve() / 'src'}"] if checkout else []
    return Child([*env, sys.executable, "-m", "tokenyard", "serve", *args])
