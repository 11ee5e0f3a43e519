"""Workload generator and SLO reports: ``tokenyard bench`` and its Python API.

    from tokenyard.bench import run_workload, load_workload
    report = await run_workload("http://127.0.0.1:8080", "surge", duration_s=10, max_requests=200, out_dir="out")
    report.to_json()
"""

from __future__ import annotations

from tokenyard.bench.api import run_workload
from tokenyard.bench.errors import WorkloadError
from tokenyard.bench.report import Report
from tokenyard.bench.workload import Workload, builtin_names, load_workload, parse_workload

__all__ = ["Report", "Workload", "WorkloadError", "builtin_names", "load_workload", "parse_workload",
           "run_workload"]
