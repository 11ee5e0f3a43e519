"""``benchmarks/gateway_overhead.py``, the benchmark of issue 3, runs end to end on a tiny budget: every path
answers, the table is printed, and ``--runs`` ends with one line per run and the count of runs meeting each
target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gateway_overhead.py"


def test_two_short_runs_are_measured_and_summarised() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--requests", "10", "--seconds", "0.5", "--streams", "0",
                           "--runs", "2"], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("| tokenyard |") == 2  # one table per run
    assert re.search(r"^\| 2 \| -?\d+\.\d\d \| -?\d+\.\d\d \| -?\d+\.\d\d \| \d+ \| -?\d+\.\d\d \|$", out, re.M), out
    for target in ("added p50 <= 0.5 ms", "added p99 <= 2 ms", "added stream TTFT p50 <= 1 ms",
                   "throughput >= 70% of the proxy"):
        assert re.search(rf"^{re.escape(target)}: met in [0-2] of 2 runs$", out, re.M), out
    assert re.search(r"^tokenyard added no more p50 than the minimal proxy in [0-2] of 2 runs; ", out, re.M), out


def test_runs_below_one_are_refused() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--runs", "0"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--runs must be at least 1" in done.stderr
