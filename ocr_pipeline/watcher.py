"""Finding inbox files and deciding when they are complete: watchdog events, scans, settling.

Candidates come from three sources: the start-up scan, watchdog events and a periodic rescan
that catches missed events. Every entry of the inbox is looked at with ``lstat`` (links are
never followed): a regular file, a symlink (to a file, to a folder, or dangling), a FIFO, a
socket or a device node is a candidate, so that the daemon claims it and answers it (a symlink
or a special file gets a failed report instead of silence); only real folders are not, and
symlinked folders are never descended. Hidden and temporary names are ignored
(:func:`ocr_pipeline.folders.is_ignored`).

When a candidate is *settled*, hence claimable:

* **written, seen by inotify** (Linux, native observer): a file created empty or written to
  (``IN_CREATE`` of an empty regular file, ``IN_MODIFY``) is complete only once its writer
  closes it (``IN_CLOSE_WRITE``), however long the writer pauses; it is claimable as soon as
  that event is handled when ``settle_after_close_seconds`` is 0 (else after that long, for
  writers that close and reopen a file); written again, it waits for its next close. A writer
  that dies closes its files too (the kernel does), so the event comes. Should it never come
  (the kernel's event queue overflowed, or a writer hangs with the file open), the file is
  settled anyway once its size and mtime have not changed for ``open_limit_seconds`` (default
  :data:`OPEN_LIMIT_FACTOR` x ``settle_seconds``, 60 s at the default 2 s). Whether another
  process still holds the file open is not looked up (``/proc/*/fd``): that needs root for
  other users' processes and misses writers outside the container or on another machine, so
  the simple bound is the only fallback;
* **renamed into the inbox** (a move from inside the inbox, or from outside it on the same
  file system: the upload protocol of "write a temporary name, then rename"): complete,
  ``settle_after_close_seconds`` (both observers: a rename is the writer's own signal);
* **seen only by a scan** (present at start, found by a rescan) **or by the polling observer**
  (no close events: network shares, docker-on-Mac/Windows mounts): size and mtime unchanged
  for ``settle_seconds``, however the file was closed; a file whose mtime is
  already older than ``settle_seconds`` when first seen needs only two identical looks
  (:data:`QUICK_LOOK_SECONDS` apart).

``FileOpenedEvent`` (``IN_OPEN``) is not used: it does not tell a reader from a writer, and a
reader's close is ``IN_CLOSE_NOWRITE``, so a file merely looked at (a thumbnailer, a virus
scanner) would wait for the fallback bound.

The set of candidates is bounded (``capacity``): beyond it, new names are dropped and found
again by the next scan, which runs early when the set drains. A path can be *held* (claim
back-off): it is not a candidate, and events and scans do not make it one, until its hold ends.

The observer (:func:`start_observer`) is native (inotify on Linux), polling, or chosen at start
by a probe: a hidden file is dropped into the inbox and its event awaited; docker-on-Mac/Windows
mounts and network shares deliver none, and the polling observer is used instead.
"""

from __future__ import annotations

import os
import stat as stat_module
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
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
from watchdog.observers.polling import PollingObserverVFS

from ocr_pipeline.folders import is_ignored, is_ignored_path

QUICK_LOOK_SECONDS = 0.1
"""Gap between the two looks at a file that was already old when first seen, seconds."""

OPEN_LIMIT_FACTOR = 30.0
"""A file written (inotify) but never closed is settled after this many ``settle_seconds``
with no change of size or mtime: the fallback for a lost close event or a hung writer."""

PROBE_PREFIX = ".ocr-pipeline-probe-"
"""Name of the observer probe file in the inbox (hidden: never an input), then the pid."""

Seen = Literal["scan", "created", "modified", "closed", "moved"]
"""How a candidate was noticed: a scan (or an event of an observer without close events),
``IN_CREATE``, ``IN_MODIFY``, ``IN_CLOSE_WRITE``, or a rename into the inbox."""

ObserverMode = Literal["auto", "native", "polling"]
ObserverKind = Literal["native", "polling"]


def scan_inbox(inbox: Path) -> Iterator[Path]:
    """Inbox-relative paths of every candidate, hidden folders pruned, in name order.

    Candidates are every entry but a real folder: regular files, symlinks (to files, to folders,
    dangling), FIFOs, sockets and device nodes. Symlinked folders are yielded as candidates and
    never descended into. Entries that vanish or cannot be examined while the scan runs are
    skipped; a folder that cannot be read is skipped (``os.walk`` ignores its error).
    """
    for folder, dirs, files in os.walk(inbox):
        base = Path(folder)
        linked = {d for d in dirs if _is_link(base / d)}
        dirs[:] = sorted(d for d in dirs if d not in linked and not is_ignored(d))
        relative = base.relative_to(inbox)
        for name in sorted([*files, *linked]):
            if not is_ignored(name):
                yield relative / name


def _is_link(path: Path) -> bool:
    try:
        return stat_module.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    since: float
    """Monotonic time this (size, mtime) was first seen, seconds."""
    quick: bool
    """Old when first seen: one unchanged second look suffices."""
    closed: bool = False
    """Closed after writing, or renamed into the inbox: complete."""
    writing: bool = False
    """Written to (inotify) and not closed since: wait for the close, or the fallback bound."""


class SettleTracker:
    """Thread-safe, bounded set of candidates waiting to settle (see the module docstring).

    Args:
        inbox: the inbox folder; candidates are paths relative to it.
        capacity: most candidates held (held paths not counted).
        settle_seconds: unchanged size and mtime needed for a file seen by a scan, seconds.
        settle_after_close_seconds: needed after a close-write event or a rename, seconds
            (capped at ``settle_seconds``); 0: claimable at the next :meth:`take_settled`.
        skip: predicate for entries to leave alone (kept originals already processed); given
            the entry's ``lstat``.
        open_limit_seconds: a file written but never closed is settled once unchanged this long,
            seconds; default ``OPEN_LIMIT_FACTOR * settle_seconds``.

    """

    def __init__(
        self,
        inbox: Path,
        capacity: int,
        settle_seconds: float,
        settle_after_close_seconds: float,
        skip: Callable[[Path, os.stat_result], bool] | None = None,
        open_limit_seconds: float | None = None,
    ) -> None:
        self.inbox = inbox
        self.capacity = capacity
        self.settle_seconds = settle_seconds
        self.settle_after_close_seconds = min(settle_after_close_seconds, settle_seconds)
        self.open_limit_seconds = (
            OPEN_LIMIT_FACTOR * settle_seconds if open_limit_seconds is None else open_limit_seconds
        )
        self.skip = skip
        """Predicate for files to leave alone (kept originals already processed)."""
        self.overflowed = False
        """A name was dropped because the set was full: rescan when it drains."""
        self._lock = threading.Lock()
        self._candidates: dict[Path, _Candidate] = {}
        self._held: dict[Path, float] = {}
        """Path -> monotonic time its hold ends, seconds."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._candidates)

    def observe(self, relative: Path, seen: Seen = "scan") -> bool:
        """Note that an entry appeared or changed, and how (``seen``).

        ``created`` marks an empty regular file (with one link: not a hard link to a complete
        file) as being written; ``modified`` marks a regular file as being written; ``closed``
        and ``moved`` mark it complete. Callers pass ``scan`` for events of an observer that
        delivers no close events. Never raises: an entry that cannot be examined is not a
        candidate.

        Returns:
            False when the entry is not a candidate (ignored name, gone, a folder, skipped,
            held) or was dropped because the set is full.

        """
        if is_ignored_path(relative):
            return False
        with self._lock:
            if self._is_held(relative, time.monotonic()):
                return False
        try:
            stat = os.lstat(self.inbox / relative)
        except OSError:
            return False
        if stat_module.S_ISDIR(stat.st_mode) or (
            self.skip is not None and self.skip(relative, stat)
        ):
            return False
        regular = stat_module.S_ISREG(stat.st_mode)
        now = time.monotonic()
        with self._lock:
            entry = self._candidates.get(relative)
            if entry is None:
                if len(self._candidates) >= self.capacity:
                    self.overflowed = True
                    return False
                age = time.time() - stat.st_mtime
                entry = _Candidate(
                    stat.st_size, stat.st_mtime_ns, now, quick=age >= self.settle_seconds
                )
                self._candidates[relative] = entry
            elif (entry.size, entry.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                entry.size, entry.mtime_ns, entry.since = stat.st_size, stat.st_mtime_ns, now
                entry.quick = entry.closed = False
            if seen in ("closed", "moved"):
                entry.writing, entry.closed = False, True
            elif regular and (
                seen == "modified"
                or (seen == "created" and stat.st_size == 0 and stat.st_nlink == 1)
            ):
                entry.writing, entry.closed, entry.quick = True, False, False
        return True

    def _needed(self, entry: _Candidate) -> float:
        """Seconds ``entry`` must stay unchanged before it is handed out."""
        if entry.writing:
            return self.open_limit_seconds
        needed = self.settle_after_close_seconds if entry.closed else self.settle_seconds
        return min(needed, QUICK_LOOK_SECONDS) if entry.quick else needed

    def hold(self, relative: Path, seconds: float) -> None:
        """Forget ``relative`` and refuse it as a candidate for ``seconds`` (claim back-off).

        When the hold ends, :meth:`take_settled` offers it again (a fresh look: unchanged and
        old, it is claimable after :data:`QUICK_LOOK_SECONDS`).
        """
        with self._lock:
            self._candidates.pop(relative, None)
            self._held[relative] = time.monotonic() + seconds

    def _is_held(self, relative: Path, now: float) -> bool:
        """True while ``relative`` is held (call with the lock held)."""
        until = self._held.get(relative)
        return until is not None and now < until

    def tracks(self, relative: Path) -> bool:
        """True when ``relative`` is a candidate or held."""
        with self._lock:
            return relative in self._candidates or relative in self._held

    def clear(self) -> None:
        """Forget every candidate and hold (the inbox folder was replaced)."""
        with self._lock:
            self._candidates.clear()
            self._held.clear()
            self.overflowed = False

    def _release_holds(self, now: float) -> None:
        """Offer again every path whose hold has ended (gone ones are forgotten)."""
        with self._lock:
            due = [relative for relative, until in self._held.items() if until <= now]
            for relative in due:
                del self._held[relative]
        for relative in due:
            self.observe(relative)

    def take_settled(self, limit: int, largest_first: bool = False) -> list[Path]:
        """Up to ``limit`` settled candidates, removed from the set, oldest first.

        With ``largest_first``, the largest files (bytes) go first instead: on a batch known in
        advance, longest-processing-time-first scheduling (Graham, 1969) keeps the workers busy
        to the end, where arrival order can leave one large file running alone.
        Entries that vanished are forgotten; entries that changed start settling again. Paths
        whose hold ended are offered again first.
        """
        now = time.monotonic()
        self._release_holds(now)
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
                stat = os.lstat(self.inbox / relative)
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
        """Seconds until a candidate may have settled or a hold ends (``None``: neither)."""
        now = time.monotonic()
        with self._lock:
            dues = [entry.since + self._needed(entry) - now for entry in self._candidates.values()]
            dues.extend(until - now for until in self._held.values())
        return max(0.0, min(dues)) if dues else None


class _InboxEvents(FileSystemEventHandler):
    """Turns watchdog events into candidates; a new folder asks for a rescan.

    Args:
        inbox: the watched folder.
        tracker: where candidates go.
        wake: set when something arrived, or when the inbox folder itself was deleted.
        on_new_folder: called for a new (or moved-in) visible folder: its files raised no
            events of their own.
        close_events: the observer reports close-write events (inotify): written files wait
            for theirs.

    """

    def __init__(
        self,
        inbox: Path,
        tracker: SettleTracker,
        wake: threading.Event,
        on_new_folder: Callable[[], None],
        close_events: bool,
    ) -> None:
        self.inbox = inbox
        self.tracker = tracker
        self.wake = wake
        self.on_new_folder = on_new_folder
        self.close_events = close_events
        self.probe: Path | None = None
        """The probe file whose event is awaited (``auto``), if any."""
        self.probe_seen = threading.Event()

    def _relative(self, path: str | bytes) -> Path | None:
        text = os.fsdecode(path)
        if not text:
            return None
        try:
            return Path(text).relative_to(self.inbox)
        except ValueError:
            return None

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Route one event (called on the observer's thread)."""
        source = self._relative(event.src_path)
        if self.probe is not None and source == Path(self.probe.name):
            self.probe_seen.set()
            return
        if isinstance(event, (DirDeletedEvent, DirMovedEvent)) and source == Path():
            self.wake.set()  # the daemon's loop then asks InboxSource.inbox_changed()
            return
        if isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            folder = self._relative(event.dest_path) if isinstance(event, DirMovedEvent) else source
            # Hidden folders (the work folder's claim folders) hold no inputs: no rescan.
            if folder is not None and not is_ignored_path(folder):
                self.on_new_folder()  # files moved in with a folder raise no events of their own
                self.wake.set()
            return
        seen: Seen
        if isinstance(event, FileMovedEvent):
            relative, seen = self._relative(event.dest_path), "moved"
        elif isinstance(event, FileClosedEvent):
            relative, seen = source, "closed"
        elif isinstance(event, FileCreatedEvent):
            relative, seen = source, "created"
        elif isinstance(event, FileModifiedEvent):
            relative, seen = source, "modified"
        else:
            return
        if not self.close_events and seen in ("created", "modified"):
            seen = "scan"
        if relative is not None and self.tracker.observe(relative, seen):
            self.wake.set()


@dataclass
class StartedObserver:
    """A running observer, its kind, and why that kind."""

    observer: BaseObserver
    handler: _InboxEvents
    kind: ObserverKind
    reason: str
    """Why this kind: the setting, the probe's outcome, or why the native observer failed."""

    def alive(self) -> bool:
        """True while the observer thread and every emitter run.

        Watchdog stops an emitter whose watched folder was deleted.
        """
        return self.observer.is_alive() and all(e.is_alive() for e in self.observer.emitters)

    def stop(self) -> None:
        """Stop the observer and wait for it (up to 5 s)."""
        self.observer.stop()
        if self.observer.is_alive():
            self.observer.join(timeout=5)


def native_observer() -> BaseObserver:
    """The platform's native observer.

    On Linux, inotify reporting a rename from outside the inbox as a move
    (``generate_full_events``), so a file renamed into the inbox counts as complete.
    """
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()


def _has_close_events(observer: BaseObserver) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    from watchdog.observers.inotify import InotifyObserver

    return isinstance(observer, InotifyObserver)


def polling_observer(poll_seconds: float) -> BaseObserver:
    """A polling observer (every ``poll_seconds``) looking at entries with ``lstat``.

    Links are not followed: a dangling symlink is seen, a symlinked folder is not descended.
    """
    return PollingObserverVFS(stat=os.lstat, listdir=os.scandir, polling_interval=poll_seconds)


def _run(
    observer: BaseObserver,
    inbox: Path,
    tracker: SettleTracker,
    wake: threading.Event,
    on_new_folder: Callable[[], None],
    close_events: bool,
) -> _InboxEvents:
    handler = _InboxEvents(inbox, tracker, wake, on_new_folder, close_events)
    observer.schedule(handler, str(inbox), recursive=True)
    observer.daemon = True
    observer.start()
    return handler


def probe_events(inbox: Path, handler: _InboxEvents, seconds: float) -> str | None:
    """Drop a hidden probe file into the inbox and wait up to ``seconds`` for its event.

    Returns:
        ``None`` when the event came, else why not (no event in time).

    Raises:
        OSError: the probe file cannot be created (the inbox is not writable).

    """
    probe = inbox / f"{PROBE_PREFIX}{os.getpid()}"
    handler.probe_seen.clear()
    handler.probe = probe
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"probe\n")
        finally:
            os.close(fd)
        if handler.probe_seen.wait(seconds):
            return None
        return (
            f"no event for probe file {probe.name} within {seconds:g} s (a docker-on-Mac/Windows "
            "mount or a network share delivers none)"
        )
    finally:
        probe.unlink(missing_ok=True)


def start_observer(
    inbox: Path,
    tracker: SettleTracker,
    wake: threading.Event,
    on_new_folder: Callable[[], None],
    mode: ObserverMode,
    poll_seconds: float,
    probe_seconds: float = 3.0,
    native: Callable[[], BaseObserver] = native_observer,
) -> StartedObserver:
    """Start a recursive observer on the inbox.

    Args:
        inbox: the folder to watch.
        tracker: where candidates go.
        wake: set when a candidate arrives or the inbox folder is deleted.
        on_new_folder: called when a visible folder appears (the caller rescans).
        mode: ``native``; ``polling`` (every ``poll_seconds``); ``auto``: native, then a probe
            file's event is awaited for up to ``probe_seconds`` and, none coming (or the native
            observer failing to start, e.g. inotify's watch limit), polling instead.
        poll_seconds: polling interval, seconds.
        probe_seconds: longest wait for the probe's event, seconds.
        native: makes the native observer (tests pass one that delivers no events).

    Returns:
        The running observer, its kind and the reason for it.

    Raises:
        OSError: the observer cannot watch the inbox (gone, not a folder, not readable; with
            ``native``: the inotify watch or instance limit).

    """
    if mode == "polling":
        observer = polling_observer(poll_seconds)
        handler = _run(observer, inbox, tracker, wake, on_new_folder, close_events=False)
        return StartedObserver(observer, handler, "polling", "daemon.observer is polling")
    observer = native()
    try:
        handler = _run(
            observer, inbox, tracker, wake, on_new_folder, close_events=_has_close_events(observer)
        )
    except OSError as exc:
        if mode == "native":
            raise
        reason = f"the native observer cannot watch the inbox: {exc}"
    else:
        if mode == "native":
            return StartedObserver(observer, handler, "native", "daemon.observer is native")
        try:
            failed = probe_events(inbox, handler, probe_seconds)
        except OSError as exc:
            return StartedObserver(
                observer, handler, "native", f"probe file not written ({exc}); native assumed"
            )
        if failed is None:
            return StartedObserver(observer, handler, "native", "probe file event received")
        reason = failed
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
    observer = polling_observer(poll_seconds)
    handler = _run(observer, inbox, tracker, wake, on_new_folder, close_events=False)
    return StartedObserver(observer, handler, "polling", reason)
