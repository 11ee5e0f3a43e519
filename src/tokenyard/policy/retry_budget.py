"""Retry budget (Envoy's ``retry_budget``): retries may be at most a share of the active requests.

A fixed "retry 3 times" triples the load on a backend that is failing because it is overloaded; a budget
caps the extra load instead: a retry may start only while ``active retries < max(min_retries,
ratio x active requests)``. The minimum keeps retries possible at low traffic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RetryBudget:
    """Counts active requests and active retries; defaults: 20% of active requests, at least 3 retries."""

    ratio: float = 0.2
    min_retries: int = 3
    active_requests: int = 0
    active_retries: int = 0

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_retries < 0:
            raise ValueError("retry budget needs ratio >= 0 and min_retries >= 0")

    def request_started(self) -> None:
        """A request (its first attempt) became active."""
        self.active_requests += 1

    def request_finished(self) -> None:
        """A request ended, whatever the outcome."""
        self.active_requests = max(0, self.active_requests - 1)

    def limit(self) -> int:
        """How many retries may be active right now."""
        return max(self.min_retries, int(self.ratio * self.active_requests))

    def can_retry(self) -> bool:
        """Whether one more retry fits in the budget (does not take it)."""
        return self.active_retries < self.limit()

    def try_acquire(self) -> bool:
        """Take one retry from the budget if it fits; pair each True with :meth:`release`."""
        if not self.can_retry():
            return False
        self.active_retries += 1
        return True

    def release(self) -> None:
        """A retry (or hedge) attempt ended."""
        self.active_retries = max(0, self.active_retries - 1)
