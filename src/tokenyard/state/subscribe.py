"""Subscribing to a shared-state channel when the state may be down: retry in the background, never fail.

A gateway must start (and serve) while Redis is unreachable (docs/operations.md, "Failure modes": recovery is
automatic, no restart). Once a subscription exists it reconnects by itself (``state.redis``); only the first
``subscribe`` can fail, so that is what is retried here, with a capped back-off, logging once when it starts
failing and once when it works again.
"""

from __future__ import annotations

import asyncio
import logging

from tokenyard.state.base import SharedState, StateUnavailable, Subscription

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0


async def subscribe_when_up(state: SharedState, channel: str, log: logging.Logger, what: str) -> Subscription:
    """Subscribe to ``channel``, retrying until the state answers; ``what`` names the feature in the log lines
    (e.g. "cross-replica resume"). Cancellable while it waits."""
    pause = FIRST_RETRY_S
    failed = False
    while True:
        try:
            subscription = await state.subscribe(channel)
        except StateUnavailable as exc:
            if not failed:
                log.warning("%s degraded: shared state unavailable, subscribing to %s in the background "
                            "(retrying every %.1f s up to %.1f s): %s", what, channel, pause, MAX_RETRY_S, exc)
                failed = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_RETRY_S)
            continue
        if failed:
            log.warning("%s restored: subscribed to %s", what, channel)
        return subscription
