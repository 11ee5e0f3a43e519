"""The one error type of the planner: a bad plan input, named by its key path."""

from __future__ import annotations


class PlanError(ValueError):
    """A plan file is invalid (or its SLO cannot be met at all); ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
