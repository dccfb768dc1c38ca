"""Finding inbox files and deciding when they are complete: watchdog events, scans, settling.

Candidates come from three sources: the start-up scan, watchdog events (inotify on Linux; a
polling observer for network shares and docker-on-Mac/Windows mounts, which deliver no events)
and a periodic rescan that catches missed events. A candidate is *settled*, hence claimable,
when its size and mtime have not changed for ``settle_seconds``; after a Linux close-write event
``settle_after_close_seconds`` is enough; a file whose mtime is already older than
``settle_seconds`` when first seen (present at start-up, found by a rescan) needs only to be
unchanged between two looks. The set of candidates is bounded (``queue_size``): beyond it, new
names are dropped and found again by the next scan, which runs early when the set drains.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ocr_pipeline.folders import is_ignored, is_ignored_path

QUICK_LOOK_SECONDS = 0.1
"""Gap between the two looks at a file that was already old when first seen, seconds."""


def scan_inbox(inbox: Path) -> Iterator[Path]:
    """Inbox-relative paths of every candidate file, hidden folders pruned, in name order."""
    for folder, dirs, files in os.walk(inbox):
        dirs[:] = sorted(d for d in dirs if not is_ignored(d))
        base = Path(folder).relative_to(inbox)
        for name in sorted(files):
            if not is_ignored(name):
                yield base / name


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    since: float
    """Monotonic time this (size, mtime) was first seen, seconds."""
    quick: bool
    """Old when first seen: one unchanged second look suffices."""
    closed: bool = False


class SettleTracker:
    """Thread-safe, bounded set of candidate files waiting for their size and mtime to settle."""

    def __init__(
        self,
        inbox: Path,
        capacity: int,
        settle_seconds: float,
        settle_after_close_seconds: float,
        skip: Callable[[Path, os.stat_result], bool] | None = None,
    ) -> None:
        self.inbox = inbox
        self.capacity = capacity
        self.settle_seconds = settle_seconds
        self.settle_after_close_seconds = min(settle_after_close_seconds, settle_seconds)
        self.skip = skip
        """Predicate for files to leave alone (kept originals already processed)."""
        self.overflowed = False
        """A name was dropped because the set was full: rescan when it drains."""
        self._lock = threading.Lock()
        self._candidates: dict[Path, _Candidate] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._candidates)

    def observe(self, relative: Path, closed: bool = False) -> bool:
        """Note that a file appeared or changed (``closed``: a close-write event).

        Returns:
            False when the file was dropped (full) or is not a candidate.

        """
        if is_ignored_path(relative):
            return False
        try:
            stat = (self.inbox / relative).stat()
        except OSError:
            return False
        if not _is_regular(stat) or (self.skip is not None and self.skip(relative, stat)):
            return False
        now = time.monotonic()
        with self._lock:
            entry = self._candidates.get(relative)
            if entry is None:
                if len(self._candidates) >= self.capacity:
                    self.overflowed = True
                    return False
                age = time.time() - stat.st_mtime
                self._candidates[relative] = _Candidate(
                    stat.st_size, stat.st_mtime_ns, now, quick=age >= self.settle_seconds
                )
            elif (entry.size, entry.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                entry.size, entry.mtime_ns, entry.since, entry.quick = (
                    stat.st_size,
                    stat.st_mtime_ns,
                    now,
                    False,
                )
            if closed:
                self._candidates[relative].closed = True
        return True

    def _needed(self, entry: _Candidate) -> float:
        if entry.quick:
            return QUICK_LOOK_SECONDS
        if entry.closed:
            return self.settle_after_close_seconds
        return self.settle_seconds

    def take_settled(self, limit: int, largest_first: bool = False) -> list[Path]:
        """Up to ``limit`` settled files, removed from the set, oldest first.

        With ``largest_first``, the largest files (bytes) go first instead: on a batch known in
        advance, longest-processing-time-first scheduling (Graham, 1969) keeps the workers busy
        to the end, where arrival order can leave one large file running alone.
        Files that vanished are forgotten; files that changed start settling again.
        """
        now = time.monotonic()
        settled: list[Path] = []
        with self._lock:
            if largest_first:
                items = sorted(self._candidates.items(), key=lambda item: -item[1].size)
            else:
                items = sorted(self._candidates.items(), key=lambda item: item[1].since)
        for relative, entry in items:
            if len(settled) >= limit:
                break
            if now - entry.since < self._needed(entry):
                continue
            try:
                stat = (self.inbox / relative).stat()
            except OSError:
                with self._lock:
                    self._candidates.pop(relative, None)
                continue
            with self._lock:
                if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                    entry.size, entry.mtime_ns, entry.since = stat.st_size, stat.st_mtime_ns, now
                    entry.quick = entry.closed = False
                    continue
                self._candidates.pop(relative, None)
            settled.append(relative)
        return settled

    def next_due(self) -> float | None:
        """Seconds until the earliest candidate may have settled (``None`` when empty)."""
        now = time.monotonic()
        with self._lock:
            dues = [entry.since + self._needed(entry) - now for entry in self._candidates.values()]
        return max(0.0, min(dues)) if dues else None


def _is_regular(stat: os.stat_result) -> bool:
    import stat as stat_module

    return stat_module.S_ISREG(stat.st_mode)


class _InboxEvents(FileSystemEventHandler):
    """Turns watchdog events into candidates; a new folder asks for a rescan."""

    def __init__(
        self,
        inbox: Path,
        tracker: SettleTracker,
        wake: threading.Event,
        on_new_folder: Callable[[], None],
    ) -> None:
        self.inbox = inbox
        self.tracker = tracker
        self.wake = wake
        self.on_new_folder = on_new_folder

    def _relative(self, path: str | bytes) -> Path | None:
        text = os.fsdecode(path)
        try:
            return Path(text).relative_to(self.inbox)
        except ValueError:
            return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Route one event (called on the observer's thread)."""
        if isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            self.on_new_folder()  # files moved in with a folder raise no events of their own
            self.wake.set()
            return
        if isinstance(event, FileMovedEvent):
            path = event.dest_path
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent)):
            path = event.src_path
        else:
            return
        relative = self._relative(path)
        if relative is not None and self.tracker.observe(
            relative, closed=isinstance(event, FileClosedEvent)
        ):
            self.wake.set()


def start_observer(
    inbox: Path,
    tracker: SettleTracker,
    wake: threading.Event,
    on_new_folder: Callable[[], None],
    polling: bool,
    poll_seconds: float,
) -> BaseObserver:
    """Start a recursive watchdog observer on the inbox (native, or polling every N seconds)."""
    observer: BaseObserver = PollingObserver(timeout=poll_seconds) if polling else Observer()
    observer.schedule(_InboxEvents(inbox, tracker, wake, on_new_folder), str(inbox), recursive=True)
    observer.daemon = True
    observer.start()
    return observer
