"""Small builders for picker tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tokenyard.policy.pickers.base import Picker
from tokenyard.policy.pickers.endpoint import EndpointView, RequestFeatures


def endpoints(*names: str, **fields: object) -> list[EndpointView]:
    return [EndpointView(name=n, url=f"http://127.0.0.1/{n}", **fields) for n in names]  # type: ignore[arg-type]


def tally(picker: Picker, pool: Sequence[EndpointView], n: int, request: RequestFeatures | None = None) -> Counter[str]:
    req = request or RequestFeatures()
    counts: Counter[str] = Counter()
    for _ in range(n):
        chosen = picker.pick(pool, req)
        assert chosen is not None
        counts[chosen.name] += 1
    return counts
