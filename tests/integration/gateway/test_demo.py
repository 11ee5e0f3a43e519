"""``tokenyard demo --duration S``: fleet, gateway, dashboard and a surge workload; prints the report, exits 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_for_its_duration_and_prints_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "tokenyard", "demo", "--duration", "6", "--out", str(out)],
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert "tokenyard demo listening on http://127.0.0.1:" in done.stdout
    assert re.search(r"dashboard: +http://127\.0\.0\.1:\d+/dashboard", done.stdout)
    for name in ("premium", "standard", "batch", "TTFT p95", "goodput/s", "upstream generations stopped"):
        assert name in done.stdout
    summary = json.loads((out / "report.json").read_text())
    assert summary["totals"]["requests"] > 0
    assert summary["totals"]["completed"] > 0
    assert set(summary["classes"]) == {"premium", "standard", "batch"}
    assert (out / "report.html").is_file()


def test_demo_without_load_serves_until_its_duration() -> None:
    done = subprocess.run([sys.executable, "-m", "tokenyard", "demo", "--duration", "1", "--no-load"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "dashboard:" in done.stdout and "goodput" not in done.stdout
