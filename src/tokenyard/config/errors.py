"""The one error type of configuration loading: every problem found, each with its key path."""

from __future__ import annotations

import re

_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_\-]+")


class ConfigError(Exception):
    """A configuration that cannot be used.

    ``issues`` lists every problem found as ``(key_path, message)``, for example
    ``("models.chat.endpoints[1].wieght", "unknown key")``. ``str()`` gives one ``path: message`` per line.
    """

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        self.issues = list(issues)
        super().__init__(self.format())

    def format(self) -> str:
        """One ``KEY.PATH: message`` line per issue (just the message for the document as a whole)."""
        return "\n".join(f"{path}: {message}" if path else message for path, message in self.issues)

    def __str__(self) -> str:
        return self.format()


def join_path(prefix: str, key: str | int) -> str:
    """Extend a key path: ``models`` + ``chat`` -> ``models.chat``; ``endpoints`` + 1 -> ``endpoints[1]``.

    Keys that are not plain words (``*``, ``gpt-4.1``) are quoted in brackets so the path stays unambiguous.
    """
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if not _SIMPLE_KEY.fullmatch(key):
        return f'{prefix}["{key}"]'
    return f"{prefix}.{key}" if prefix else key
