"""``benchmarks/gateway_overhead.py``, the benchmark of issue 3, runs end to end on a tiny budget: every path
answers, the table is printed, and ``--runs`` ends, for each gateway measured (``--busy-poll-us`` adds one), with
one line per run and the count of runs meeting each target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gateway_overhead.py"


def test_two_short_runs_are_measured_and_summarised() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--requests", "10", "--seconds", "0.5", "--streams", "0",
                           "--runs", "2", "--busy-poll-us", "500"], capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("| tokenyard |") == 2 and out.count("| tokenyard busy-poll |") == 2  # one table per run
    number = r"-?\d+\.\d\d"
    for gateway in ("tokenyard", "tokenyard busy-poll"):
        assert f"2 runs ({gateway} added ms" in out, out
        assert re.search(rf"^{re.escape(gateway)} added p50 {number} ms, .*; CPU per request {number} ms$", out, re.M)
        for target in ("added p50 <= 0.5 ms", "added p99 <= 2 ms", "added stream TTFT p50 <= 1 ms",
                       "throughput >= 70% of the proxy"):
            assert re.search(rf"^{re.escape(gateway)}: {re.escape(target)}: met in [0-2] of 2 runs$", out, re.M), out
        assert re.search(rf"^{re.escape(gateway)} added no more p50 than the minimal proxy in [0-2] of 2 runs; ",
                         out, re.M), out
    row = rf"^\| 2 \| {number} \| {number} \| {number} \| \d+ \| {number} \| {number} \|$"
    assert len(re.findall(row, out, re.M)) == 2, out  # the second run's line, in each gateway's summary


def test_runs_below_one_are_refused() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--runs", "0"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--runs must be at least 1" in done.stderr
