"""`bot.heap.fewer_collections`: a higher young-generation threshold for bulk work, restored."""

from __future__ import annotations

import gc

import pytest

from bot.heap import BULK_GEN0_THRESHOLD, fewer_collections


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_raised_inside_and_restored_after(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (BULK_GEN0_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_restored_when_the_work_fails(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("planning failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_setting_or_a_disabled_collector_is_kept(thresholds: None) -> None:
    gc.set_threshold(BULK_GEN0_THRESHOLD * 5, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == BULK_GEN0_THRESHOLD * 5
    gc.set_threshold(0, 10, 10)  # threshold 0 turns automatic collection off
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_nested_bulk_work_restores_the_outer_setting(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    with fewer_collections():
        with fewer_collections():
            pass
        assert gc.get_threshold()[0] == BULK_GEN0_THRESHOLD
    assert gc.get_threshold()[0] == 700
