"""Checks on files a command will write, made before any work so a bad path is one error line, not a traceback
at the end (or, for a sink, a failure per event)."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable(file: str) -> str | None:
    """Why ``file`` cannot be written (created or replaced), as ``FILE: reason``; None when it can. Touches
    nothing: the directory must exist, the path must not be a directory, and the file (or, for a new file, its
    directory) must be writable by this process."""
    target = Path(file)
    parent = target.parent
    if target.is_dir():
        return f"{file}: is a directory"
    if not parent.is_dir():
        return f"{file}: directory {parent} does not exist"
    if not os.access(target if target.exists() else parent, os.W_OK):
        return f"{file}: permission denied"
    return None
