"""The audit log writes JSON lines and refuses secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenyard.security.audit import AuditLog


def test_lines_and_no_secrets(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", clock=lambda: 12.5)
    log.auth_failure("revoked", "127.0.0.1", "/v1/chat/completions", "req-1")
    log.admin_action("abort", actor="admin", target="req-2")
    with pytest.raises(ValueError, match="secrets"):
        log.record("oops", api_key="ty-123")
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert lines == [
        {"ts": 12.5, "event": "auth_failure", "reason": "revoked", "remote": "127.0.0.1",
         "path": "/v1/chat/completions", "request_id": "req-1"},
        {"ts": 12.5, "event": "admin_action", "action": "abort", "actor": "admin", "target": "req-2"},
    ]
