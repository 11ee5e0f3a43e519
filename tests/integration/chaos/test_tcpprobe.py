"""tcpprobe on loopback (no namespaces needed): the sink counts, the sender checks the count."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tokenyard.chaos.tcpprobe import send


@pytest.fixture
def sink_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tokenyard.chaos.tcpprobe", "sink", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("tcpprobe sink listening on http://127.0.0.1:")
        yield port
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_send_gets_its_byte_count_back(sink_port: int) -> None:
    result = send("127.0.0.1", sink_port, 1_000_003, timeout=10)
    assert result["ok"] and result["acknowledged"] == 1_000_003 and result["error"] is None


def test_send_reports_a_refused_connection() -> None:
    result = send("127.0.0.1", free_port(), 10, timeout=2)
    assert not result["ok"] and "ConnectionRefusedError" in str(result["error"])


def test_cli_repeat_prints_one_line_per_transfer(sink_port: int) -> None:
    out = subprocess.run([sys.executable, "-m", "tokenyard.chaos.tcpprobe", "send", "--host", "127.0.0.1",
                          "--port", str(sink_port), "--bytes", "100", "--repeat", "3"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3 and all(line["acknowledged"] == 100 for line in lines)
