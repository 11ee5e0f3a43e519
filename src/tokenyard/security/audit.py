"""The audit log: admin actions and authentication failures, one JSON object per line.

Credentials never reach it: callers pass a key's id or the first characters of its digest, and ``record``
refuses fields whose names suggest a secret, so a careless call fails loudly in tests rather than leaking.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec

SECRET_FIELDS = frozenset({"key", "api_key", "token", "authorization", "password", "secret", "plaintext"})


class AuditLog:
    """Appends audit events to a file (or stderr); safe to call from several threads."""

    def __init__(self, path: str | Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(path) if path is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder()
        self._stream: IO[bytes] = (
            self._path.open("ab", buffering=0) if self._path is not None else sys.stderr.buffer
        )

    def record(self, event: str, **fields: Any) -> None:
        leaked = SECRET_FIELDS.intersection(name.lower() for name in fields)
        if leaked:
            raise ValueError(f"audit fields must not carry secrets: {sorted(leaked)}")
        line = self._encoder.encode({"ts": round(self._clock(), 3), "event": event, **fields}) + b"\n"
        with self._lock:
            self._stream.write(line)

    def auth_failure(self, reason: str, remote: str | None, path: str, request_id: str) -> None:
        self.record("auth_failure", reason=reason, remote=remote, path=path, request_id=request_id)

    def access_denied(self, reason: str, subject: str, remote: str | None, path: str, request_id: str) -> None:
        """An authenticated caller refused by its own scope (``subject`` is the key's name, never the key)."""
        self.record("access_denied", reason=reason, subject=subject, remote=remote, path=path,
                    request_id=request_id)

    def admin_action(self, action: str, actor: str, target: str | None = None, **details: Any) -> None:
        self.record("admin_action", action=action, actor=actor, target=target, **details)

    def close(self) -> None:
        if self._path is not None:
            self._stream.close()
