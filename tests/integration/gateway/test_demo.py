"""``tokenyard demo --duration S`` runs the fleet, gateway and workload, prints the table, exits 0."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_for_its_duration_and_prints_the_table() -> None:
    done = subprocess.run([sys.executable, "-m", "tokenyard", "demo", "--duration", "3"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "tokenyard demo listening on http://127.0.0.1:" in done.stdout
    for name in ("premium", "standard", "batch", "TTFT"):
        assert name in done.stdout
