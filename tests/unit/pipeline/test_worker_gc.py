"""A worker process raises the garbage collector's thresholds (tune_worker_gc); the library leaves them alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tokenyard.pipeline.service import WORKER_GC_THRESHOLDS, tune_worker_gc


@pytest.fixture
def restored_thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def test_tune_worker_gc_sets_the_worker_thresholds(restored_thresholds: tuple[int, int, int]) -> None:
    tune_worker_gc()
    assert gc.get_threshold() == WORKER_GC_THRESHOLDS
    assert WORKER_GC_THRESHOLDS[0] > restored_thresholds[0] and gc.isenabled()
