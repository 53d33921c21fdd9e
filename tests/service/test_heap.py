"""The start-up heap is frozen and young collections are rarer (p99 under load)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from injector.service.runner import GC_THRESHOLDS, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_settle_heap_freezes_what_was_loaded_and_raises_the_thresholds() -> None:
    settle_heap()
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold() == GC_THRESHOLDS
