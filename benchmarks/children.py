"""Child processes for the benchmarks: servers that print ``... listening on http://HOST:PORT``, ended by PID."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path


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
