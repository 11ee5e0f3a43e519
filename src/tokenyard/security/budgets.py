"""Token budgets per key and tenant, per UTC day and month: the cap on what one caller can spend (LLM10).

A request is admitted while every budget that applies still has tokens left (``check``); once the answer is
known it is charged with the tokens it really used (``charge``, unconditional: usage that already happened is
never refused). So a budget can be overshot by at most the requests in flight when it ran out, and from then on
every request of that key or tenant is refused with 429 until the period rolls over. The counters live in the
``SharedState``, so every replica sees the same spend.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenyard.state import BudgetPeriod, SharedState

PERIODS: tuple[BudgetPeriod, ...] = ("day", "month")


@dataclass(frozen=True, slots=True)
class Budget:
    """One cap: ``scope`` (``key`` or ``tenant``), its ``name``, the ``period`` and the ``limit`` in tokens."""

    scope: str
    name: str
    period: BudgetPeriod
    limit: int

    @property
    def state_key(self) -> str:
        return f"budget:{self.scope}:{self.name}"


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Why a request was refused: the budget and what it has used this period."""

    budget: Budget
    used: int

    def message(self) -> str:
        b = self.budget
        return (f"token budget exhausted: {b.scope} {b.name!r} has used {self.used} of its {b.limit} tokens "
                f"this {b.period}; it resets at the start of the next UTC {b.period}")


def budgets_for(key_name: str, key_day: int | None, key_month: int | None,
                tenant: str, tenant_day: int | None, tenant_month: int | None) -> list[Budget]:
    """The budgets that apply to one request (none when neither the key nor its tenant has any)."""
    found: list[Budget] = []
    for scope, name, limits in (("key", key_name, (key_day, key_month)),
                                ("tenant", tenant, (tenant_day, tenant_month))):
        for period, limit in zip(PERIODS, limits, strict=True):
            if limit is not None and name:
                found.append(Budget(scope, name, period, limit))
    return found


class BudgetGuard:
    """Checks and charges budgets in a ``SharedState``; ``now`` (epoch seconds) is passed in for tests."""

    def __init__(self, state: SharedState) -> None:
        self._state = state

    async def check(self, budgets: list[Budget], now: float | None = None) -> Exhausted | None:
        """The first exhausted budget, or None when every one has tokens left. Consumes nothing."""
        for budget in budgets:
            result = await self._state.consume_budget(budget.state_key, 0, budget.limit, budget.period, now=now)
            if result.remaining <= 0:
                return Exhausted(budget, result.used)
        return None

    async def charge(self, budgets: list[Budget], tokens: int, now: float | None = None) -> None:
        """Record ``tokens`` of real usage against every budget (never refused)."""
        if tokens <= 0:
            return
        for budget in budgets:
            await self._state.consume_budget(budget.state_key, tokens, budget.limit, budget.period, now=now,
                                             force=True)
