"""What to claim next: the inbox, watched (``watch``) or taken as it is (``run``).

Files reach the daemon three ways: claims an earlier run left in the work folder (recovered
first), files found by a scan of the inbox (at start, every ``daemon.rescan_seconds`` while
watching, and when a new folder appears or the candidate set drains after overflowing), and,
while watching, filesystem events. Every candidate waits in a bounded
:class:`~ocr_pipeline.watcher.SettleTracker` until it has settled (see :mod:`ocr_pipeline.watcher`:
on Linux a written file waits for its close), and is then claimed by an atomic rename into the
work folder. ``watch`` takes settled files in arrival order (no file waits behind later ones);
``run`` knows its whole batch and takes the largest first, which finishes it soonest (longest
processing time first).

A claim that fails (a sub-folder that is not writable, a work folder on another file system)
leaves the file in the inbox and puts its path in back-off: it is not offered again for 1 s,
then 2, 4, ... up to ``daemon.retry_max_seconds``, whatever events or rescans say, and the
failure is returned to the caller (to log) only the first time. A success, or the file
vanishing, ends the back-off.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.observers.api import BaseObserver

from ocr_pipeline.audit import AuditLog, get_logger
from ocr_pipeline.claims import Claim, claim_file, recover_claims
from ocr_pipeline.folders import Folders, file_size
from ocr_pipeline.settings import DaemonSettings
from ocr_pipeline.state import KeptLedger
from ocr_pipeline.watcher import (
    ObserverKind,
    SettleTracker,
    StartedObserver,
    native_observer,
    scan_inbox,
    start_observer,
)

ClaimProblem = tuple[str, OSError]
"""An inbox-relative path whose claim failed, and why (the file stays in the inbox)."""

FIRST_CLAIM_RETRY_SECONDS = 1.0
"""Pause after a path's first failed claim, seconds; it doubles per failure up to
``daemon.retry_max_seconds``."""


@dataclass
class _Backoff:
    """A path whose claim failed: the pause before its next try, seconds."""

    pause: float


class InboxSource:
    """Candidates from the inbox, claimed once settled (see the module docstring).

    Args:
        folders: the daemon's folders.
        daemon: queue size, settle times, observer kind, rescan interval, claim back-off cap.
        kept: originals kept in the inbox after success, skipped while unchanged.
        audit: the audit log (``claimed`` and ``retried`` records).
        wake: set when a candidate arrives (or the inbox folder is deleted), so the daemon's
            loop looks again.
        watch: True for ``watch`` (observer and periodic rescans), False for ``run``.
        native: makes the native observer; tests pass one that delivers no events to exercise
            ``daemon.observer = "auto"``'s fallback to polling.

    """

    def __init__(
        self,
        folders: Folders,
        daemon: DaemonSettings,
        kept: KeptLedger,
        audit: AuditLog,
        wake: threading.Event,
        watch: bool,
        native: Callable[[], BaseObserver] = native_observer,
    ) -> None:
        self.folders = folders
        self.daemon = daemon
        self.audit = audit
        self.wake = wake
        self.watch = watch
        self.log = get_logger("ocr_pipeline.daemon")
        self.tracker = SettleTracker(
            folders.inbox,
            daemon.queue_size,
            daemon.settle_seconds,
            daemon.settle_after_close_seconds,
            skip=kept.matches,
        )
        self.rescans = 0
        self.observer_kind: ObserverKind | None = None
        """The observer running: ``native`` or ``polling``; ``None`` when not watching."""
        self.observer_reason: str | None = None
        """Why that observer (the setting, or the start-up probe's outcome)."""
        self._native = native
        self._rescan_requested = False
        self._next_rescan = 0.0
        self._observer: StartedObserver | None = None
        self._identity: tuple[int, int] | None = None
        self._backoff: dict[Path, _Backoff] = {}
        self._next_vanish_check = 0.0

    # ----------------------------------------------------------------- watching

    def start(self, now: float) -> None:
        """Note the inbox's identity and start watching (``watch`` only).

        ``now`` is the monotonic time, seconds. With ``daemon.observer = "auto"`` this waits
        up to ``daemon.observer_probe_seconds`` for the probe file's event (milliseconds when
        events work); a fallback to polling is logged as a warning naming the inbox and why.

        Raises:
            OSError: the inbox cannot be examined or watched.

        """
        self._identity = self._inbox_identity()
        if self.watch:
            self._start_observer()
        self._next_rescan = now + self.daemon.rescan_seconds

    def _start_observer(self) -> None:
        started = start_observer(
            self.folders.inbox,
            self.tracker,
            self.wake,
            self._request_rescan,
            mode=self.daemon.observer,
            poll_seconds=self.daemon.poll_seconds,
            probe_seconds=self.daemon.observer_probe_seconds,
            native=self._native,
        )
        self._observer = started
        self.observer_kind = started.kind
        self.observer_reason = started.reason
        if self.daemon.observer == "auto" and started.kind == "polling":
            self.log.warning(
                "no filesystem events from the inbox; polling it instead",
                inbox=str(self.folders.inbox),
                observer="polling",
                poll_seconds=self.daemon.poll_seconds,
                reason=started.reason,
            )

    def stop(self) -> None:
        """Stop the observer (no more events). Safe to call when none runs."""
        if self._observer is not None:
            self._observer.stop()
            self._observer = None

    def _inbox_identity(self) -> tuple[int, int]:
        stat = os.stat(self.folders.inbox)
        return stat.st_dev, stat.st_ino

    def inbox_changed(self) -> bool:
        """True when the inbox must be watched anew: cheap (one ``stat``), call every loop.

        That is: the folder under the inbox's name is not the one noted at :meth:`start` or
        :meth:`rewatch` (another ``(st_dev, st_ino)``: deleted and created again, renamed away
        and replaced, a remount), or there is none (deleted, renamed away, unreadable), or
        (``watch``) the observer stopped watching it (watchdog ends an emitter whose folder was
        deleted). Never raises.
        """
        try:
            identity = self._inbox_identity()
        except OSError:
            return True
        if identity != self._identity:
            return True
        return self.watch and self._observer is not None and not self._observer.alive()

    def rewatch(self) -> None:
        """Watch the folder now under the inbox's name (after :meth:`inbox_changed`).

        Stops the observer, forgets every candidate and claim back-off (they named entries of
        the old folder), notes the new folder's identity, starts the observer on it (``auto``
        probes again) and asks for a rescan (:meth:`rescan_if_due` runs it at once).

        Raises:
            OSError: there is no inbox folder (yet), or it cannot be watched; no observer then
                runs and :meth:`inbox_changed` stays True: call again later.

        """
        self.stop()
        self.tracker.clear()
        self._backoff.clear()
        self._identity = self._inbox_identity()
        if self.watch:
            self._start_observer()
        self._request_rescan()
        self.wake.set()

    def _request_rescan(self) -> None:
        self._rescan_requested = True

    # ----------------------------------------------------------------- finding

    def recover(self) -> list[Claim]:
        """Claims an earlier run of this instance left in the work folder, oldest first.

        Each gets a ``retried`` record, except those whose terminal state was pending (the
        caller completes them).
        """
        claims = recover_claims(self.folders.work)
        for claim in claims:
            if claim.pending is not None:
                continue  # its terminal record is written as it is completed
            self.audit.record(
                "retried",
                source=claim.relative.as_posix(),
                attempt=claim.started + 1,
                message="recovered from the work folder after a restart",
            )
        return claims

    def scan(self) -> None:
        """Offer every inbox entry to the tracker until it is full (held paths are refused)."""
        self._rescan_requested = False
        self.tracker.overflowed = False
        self.rescans += 1
        for relative in scan_inbox(self.folders.inbox):
            self.tracker.observe(relative)
            if self.tracker.overflowed:
                break

    def rescan_if_due(self, now: float) -> bool:
        """Scan when asked to, when the tracker drained after overflowing, or on the interval.

        Returns:
            True when it scanned.

        """
        drained = self.tracker.overflowed and len(self.tracker) < self.daemon.queue_size // 2
        if not (self._rescan_requested or drained or (self.watch and now >= self._next_rescan)):
            return False
        self.scan()
        self._next_rescan = now + self.daemon.rescan_seconds
        return True

    # ----------------------------------------------------------------- claiming

    def claim(self, limit: int) -> tuple[list[Claim], list[ClaimProblem]]:
        """Claim up to ``limit`` settled entries (files, symlinks, special files: never opened).

        A failed claim puts the path in back-off (see the module docstring).

        Returns:
            The claims, and the paths whose claim failed *for the first time* since they last
            succeeded or appeared (they stay in the inbox): log each once.

        """
        self._forget_vanished()
        claims: list[Claim] = []
        problems: list[ClaimProblem] = []
        for relative in self.tracker.take_settled(limit, largest_first=not self.watch):
            try:
                claim = claim_file(self.folders.inbox, relative, self.folders.work)
            except OSError as exc:
                if self._back_off(relative):
                    problems.append((relative.as_posix(), exc))
                continue
            self._backoff.pop(relative, None)
            if claim is None:
                continue  # taken by another daemon, or removed
            self.audit.record("claimed", source=relative.as_posix(), bytes=file_size(claim.path))
            claims.append(claim)
        return claims, problems

    def _back_off(self, relative: Path) -> bool:
        """Hold ``relative`` for its next pause. Returns True on its first failure."""
        backoff = self._backoff.get(relative)
        if backoff is None:
            backoff = self._backoff[relative] = _Backoff(FIRST_CLAIM_RETRY_SECONDS)
            first = True
        else:
            backoff.pause = min(backoff.pause * 2, self.daemon.retry_max_seconds)
            first = False
        self.tracker.hold(relative, min(backoff.pause, self.daemon.retry_max_seconds))
        return first

    def _forget_vanished(self) -> None:
        """Forget the back-off of paths that are gone, so their next failure is reported.

        One ``lstat`` per path in back-off, at most every ``FIRST_CLAIM_RETRY_SECONDS``.
        """
        now = time.monotonic()
        if not self._backoff or now < self._next_vanish_check:
            return
        self._next_vanish_check = now + FIRST_CLAIM_RETRY_SECONDS
        for relative in list(self._backoff):
            if not os.path.lexists(self.folders.inbox / relative):
                del self._backoff[relative]

    def backing_off(self) -> int:
        """Paths whose claim failed and that wait for their next try."""
        return len(self._backoff)

    # ----------------------------------------------------------------- the loop's questions

    def pending(self) -> int:
        """Candidates waiting to settle."""
        return len(self.tracker)

    def exhausted(self) -> bool:
        """Nothing is waiting and no scan is owed (``run`` stops when its work is done too).

        Paths in claim back-off do not count: ``run`` reported them and leaves them.
        """
        return len(self.tracker) == 0 and not self.tracker.overflowed and not self._rescan_requested

    def next_settle(self) -> float | None:
        """Seconds until a candidate may have settled or a claim back-off ends (or ``None``)."""
        return self.tracker.next_due()

    def next_rescan(self, now: float) -> float | None:
        """Seconds until the periodic rescan (``watch``); ``None`` for ``run``."""
        return self._next_rescan - now if self.watch else None
