"""Run ``tokenyard`` as a user does: a real process, its exit code and its stderr."""

from __future__ import annotations

import os
import subprocess
import sys


def tokenyard(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m tokenyard ARGS``; a command that hangs fails the test with ``TimeoutExpired``."""
    return subprocess.run([sys.executable, "-m", "tokenyard", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    """Exit ``code``, no traceback, and ``fragment`` on stderr."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert fragment in result.stderr, result.stderr
