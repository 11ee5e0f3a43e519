"""UTC calendar periods for token budgets: the bucket id and when it ends (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from tokenyard.state.base import BudgetPeriod


def period_id(period: BudgetPeriod, now: float) -> str:
    """``2026-11-23`` for a day, ``2026-11`` for a month, in UTC."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "month":
        return moment.strftime("%Y-%m")
    raise ValueError(f"unknown budget period {period!r}; expected 'day' or 'month'")


def period_end(period: BudgetPeriod, now: float) -> float:
    """Epoch seconds at which the period containing ``now`` ends."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp() + 86400.0
    if period == "month":
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    raise ValueError(f"unknown budget period {period!r}; expected 'day' or 'month'")
