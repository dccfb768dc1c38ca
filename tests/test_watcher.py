"""The settle tracker's hand-out order: arrival for ``watch``, largest first for ``run``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocr_pipeline import watcher
from ocr_pipeline.watcher import SettleTracker


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SettleTracker:
    """Five files of 1, 5, 3, 4, 2 KiB, written in that order, all older than the settle time."""
    monkeypatch.setattr(watcher, "QUICK_LOOK_SECONDS", 0.0)  # files present at start: no wait
    tracker = SettleTracker(tmp_path, capacity=10, settle_seconds=2.0, settle_after_close_seconds=1)
    for age, (name, kib) in enumerate([("a", 1), ("b", 5), ("c", 3), ("d", 4), ("e", 2)]):
        path = tmp_path / f"{name}.png"
        path.write_bytes(b"x" * 1024 * kib)
        old = path.stat().st_mtime - 60 + age
        os.utime(path, (old, old))
        assert tracker.observe(Path(path.name))
    return tracker


def test_watch_hands_out_files_in_arrival_order(tracker: SettleTracker) -> None:
    taken = [p.name for p in tracker.take_settled(2)]
    taken += [p.name for p in tracker.take_settled(10)]
    assert taken == ["a.png", "b.png", "c.png", "d.png", "e.png"]


def test_run_hands_out_the_largest_files_first(tracker: SettleTracker) -> None:
    taken = [p.name for p in tracker.take_settled(2, largest_first=True)]
    assert taken == ["b.png", "d.png"]
    taken = [p.name for p in tracker.take_settled(10, largest_first=True)]
    assert taken == ["c.png", "e.png", "a.png"]
    assert len(tracker) == 0
