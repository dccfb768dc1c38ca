"""What to claim next: the inbox, watched (``watch``) or taken as it is (``run``).

Files reach the daemon three ways: claims an earlier run left in the work folder (recovered
first), files found by a scan of the inbox (at start, every ``daemon.rescan_seconds`` while
watching, and when a new folder appears or the candidate set drains after overflowing), and,
while watching, filesystem events. Every candidate waits in a bounded
:class:`~ocr_pipeline.watcher.SettleTracker` until its size and mtime have settled, and is then
claimed by an atomic rename into the work folder. ``watch`` takes settled files in arrival order
(no file waits behind later ones); ``run`` knows its whole batch and takes the largest first,
which finishes it soonest (longest processing time first).
"""

from __future__ import annotations

import threading

from watchdog.observers.api import BaseObserver

from ocr_pipeline.audit import AuditLog
from ocr_pipeline.claims import Claim, claim_file, recover_claims
from ocr_pipeline.folders import Folders, file_size
from ocr_pipeline.settings import DaemonSettings
from ocr_pipeline.state import KeptLedger
from ocr_pipeline.watcher import SettleTracker, scan_inbox, start_observer

ClaimProblem = tuple[str, OSError]
"""An inbox-relative path whose claim failed, and why (the file stays in the inbox)."""


class InboxSource:
    """Candidates from the inbox, claimed once settled (see the module docstring).

    Args:
        folders: the daemon's folders.
        daemon: queue size, settle times, observer kind, rescan interval.
        kept: originals kept in the inbox after success, skipped while unchanged.
        audit: the audit log (``claimed`` and ``retried`` records).
        wake: set when a candidate arrives, so the daemon's loop looks again.
        watch: True for ``watch`` (observer and periodic rescans), False for ``run``.

    """

    def __init__(
        self,
        folders: Folders,
        daemon: DaemonSettings,
        kept: KeptLedger,
        audit: AuditLog,
        wake: threading.Event,
        watch: bool,
    ) -> None:
        self.folders = folders
        self.daemon = daemon
        self.audit = audit
        self.wake = wake
        self.watch = watch
        self.tracker = SettleTracker(
            folders.inbox,
            daemon.queue_size,
            daemon.settle_seconds,
            daemon.settle_after_close_seconds,
            skip=kept.matches,
        )
        self.rescans = 0
        self._rescan_requested = False
        self._next_rescan = 0.0
        self._observer: BaseObserver | None = None

    def start(self, now: float) -> None:
        """Start watching (``watch`` only); ``now`` is the monotonic time, seconds."""
        if self.watch:
            self._observer = start_observer(
                self.folders.inbox,
                self.tracker,
                self.wake,
                self._request_rescan,
                polling=self.daemon.observer == "polling",
                poll_seconds=self.daemon.poll_seconds,
            )
        self._next_rescan = now + self.daemon.rescan_seconds

    def stop(self) -> None:
        """Stop the observer (no more events)."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _request_rescan(self) -> None:
        self._rescan_requested = True

    def recover(self) -> list[Claim]:
        """Claims an earlier run of this instance left in the work folder, oldest first."""
        claims = recover_claims(self.folders.work)
        for claim in claims:
            self.audit.record(
                "retried",
                source=claim.relative.as_posix(),
                attempt=claim.attempts + 1,
                message="recovered from the work folder after a restart",
            )
        return claims

    def scan(self) -> None:
        """Offer every inbox file to the tracker until it is full."""
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

    def claim(self, limit: int) -> tuple[list[Claim], list[ClaimProblem]]:
        """Claim up to ``limit`` settled files.

        Returns:
            The claims, and the files whose claim failed (they stay in the inbox).

        """
        claims: list[Claim] = []
        problems: list[ClaimProblem] = []
        for relative in self.tracker.take_settled(limit, largest_first=not self.watch):
            try:
                claim = claim_file(self.folders.inbox, relative, self.folders.work)
            except OSError as exc:
                problems.append((relative.as_posix(), exc))
                continue
            if claim is None:
                continue  # taken by another daemon, or removed
            self.audit.record("claimed", source=relative.as_posix(), bytes=file_size(claim.path))
            claims.append(claim)
        return claims, problems

    def pending(self) -> int:
        """Candidates waiting to settle."""
        return len(self.tracker)

    def exhausted(self) -> bool:
        """Nothing is waiting and no scan is owed (``run`` stops when its work is done too)."""
        return (
            len(self.tracker) == 0 and not self.tracker.overflowed and not self._rescan_requested
        )

    def next_settle(self) -> float | None:
        """Seconds until the next candidate may have settled; ``None``: no candidate."""
        return self.tracker.next_due()

    def next_rescan(self, now: float) -> float | None:
        """Seconds until the periodic rescan (``watch``); ``None`` for ``run``."""
        return self._next_rescan - now if self.watch else None
