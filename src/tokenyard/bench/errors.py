"""The one error type of the bench area: a bad workload, named by its key path."""

from __future__ import annotations


class WorkloadError(ValueError):
    """A workload file or flag combination is invalid; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
