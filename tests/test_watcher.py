"""The settle tracker's hand-out order: arrival for ``watch``, largest first for ``run``."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from ocr_pipeline import watcher
from ocr_pipeline.watcher import SettleTracker
from tests.daemon_harness import wait_until


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


# ----------------------------------------------------------------- readiness, holds, candidates


def _write(path: Path, data: bytes, age: float = 0.0) -> Path:
    path.write_bytes(data)
    if age:
        old = path.stat().st_mtime - age
        os.utime(path, (old, old))
    return path


class Clock:
    """The tracker's monotonic clock, moved by the test: settling is a question of time alone.

    The tracker reads ``time.monotonic()`` for every wait (settle, open limit, holds) and
    ``time.time()`` only for a file's age against its mtime, which stays real.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(watcher, "time", clock)
    return clock


def _settled_over(tracker: SettleTracker, clock: Clock, seconds: float) -> list[Path]:
    """Every candidate handed out while ``seconds`` pass, asked every 20 ms as the daemon would."""
    taken: list[Path] = []
    for _ in range(round(seconds / 0.02)):
        clock.now += 0.02
        taken += tracker.take_settled(10)
    return taken


def test_a_written_file_waits_for_its_close_however_long_the_pause(
    tmp_path: Path, clock: Clock
) -> None:
    tracker = SettleTracker(tmp_path, 10, settle_seconds=0.1, settle_after_close_seconds=0.05)
    _write(tmp_path / "scan.jpg", b"half")
    assert tracker.observe(Path("scan.jpg"), "created")
    assert tracker.observe(Path("scan.jpg"), "modified")
    assert _settled_over(tracker, clock, 2.9) == [], "written, not closed: 29 x settle_seconds"
    assert tracker.observe(Path("scan.jpg"), "closed")
    assert _settled_over(tracker, clock, 0.02) == [Path("scan.jpg")]


def test_a_file_never_closed_settles_after_the_open_limit(tmp_path: Path, clock: Clock) -> None:
    tracker = SettleTracker(
        tmp_path, 10, settle_seconds=0.05, settle_after_close_seconds=0.05, open_limit_seconds=0.4
    )
    _write(tmp_path / "scan.jpg", b"half")
    tracker.observe(Path("scan.jpg"), "modified")
    assert _settled_over(tracker, clock, 0.38) == [], "settled before the open limit"
    assert _settled_over(tracker, clock, 0.04) == [Path("scan.jpg")]
    assert tracker.open_limit_seconds == 0.4
    default = SettleTracker(tmp_path, 10, settle_seconds=2.0, settle_after_close_seconds=0.5)
    assert default.open_limit_seconds == watcher.OPEN_LIMIT_FACTOR * 2.0


def test_created_waits_for_close_only_for_an_empty_regular_file(
    tmp_path: Path, clock: Clock
) -> None:
    """A complete file showing up by IN_CREATE (a hard link, a simulated event for a folder
    moved in) is not held for a close that never comes; nor is a symlink."""
    tracker = SettleTracker(tmp_path, 10, settle_seconds=0.1, settle_after_close_seconds=0.05)
    _write(tmp_path / "empty.jpg", b"")
    full = _write(tmp_path / "full.jpg", b"complete")
    os.link(full, tmp_path / "linked.jpg")
    (tmp_path / "link.jpg").symlink_to("full.jpg")
    for name in ("empty.jpg", "full.jpg", "linked.jpg", "link.jpg"):
        assert tracker.observe(Path(name), "created")
    taken = _settled_over(tracker, clock, 0.4)
    assert sorted(p.name for p in taken) == ["full.jpg", "link.jpg", "linked.jpg"]
    assert tracker.tracks(Path("empty.jpg")), "the empty file still waits for its close"


def test_a_file_moved_in_needs_only_the_short_settle(tmp_path: Path, clock: Clock) -> None:
    tracker = SettleTracker(tmp_path, 10, settle_seconds=30, settle_after_close_seconds=0.05)
    _write(tmp_path / "scan.jpg", b"complete")
    assert tracker.observe(Path("scan.jpg"), "moved")
    assert _settled_over(tracker, clock, 0.04) == []
    assert _settled_over(tracker, clock, 0.02) == [Path("scan.jpg")]


def test_a_closed_file_needs_no_second_look_when_the_close_settle_is_zero(
    tmp_path: Path, clock: Clock
) -> None:
    """An old file (``cp -p``, a file first seen by a scan) closed after writing: no quick look."""
    tracker = SettleTracker(tmp_path, 10, settle_seconds=2.0, settle_after_close_seconds=0.0)
    _write(tmp_path / "old.jpg", b"complete", age=60)
    assert tracker.observe(Path("old.jpg"))
    assert tracker.take_settled(10) == [], "seen by a scan: a second look first"
    assert tracker.observe(Path("old.jpg"), "closed")
    assert tracker.take_settled(10) == [Path("old.jpg")]


def test_a_held_path_is_refused_by_events_and_scans_until_its_hold_ends(
    tmp_path: Path, clock: Clock
) -> None:
    tracker = SettleTracker(tmp_path, 10, settle_seconds=0.1, settle_after_close_seconds=0.05)
    _write(tmp_path / "scan.jpg", b"x", age=60)
    assert tracker.observe(Path("scan.jpg"))
    tracker.hold(Path("scan.jpg"), 0.5)
    assert len(tracker) == 0 and tracker.tracks(Path("scan.jpg"))
    for seen in ("scan", "created", "modified", "closed", "moved"):
        assert not tracker.observe(Path("scan.jpg"), seen)
    assert tracker.next_due() == 0.5
    assert _settled_over(tracker, clock, 0.48) == []
    # The hold ends at 0.5 s; offered again, unchanged and old, it needs one quick look more.
    assert _settled_over(tracker, clock, 0.2) == [Path("scan.jpg")], "offered again"


def test_every_entry_but_a_real_folder_is_a_candidate(tmp_path: Path, clock: Clock) -> None:
    """Symlinks (to a file, to a folder, dangling), FIFOs: candidates by lstat; a symlinked
    folder is never descended; real sub-folders are."""
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    (outside / "folder").mkdir(parents=True)
    _write(outside / "folder" / "inner.jpg", b"inner")
    _write(outside / "target.jpg", b"target")
    (inbox / "to-file.jpg").symlink_to(outside / "target.jpg")
    (inbox / "dangling.jpg").symlink_to("missing.jpg")
    (inbox / "to-folder").symlink_to(outside / "folder")
    os.mkfifo(inbox / "sub" / "pipe.jpg")
    _write(inbox / "sub" / "plain.jpg", b"plain")
    found = [p.as_posix() for p in watcher.scan_inbox(inbox)]
    assert found == ["dangling.jpg", "to-file.jpg", "to-folder", "sub/pipe.jpg", "sub/plain.jpg"]
    tracker = SettleTracker(inbox, 10, settle_seconds=0.05, settle_after_close_seconds=0.05)
    for relative in found:
        assert tracker.observe(Path(relative)), relative
    assert not tracker.observe(Path("sub")), "a real folder is not a candidate"
    assert sorted(p.as_posix() for p in _settled_over(tracker, clock, 0.1)) == sorted(found)


# ----------------------------------------------------------------- real events: close-write


def _events_delivered(started: watcher.StartedObserver, inbox: Path) -> None:
    """Return once the observer has handled every event raised so far in ``inbox``.

    A hidden barrier file of a new name is dropped after them; inotify delivers one folder's
    events in order, so its event comes after theirs (bounded: fails the test after 10 s).
    """
    handler = started.handler
    barrier = inbox / f".barrier-{next(_BARRIERS)}"
    handler.probe_seen.clear()
    handler.probe = barrier
    barrier.write_bytes(b"")
    try:
        assert handler.probe_seen.wait(10.0), "no event for the barrier file"
    finally:
        barrier.unlink()


_BARRIERS = itertools.count()


def test_a_file_closed_after_writing_is_claimable_at_once_with_inotify(
    tmp_path: Path, clock: Clock
) -> None:
    """Real IN_MODIFY/IN_CLOSE_WRITE events: open, never claimed; closed, claimable with no
    settle time (the test's clock does not move after the close)."""
    tracker = SettleTracker(tmp_path, 10, settle_seconds=1.0, settle_after_close_seconds=0.0)
    started = watcher.start_observer(
        tmp_path, tracker, threading.Event(), lambda: None, "native", 1.0
    )
    try:
        assert started.kind == "native"
        with (tmp_path / "scan.jpg").open("wb") as handle:
            handle.write(b"half of a scan")
            handle.flush()
            _events_delivered(started, tmp_path)
            assert tracker.tracks(Path("scan.jpg"))
            assert _settled_over(tracker, clock, 5.0) == [], "claimed while open for writing"
            handle.write(b", and the rest")
        _events_delivered(started, tmp_path)
        assert tracker.next_due() == 0.0
        assert tracker.take_settled(10) == [Path("scan.jpg")], "closed: ready at once"
    finally:
        started.stop()


def test_a_file_written_again_after_its_close_waits_for_the_next_close(
    tmp_path: Path, clock: Clock
) -> None:
    tracker = SettleTracker(tmp_path, 10, settle_seconds=1.0, settle_after_close_seconds=0.0)
    started = watcher.start_observer(
        tmp_path, tracker, threading.Event(), lambda: None, "native", 1.0
    )
    try:
        (tmp_path / "scan.jpg").write_bytes(b"first pass")
        with (tmp_path / "scan.jpg").open("ab") as handle:
            handle.write(b", second pass")
            handle.flush()
            _events_delivered(started, tmp_path)
            assert _settled_over(tracker, clock, 5.0) == [], "reopened for writing: not ready"
        _events_delivered(started, tmp_path)
        assert tracker.take_settled(10) == [Path("scan.jpg")]
    finally:
        started.stop()


def test_a_polling_observer_keeps_the_settle_wait_for_a_closed_file(
    tmp_path: Path, clock: Clock
) -> None:
    """No close events from polling (network shares): a closed file still waits out
    ``settle_seconds`` of unchanged size and mtime."""
    tracker = SettleTracker(tmp_path, 10, settle_seconds=1.0, settle_after_close_seconds=0.0)
    started = watcher.start_observer(
        tmp_path, tracker, threading.Event(), lambda: None, "polling", 0.05
    )
    try:
        assert started.kind == "polling"
        (tmp_path / "scan.jpg").write_bytes(b"a whole scan, closed")
        _events_delivered(started, tmp_path)
        wait_until(lambda: tracker.tracks(Path("scan.jpg")), 10.0, "the polling observer")
        assert _settled_over(tracker, clock, 0.9) == [], "polling: no close events to trust"
        assert _settled_over(tracker, clock, 0.2) == [Path("scan.jpg")]
    finally:
        started.stop()
