"""A live progress bar for interactive runs; silent when output is not a terminal or CI=true."""

from __future__ import annotations

import os
import sys
from collections import Counter

from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


def progress_wanted(requested: bool) -> bool:
    """Show a bar only if asked for, on a TTY, and not under CI."""
    return requested and sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


class Progress:
    """Counts finished requests by outcome and finished actions; draws them with rich when ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.outcomes: Counter[str] = Counter()
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        self._bar = RichProgress(TextColumn("[bold]bench[/]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), transient=False)
        self._task = self._bar.add_task("requests", total=total, detail="")
        self._bar.start()

    def update(self, outcome: str, action_done: bool) -> None:
        """Count one finished request; the bar advances by user actions (an agent run is several requests)."""
        self.outcomes[outcome] += 1
        if self._bar is not None and self._task is not None:
            detail = " ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
            self._bar.update(self._task, advance=1 if action_done else 0, detail=detail)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
