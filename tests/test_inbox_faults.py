"""The inbox under faults (issue 16): paused writers, claims that cannot succeed, no events,
the inbox replaced, symlinks and special files.

Real folders and real observers throughout: :class:`InboxSource` is driven by a loop shaped
like the daemon's (claim, rescan when due, wait on the wake event until the next settle or
rescan), and one test runs the real daemon. Waits are bounded waits on a condition; where the
point is that something does *not* happen, the loop runs for a fixed window instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from watchdog.events import FileOpenedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, EventEmitter

from ocr_pipeline.audit import AuditLog
from ocr_pipeline.claims import Claim, claim_file
from ocr_pipeline.daemon import sources
from ocr_pipeline.daemon.sources import ClaimProblem, InboxSource
from ocr_pipeline.folders import Folders
from ocr_pipeline.settings import DaemonSettings
from ocr_pipeline.state import KeptLedger
from ocr_pipeline.watcher import SettleTracker, native_observer, start_observer
from tests.conftest import SROIE_DEV
from tests.daemon_harness import DaemonProcess, Layout, wait_until

RECEIPT = SROIE_DEV / "images" / "000.jpg"


# ----------------------------------------------------------------- the rig


class _SilentEmitter(EventEmitter):
    """An emitter that watches nothing: what a docker-on-Mac mount or a network share gives."""

    def queue_events(self, timeout: float) -> None:
        self.stopped_event.wait(timeout)


class SilentObserver(BaseObserver):
    """A real watchdog observer (threads, schedule, stop) whose emitter delivers no events."""

    def __init__(self) -> None:
        super().__init__(_SilentEmitter, timeout=0.1)


class Rig:
    """An :class:`InboxSource` on temporary folders, and a loop driving it like the daemon."""

    def __init__(
        self,
        base: Path,
        *,
        work: Path | None = None,
        native: Callable[[], BaseObserver] = native_observer,
        **daemon: Any,
    ) -> None:
        self.inbox = base / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.folders = Folders(
            inbox=self.inbox,
            outbox=base / "outbox",
            work=work or self.inbox / ".ocr-pipeline" / "work" / "default",
            archive=base / "archive",
            failed=base / "failed",
            audit_log=base / "logs" / "audit.jsonl",
            state=base / "outbox" / ".ocr-pipeline",
            instance="default",
        )
        self.folders.work.mkdir(parents=True, exist_ok=True)
        settings = {"observer": "native", "rescan_seconds": 3600.0, **daemon}
        self.wake = threading.Event()
        self.audit = AuditLog(self.folders.audit_log, "default")
        self.source = InboxSource(
            self.folders,
            DaemonSettings(**settings),
            KeptLedger(self.folders.state, "default"),
            self.audit,
            self.wake,
            watch=True,
            native=native,
        )
        self.claims: list[Claim] = []
        self.problems: list[ClaimProblem] = []
        self.forced_rescans = 0

    def start(self) -> Rig:
        self.source.start(time.monotonic())
        self.source.scan()
        return self

    def close(self) -> None:
        self.source.stop()
        self.audit.close()

    def drive(
        self,
        seconds: float,
        until: Callable[[], bool] | None = None,
        rescan_every: float | None = None,
    ) -> bool:
        """Run the daemon's loop for up to ``seconds``, or until ``until()`` holds.

        ``rescan_every`` forces a full rescan at that interval (seconds), as the periodic one.

        Returns:
            Whether ``until`` held (False when there is none: the window ran out).

        """
        deadline = time.monotonic() + seconds
        next_forced = time.monotonic() + (rescan_every or 0.0)
        while True:
            self.wake.clear()
            claims, problems = self.source.claim(4)
            self.claims += claims
            self.problems += problems
            now = time.monotonic()
            if self.source.rescan_if_due(now):
                self.wake.set()
            if rescan_every is not None and now >= next_forced:
                self.source.scan()
                self.forced_rescans += 1
                next_forced = now + rescan_every
            if until is not None and until():
                return True
            if now >= deadline:
                return False
            waits = [1.0, deadline - now]
            for due in (self.source.next_settle(), self.source.next_rescan(now)):
                if due is not None:
                    waits.append(due)
            if rescan_every is not None:
                waits.append(next_forced - now)
            self.wake.wait(timeout=max(0.01, min(waits)))


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    """Rigs made by a test, closed after it."""
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.close()


def _old_file(path: Path, data: bytes = b"scan bytes") -> Path:
    """A complete file whose mtime is a minute old (as if dropped before the daemon started)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


class _RenameSpy:
    """Counts claim attempts (each one a real ``rename`` by the real ``claim_file``)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[float, str]] = []

    def __call__(self, inbox: Path, relative: Path, work: Path) -> Claim | None:
        self.attempts.append((time.monotonic(), relative.as_posix()))
        return claim_file(inbox, relative, work)

    def of(self, relative: str) -> int:
        return sum(1 for _, name in self.attempts if name == relative)


# ----------------------------------------------------------------- 4: a writer that pauses


def test_a_paused_writer_is_claimed_once_with_all_its_bytes(
    tmp_path: Path, rigs: list[Rig]
) -> None:
    rig = Rig(tmp_path, settle_seconds=0.2, settle_after_close_seconds=0.1).start()
    rigs.append(rig)
    data = RECEIPT.read_bytes()
    path = rig.inbox / "receipt.jpg"
    with path.open("wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        rig.drive(1.0)  # 5 x settle_seconds with the file half written and open
        assert rig.claims == [] and rig.problems == [], "claimed while its writer paused"
        handle.write(data[len(data) // 2 :])
    assert rig.drive(3.0, until=lambda: bool(rig.claims)), "never claimed after the close"
    rig.drive(0.3)
    assert len(rig.claims) == 1
    assert rig.claims[0].path.read_bytes() == data


def test_a_file_renamed_into_the_inbox_needs_only_the_short_settle(
    tmp_path: Path, rigs: list[Rig]
) -> None:
    """Write elsewhere, then rename in: complete at once (settle_seconds 30 is never waited)."""
    rig = Rig(tmp_path, settle_seconds=30.0, settle_after_close_seconds=0.1).start()
    rigs.append(rig)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "upload.jpg").write_bytes(RECEIPT.read_bytes())
    os.rename(staging / "upload.jpg", rig.inbox / "receipt.jpg")
    started = time.monotonic()
    assert rig.drive(3.0, until=lambda: bool(rig.claims))
    assert time.monotonic() - started < 3.0
    assert [c.relative.as_posix() for c in rig.claims] == ["receipt.jpg"]


def test_a_file_left_open_settles_after_the_open_limit(tmp_path: Path) -> None:
    """The fallback when no close comes (a hung writer, a lost event): the bound, not forever."""
    tracker = SettleTracker(
        tmp_path, 10, settle_seconds=0.1, settle_after_close_seconds=0.05, open_limit_seconds=0.8
    )
    wake = threading.Event()
    started = start_observer(tmp_path, tracker, wake, lambda: None, "native", 1.0)
    try:
        with (tmp_path / "scan.jpg").open("wb") as handle:
            handle.write(b"written, never closed")
            handle.flush()
            wrote = time.monotonic()
            taken: list[Path] = []

            def settled() -> bool:
                taken.extend(tracker.take_settled(10))
                return bool(taken)

            wait_until(settled, 5.0, "the open file to settle", interval=0.02)
            assert taken == [Path("scan.jpg")]
            assert time.monotonic() - wrote >= 0.8, "settled before the open limit"
    finally:
        started.stop()


@pytest.mark.daemon
def test_the_daemon_waits_for_a_paused_writer_and_fails_nothing(tmp_path: Path) -> None:
    """The issue as reported: a writer pausing 4 x settle_seconds mid-copy; one ``done``."""
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout).start()  # settle_seconds 0.5 (FAST_ENV)
    try:
        data = RECEIPT.read_bytes()
        with (layout.inbox / "receipt.jpg").open("wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            # The pause counts from when the daemon has the half-written file as a candidate.
            daemon.wait(
                lambda: daemon.status().get("queue_depth") == 1, 30, "the file seen, settling"
            )
            time.sleep(2.0)  # the writer's pause, 4 x settle_seconds: the behaviour under test
            assert layout.events("claimed") == [], "claimed while its writer paused"
            assert daemon.exited() is None
            assert daemon.status().get("queue_depth") == 1, "still waiting for its close"
            handle.write(data[len(data) // 2 :])
        daemon.wait(lambda: bool(layout.events("done")), 120, "the receipt's done record")
    finally:
        assert daemon.stop() == 0
    assert [r["source"] for r in layout.events("claimed")] == ["receipt.jpg"]
    assert [r["source"] for r in layout.events("done")] == ["receipt.jpg"]
    assert layout.files(layout.failed) == []
    assert layout.files(layout.archive) == ["receipt.jpg"]
    assert (layout.archive / "receipt.jpg").read_bytes() == data


# ----------------------------------------------------------------- 13: claims that keep failing


@contextlib.contextmanager
def _unrenamable(folder: Path) -> Iterator[str]:
    """Make renames out of ``folder`` fail: ``chmod 0555``, or as root (which ignores modes)
    ``chattr +i`` (ext4, xfs, btrfs; CAP_LINUX_IMMUTABLE). Skips when neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "chmod 0555"
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("root ignores chmod, and there is no chattr")
    done = subprocess.run([chattr, "+i", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"root ignores chmod, and chattr +i is refused: {done.stderr!r}")
    try:
        yield "chattr +i"
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_sub_folder_that_cannot_be_claimed_from_backs_off_and_says_so_once(
    tmp_path: Path, rigs: list[Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _RenameSpy()
    monkeypatch.setattr(sources, "claim_file", spy)
    rig = Rig(tmp_path, settle_seconds=0.1, settle_after_close_seconds=0.05, retry_max_seconds=2)
    rigs.append(rig)
    stuck = _old_file(rig.inbox / "locked" / "a.jpg")
    _old_file(rig.inbox / "free.jpg")
    with _unrenamable(stuck.parent):
        rig.start()
        rig.drive(0.6, rescan_every=0.2)
        with stuck.open("ab") as handle:  # events for the held file (modify, close-write)
            handle.write(b" more")
        rig.drive(3.0, rescan_every=0.2)
        # About 10 a second before: the claim folder made in the (watched) work folder
        # raised a folder event, hence a rescan, and the old file was claimable 0.1 s later.
        attempts = spy.of("locked/a.jpg")
        assert 2 <= attempts <= 4, f"{attempts} claim attempts in 3.6 s (1 s, 2 s, 2 s pauses)"
        assert [(name, type(exc)) for name, exc in rig.problems] == [
            ("locked/a.jpg", type(rig.problems[0][1]))
        ], "the failure is returned once"
        assert rig.problems[0][1].errno in (errno.EACCES, errno.EPERM)
        assert rig.source.rescans == 1 + rig.forced_rescans, "claims raised no rescans"
        assert rig.forced_rescans >= 10
        assert [c.relative.as_posix() for c in rig.claims] == ["free.jpg"]
        assert stuck.exists()
        assert rig.source.backing_off() == 1
    assert rig.drive(4.0, until=lambda: len(rig.claims) == 2), "not claimed once writable"
    assert rig.claims[1].relative.as_posix() == "locked/a.jpg"
    assert rig.source.backing_off() == 0
    assert len(rig.problems) == 1


def test_a_work_folder_on_another_file_system_backs_off_and_forgets_vanished_files(
    tmp_path: Path, rigs: list[Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root-proof: a rename across file systems fails (EXDEV) whoever runs it."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the temporary folder")
    spy = _RenameSpy()
    monkeypatch.setattr(sources, "claim_file", spy)
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        rig = Rig(tmp_path, work=Path(elsewhere) / "work", settle_seconds=0.1)
        rigs.append(rig)
        path = _old_file(rig.inbox / "a.jpg")
        rig.start()
        rig.drive(2.5, rescan_every=0.2)
        assert 2 <= spy.of("a.jpg") <= 3
        assert [(name, exc.errno) for name, exc in rig.problems] == [("a.jpg", errno.EXDEV)]
        path.unlink()
        assert rig.drive(3.0, until=lambda: rig.source.backing_off() == 0), "vanished, forgotten"
        _old_file(path)
        assert rig.drive(5.0, until=lambda: len(rig.problems) == 2), "a new failure is told"
        assert [name for name, _ in rig.problems] == ["a.jpg", "a.jpg"]
        assert rig.claims == []


# ----------------------------------------------------------------- 14: no events at all


def test_observer_auto_picks_native_on_a_local_folder(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = Rig(tmp_path, observer="auto", observer_probe_seconds=3.0, settle_seconds=0.1)
    rigs.append(rig)
    started = time.monotonic()
    rig.start()
    assert time.monotonic() - started < 2.0, "the probe's event comes at once"
    assert rig.source.observer_kind == "native"
    assert rig.source.observer_reason == "probe file event received"
    assert list(rig.inbox.iterdir()) == [rig.inbox / ".ocr-pipeline"], "probe file removed"
    (rig.inbox / "late.jpg").write_bytes(b"scan")
    assert rig.drive(3.0, until=lambda: bool(rig.claims))
    assert rig.source.rescans == 1


def test_observer_auto_falls_back_to_polling_when_no_event_comes(
    tmp_path: Path, rigs: list[Rig]
) -> None:
    silent: list[SilentObserver] = []

    def make_silent() -> BaseObserver:
        silent.append(SilentObserver())
        return silent[0]

    rig = Rig(
        tmp_path,
        native=make_silent,
        observer="auto",
        observer_probe_seconds=0.3,
        poll_seconds=0.1,
        settle_seconds=0.1,
    )
    rigs.append(rig)
    with structlog.testing.capture_logs() as logs:
        rig.start()
    assert rig.source.observer_kind == "polling"
    assert rig.source.observer_reason is not None
    assert "no event for probe file" in rig.source.observer_reason
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["inbox"] == str(rig.inbox)
    assert warnings[0]["reason"] == rig.source.observer_reason
    assert not silent[0].is_alive(), "the silent observer was stopped"
    assert not list(rig.inbox.glob(".ocr-pipeline-probe-*"))
    (rig.inbox / "late.jpg").write_bytes(b"scan")  # no rescan for an hour: polling finds it
    assert rig.drive(3.0, until=lambda: bool(rig.claims))
    assert rig.source.rescans == 1


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_a_forced_observer_is_used_without_a_probe(
    tmp_path: Path, rigs: list[Rig], mode: str
) -> None:
    rig = Rig(tmp_path, native=SilentObserver, observer=mode, poll_seconds=0.1)
    rigs.append(rig)
    rig.start()
    assert rig.source.observer_kind == mode
    assert rig.source.observer_reason == f"daemon.observer is {mode}"


# ----------------------------------------------------------------- 12: the inbox replaced


def test_an_inbox_replaced_is_noticed_and_watched_again(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = Rig(tmp_path, settle_seconds=0.1, settle_after_close_seconds=0.05).start()
    rigs.append(rig)
    assert not rig.source.inbox_changed()
    rig.inbox.rename(tmp_path / "inbox.old")
    rig.inbox.mkdir()
    assert rig.source.inbox_changed()
    rig.source.rewatch()
    assert not rig.source.inbox_changed()
    assert rig.drive(1.0, until=lambda: rig.source.rescans == 2), "rewatch asks for a rescan"
    (rig.inbox / "new.jpg").write_bytes(b"scan")
    assert rig.drive(3.0, until=lambda: bool(rig.claims)), "no event from the new inbox"
    assert [c.relative.as_posix() for c in rig.claims] == ["new.jpg"]
    assert rig.source.rescans == 2, "found by its event, not by a rescan"


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_an_inbox_deleted_wakes_the_loop_at_once(
    tmp_path: Path, rigs: list[Rig], mode: str
) -> None:
    rig = Rig(tmp_path, observer=mode, poll_seconds=0.1, settle_seconds=0.1).start()
    rigs.append(rig)
    rig.wake.clear()
    shutil.rmtree(rig.inbox)
    assert rig.wake.wait(3.0), "no wake-up for the deleted inbox"
    assert rig.source.inbox_changed()
    with pytest.raises(FileNotFoundError):
        rig.source.rewatch()
    assert rig.source.inbox_changed()
    rig.inbox.mkdir()
    rig.source.rewatch()
    assert not rig.source.inbox_changed()
    rig.drive(1.0, until=lambda: rig.source.rescans == 2)
    (rig.inbox / "new.jpg").write_bytes(b"scan")
    assert rig.drive(3.0, until=lambda: bool(rig.claims))


# ----------------------------------------------------------------- 5: symlinks, FIFOs


class _Recorder(FileSystemEventHandler):
    def __init__(self) -> None:
        self.events: list[FileSystemEvent] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.events.append(event)


def test_symlinks_and_fifos_are_claimed_as_entries_never_followed(
    tmp_path: Path, rigs: list[Rig]
) -> None:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "folder" / "inner.jpg").write_bytes(b"inner")
    target = outside / "target.jpg"
    target.write_bytes(b"target bytes")
    target.chmod(0o000)
    opened = _Recorder()
    watcher = native_observer()
    watcher.schedule(opened, str(outside), recursive=True)
    watcher.start()
    # open_limit 3 s: a link or FIFO wrongly waiting for a close would not make the 2 s below.
    rig = Rig(tmp_path, settle_seconds=0.1, settle_after_close_seconds=0.05)
    rigs.append(rig)
    try:
        (rig.inbox / "at-start.jpg").symlink_to("nowhere.jpg")  # found by the first scan
        rig.start()
        (rig.inbox / "to-file.jpg").symlink_to(target)  # found by their events
        (rig.inbox / "dangling.jpg").symlink_to("missing.jpg")
        (rig.inbox / "to-folder").symlink_to(outside / "folder")
        os.mkfifo(rig.inbox / "pipe.jpg")
        names = ["at-start.jpg", "dangling.jpg", "pipe.jpg", "to-file.jpg", "to-folder"]
        assert rig.drive(2.0, until=lambda: len(rig.claims) == len(names))
        rig.drive(0.3)
        assert sorted(c.relative.as_posix() for c in rig.claims) == names
        kinds = {c.relative.name: os.lstat(c.path).st_mode for c in rig.claims}
        assert stat.S_ISFIFO(kinds.pop("pipe.jpg"))
        assert all(stat.S_ISLNK(mode) for mode in kinds.values())
        links = {
            c.relative.name: os.readlink(c.path) for c in rig.claims if c.relative.name in kinds
        }
        assert links["to-file.jpg"] == str(target) and links["dangling.jpg"] == "missing.jpg"
        assert rig.problems == []
        assert stat.S_IMODE(target.lstat().st_mode) == 0
        assert target.lstat().st_size == len(b"target bytes")
    finally:
        watcher.stop()
        watcher.join(timeout=5)
    opens = [e.src_path for e in opened.events if isinstance(e, FileOpenedEvent)]
    assert opens == [], "a link's target, or a folder behind a link, was opened"
