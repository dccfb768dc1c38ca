"""The daemon: watch the inbox, claim settled files, OCR them in the pool, reach a terminal state.

One loop on the main thread owns every decision and every file move; the watchdog thread only
adds candidates, and pool callbacks only wake the loop. The life of one file::

    inbox/x.jpg --settled--> claimed (work/<id>/x.jpg) --> worker
        --> done:   outbox/x.json and x.txt, then archive/x.jpg (or deleted, or kept: policy)
        --> failed: failed/x.jpg and failed/x.jpg.error.json

A file leaves the work folder only into a terminal state (or back into the inbox on shutdown),
so a crash at any point leaves it claimable: at-least-once, and idempotent because results are
keyed by the input's sha256. ``ocr-pipeline run`` is the same loop without the observer that
exits when the inbox is empty; ``watch`` runs until SIGTERM or SIGINT. SIGHUP reloads the
settings: workers load the new models at their next job (a new settings *generation*).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pebble import ProcessExpired

from ocr_pipeline import __version__
from ocr_pipeline.audit import AuditLog, get_logger
from ocr_pipeline.claims import Claim, WorkLock, claim_file, recover_claims, release_claim
from ocr_pipeline.correct import corrector_from_settings
from ocr_pipeline.errors import (
    ConfigError,
    JobTimeoutError,
    OcrPipelineError,
    PoolError,
    WorkerCrashedError,
)
from ocr_pipeline.folders import Folders, free_name, move_file
from ocr_pipeline.metrics import Metrics
from ocr_pipeline.models import get_spec, load_registry, require_model
from ocr_pipeline.pool import JobOutcome, JobRequest, WorkerPool, worker_count, worker_settings
from ocr_pipeline.results import (
    DocumentResult,
    ErrorReport,
    utc_now,
    write_error_report,
    write_result,
)
from ocr_pipeline.settings import Settings
from ocr_pipeline.state import (
    Counters,
    ResultsIndex,
    process_rss_bytes,
    write_status,
)
from ocr_pipeline.watcher import SettleTracker, scan_inbox, start_observer

KEPT_FILE_PREFIX = "kept-"
POOL_STALL_MARGIN_SECONDS = 60.0
"""Grace beyond ``daemon.job_timeout`` before an unfinished job means a lost worker."""
POOL_RESTARTS_PER_MINUTE = 5


@dataclass
class RunSummary:
    """What a daemon run did, by inbox-relative path."""

    done: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Relative path -> error message."""


def check_models(settings: Settings) -> None:
    """Verify the configured models and lexicons before starting workers.

    Raises:
        ModelError: a model is unknown, missing or corrupt (says to run ``models fetch``).
        ConfigError: a lexicon or the look-alike table is missing or malformed.

    """
    corrector_from_settings(settings.correct)
    registry = load_registry(settings.models.registry_file)
    for name, kind in settings.configured_models().items():
        require_model(get_spec(registry, name, kind), settings.models.dir)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class KeptLedger:
    """Originals left in the inbox after success (policy ``keep``), so they are not redone.

    A file is skipped while its size and mtime are those recorded; a changed file is new work.
    Stored as JSON lines ``OUTBOX/.ocr-pipeline/kept-<instance>.jsonl``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, tuple[int, int]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    self._entries[record["relative"]] = (record["size"], record["mtime_ns"])
                except (ValueError, KeyError, TypeError):
                    continue

    def add(self, relative: Path, stat: os.stat_result) -> None:
        """Remember a kept original as it is now."""
        key = relative.as_posix()
        self._entries[key] = (stat.st_size, stat.st_mtime_ns)
        record = {"relative": key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def matches(self, relative: Path, stat: os.stat_result) -> bool:
        """True when this file is a kept original, unchanged since."""
        return self._entries.get(relative.as_posix()) == (stat.st_size, stat.st_mtime_ns)


class Daemon:
    """One daemon instance over one inbox (see the module docstring).

    Args:
        settings: the effective settings.
        watch: True for ``watch`` (observer, rescans, runs until signalled); False for ``run``
            (start-up scan only, returns when nothing is left).
        reload_settings: called on SIGHUP for fresh settings (``None``: SIGHUP is ignored).

    """

    def __init__(
        self,
        settings: Settings,
        *,
        watch: bool,
        reload_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.watch = watch
        self.reload_settings = reload_settings
        self.folders = Folders.from_settings(settings)
        self.log = get_logger(__name__)
        self.wake = threading.Event()
        self.summary = RunSummary()
        self.counters = Counters()
        self.last_error: dict[str, Any] | None = None
        self.generation = 0
        self.ready: deque[Claim] = deque()
        self.in_flight: dict[Future[JobOutcome], Claim] = {}
        self.deadlines: dict[Future[JobOutcome], float] = {}
        """Per job, the monotonic time after which the pool counts as wedged."""
        self.pool_restarts: list[float] = []
        self.shas: dict[Path, str] = {}
        """sha256 of each claimed file, by claim folder."""
        self.started_at = utc_now()
        self.state = "starting"
        self._stop_requested = False
        self._reload_requested = False
        self._rescan_requested = False
        self.rescans = 0

    # ----------------------------------------------------------------- lifecycle

    def run(self) -> RunSummary:
        """Run until the inbox is done (``run``) or a stop signal (``watch``).

        Raises:
            ConfigError: bad folders, or another daemon holds this instance's work folder.
            ModelError: a configured model is missing or corrupt.

        """
        self.folders.check()
        lock = WorkLock(self.folders.work)
        try:
            check_models(self.settings)
            self._run_locked()
        finally:
            lock.release()
        return self.summary

    def _run_locked(self) -> None:
        daemon = self.settings.daemon
        folders = self.folders
        self.audit = AuditLog(folders.audit_log, folders.instance)
        self.index = ResultsIndex(folders.outbox, folders.state)
        self.kept = KeptLedger(folders.state / f"{KEPT_FILE_PREFIX}{folders.instance}.jsonl")
        self.tracker = SettleTracker(
            folders.inbox,
            daemon.queue_size,
            daemon.settle_seconds,
            daemon.settle_after_close_seconds,
            skip=self.kept.matches,
        )
        try:
            self.metrics = Metrics(daemon.metrics_port, daemon.metrics_host)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {daemon.metrics_host}:{daemon.metrics_port}: "
                f"{exc.strerror}; choose a free daemon.metrics_port or 0 to turn metrics off"
            ) from exc
        workers = worker_count(self.settings)
        self.job_settings = worker_settings(self.settings, workers)
        self.pool = WorkerPool(
            workers, daemon.max_jobs_per_worker, self.job_settings, self.generation
        )
        previous = self._install_signal_handlers()
        observer = None
        try:
            if self.watch:
                observer = start_observer(
                    folders.inbox,
                    self.tracker,
                    self.wake,
                    self._request_rescan,
                    polling=daemon.observer == "polling",
                    poll_seconds=daemon.poll_seconds,
                )
            self.log.info(
                "started",
                mode="watch" if self.watch else "run",
                inbox=str(folders.inbox),
                outbox=str(folders.outbox),
                workers=workers,
                threads_per_worker=self.job_settings.runtime.intra_op_threads,
                observer=daemon.observer if self.watch else None,
            )
            self._recover()
            self._scan()
            self.state = "running"
            self._loop()
        finally:
            self.state = "draining"
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
            self._drain()
            self._restore_signal_handlers(previous)
            self.state = "stopped"
            self._write_status()
            self.audit.close()
            self.metrics.close()
            self.log.info(
                "stopped",
                done=self.counters.done,
                failed=self.counters.failed,
                duplicate=self.counters.duplicate,
            )

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum, handler in (
            (signal.SIGTERM, self._on_stop_signal),
            (signal.SIGINT, self._on_stop_signal),
            (signal.SIGHUP, self._on_reload_signal),
        ):
            previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True
        self.wake.set()

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self.wake.set()

    def request_stop(self) -> None:
        """Ask the loop to stop, as SIGTERM does (thread-safe)."""
        self._stop_requested = True
        self.wake.set()

    def _request_rescan(self) -> None:
        self._rescan_requested = True

    # ----------------------------------------------------------------- the loop

    def _loop(self) -> None:
        daemon = self.settings.daemon
        next_rescan = time.monotonic() + daemon.rescan_seconds
        next_status = 0.0
        while not self._stop_requested:
            self.wake.clear()
            if self._reload_requested:
                self._reload()
            self._collect()
            self._check_pool()
            self._dispatch()
            now = time.monotonic()
            drained = self.tracker.overflowed and len(self.tracker) < daemon.queue_size // 2
            if self._rescan_requested or drained or (self.watch and now >= next_rescan):
                self._scan()
                next_rescan = now + daemon.rescan_seconds
                self.wake.set()
            if now >= next_status:
                self._write_status()
                next_status = now + daemon.status_seconds
            if not self.watch and self._idle():
                break
            waits = [next_status - now, 1.0]
            if self.watch:
                waits.append(next_rescan - now)
            due = self.tracker.next_due()
            if due is not None and len(self.in_flight) < self.pool.workers:
                waits.append(due)
            self.wake.wait(timeout=max(0.01, min(waits)))

    def _idle(self) -> bool:
        return (
            not self.ready
            and not self.in_flight
            and len(self.tracker) == 0
            and not self.tracker.overflowed
            and not self._rescan_requested
        )

    def _scan(self) -> None:
        """Offer every inbox file to the tracker until it is full."""
        self._rescan_requested = False
        self.tracker.overflowed = False
        self.rescans += 1
        for relative in scan_inbox(self.folders.inbox):
            self.tracker.observe(relative)
            if self.tracker.overflowed:
                break

    def _recover(self) -> None:
        """Requeue claims an earlier run of this instance left in the work folder."""
        for claim in recover_claims(self.folders.work):
            self.audit.record(
                "retried",
                source=claim.relative.as_posix(),
                attempt=claim.attempts + 1,
                message="recovered from the work folder after a restart",
            )
            self.ready.append(claim)

    def _dispatch(self) -> None:
        """Start jobs while workers are free: recovered and retried claims first, then settled."""
        while len(self.in_flight) < self.pool.workers and self.ready:
            self._start(self.ready.popleft())
        while len(self.in_flight) < self.pool.workers and not self._stop_requested:
            # ``run`` knows its whole batch: largest first finishes it soonest. ``watch`` keeps
            # arrival order, so no file waits behind files dropped after it.
            settled = self.tracker.take_settled(
                self.pool.workers - len(self.in_flight), largest_first=not self.watch
            )
            if not settled:
                return
            for relative in settled:
                self._claim_and_start(relative)

    def _claim_and_start(self, relative: Path) -> None:
        try:
            claim = claim_file(self.folders.inbox, relative, self.folders.work)
        except OSError as exc:
            self._note_error(relative.as_posix(), exc, "claim failed; the file stays in the inbox")
            return
        if claim is None:
            return  # taken by another daemon, or removed
        self.audit.record("claimed", source=relative.as_posix(), bytes=_size(claim.path))
        self._start(claim)

    def _start(self, claim: Claim) -> None:
        """Reuse a result of the same bytes, fail a poison file, or submit a job."""
        try:
            sha = self.shas.get(claim.claim_dir) or sha256_file(claim.path)
        except OSError as exc:
            self._note_error(claim.relative.as_posix(), exc, "cannot read the claimed file")
            return
        self.shas[claim.claim_dir] = sha
        earlier = self.index.result_for(sha)
        if earlier is not None:
            self._finish_duplicate(claim, sha, earlier)
            return
        max_attempts = self.settings.daemon.max_attempts
        if claim.attempts >= max_attempts:
            error = WorkerCrashedError(
                f"{claim.relative.as_posix()}: the daemon or its worker died {claim.attempts} "
                "times while reading this file, so it is set aside as a poison file; check the "
                "file and the memory limit, then drop it into the inbox again"
            )
            self._finish_failure(claim, error, [])
            return
        claim.attempts += 1
        claim.save()
        request = JobRequest(
            path=claim.path,
            relative=claim.relative.as_posix(),
            generation=self.generation,
            settings=self.job_settings,
        )
        try:
            future = self.pool.submit(request, self.settings.daemon.job_timeout)
        except RuntimeError:  # pebble refuses work once its pool is broken
            self._restart_pool("the worker pool stopped accepting jobs")
            future = self.pool.submit(request, self.settings.daemon.job_timeout)
        self.in_flight[future] = claim
        self.deadlines[future] = time.monotonic() + self._stall_seconds()
        future.add_done_callback(lambda _: self.wake.set())

    def _stall_seconds(self) -> float:
        """How long a job may stay unfinished before the pool counts as wedged, seconds.

        pebble's timeout starts when a worker picks the job up; a job whose worker died before
        that would otherwise wait forever.
        """
        return self.settings.daemon.job_timeout + POOL_STALL_MARGIN_SECONDS

    def _restart_pool(self, reason: str) -> None:
        """Replace a broken or wedged pebble pool; its unfinished jobs go back to ``ready``.

        pebble marks its whole pool broken when a worker dies while no job runs (an idle worker
        killed by the OOM killer, or one dying at start-up): every later job would fail. The
        jobs it held were not the files' fault, so their attempts are not counted.

        Raises:
            PoolError: the pool broke more than ``POOL_RESTARTS_PER_MINUTE`` times in a minute
                (workers cannot start: the log shows why); the daemon stops, files stay.

        """
        now = time.monotonic()
        self.pool_restarts = [t for t in self.pool_restarts if now - t < 60.0] + [now]
        self.log.error(
            "restarting the worker pool", reason=reason, restarts=len(self.pool_restarts)
        )
        self.last_error = {"time": utc_now(), "file": None, "error": f"worker pool: {reason}"}
        for claim in list(self.in_flight.values()):
            if claim.attempts > 0:
                claim.attempts -= 1
                claim.save()
            self.ready.appendleft(claim)
        self.in_flight.clear()
        self.deadlines.clear()
        self.pool.kill()
        if len(self.pool_restarts) > POOL_RESTARTS_PER_MINUTE:
            raise PoolError(
                f"worker processes keep dying ({len(self.pool_restarts)} pool restarts in a "
                f"minute; last reason: {reason}); see the log above for their error, fix it "
                "(memory limit, models, permissions) and start the daemon again"
            )
        self.pool = WorkerPool(
            self.pool.workers,
            self.settings.daemon.max_jobs_per_worker,
            self.job_settings,
            self.generation,
        )

    def _check_pool(self) -> None:
        """Restart the pool when a job has waited past its stall deadline."""
        now = time.monotonic()
        if any(now > deadline for deadline in self.deadlines.values()):
            self._restart_pool("a job neither finished nor timed out (worker lost)")

    def _collect(self, draining: bool = False) -> None:
        """Bring finished jobs to their terminal state (or back to ``ready`` for a retry)."""
        broken = False
        for future in [f for f in self.in_flight if f.done()]:
            claim = self.in_flight.pop(future)
            self.deadlines.pop(future, None)
            relative = claim.relative.as_posix()
            try:
                outcome = future.result()
            except BrokenProcessPool:
                if claim.attempts > 0:
                    claim.attempts -= 1
                    claim.save()
                if draining:
                    self._release(claim, undo_attempt=False)
                else:
                    self.ready.appendleft(claim)
                    broken = True
            except ProcessExpired as exc:
                if draining:
                    self._release(claim, undo_attempt=True)
                elif claim.attempts < self.settings.daemon.max_attempts:
                    self.counters.retried += 1
                    self.metrics.job("retried")
                    self.audit.record(
                        "retried",
                        source=relative,
                        sha256=self.shas.get(claim.claim_dir),
                        attempt=claim.attempts + 1,
                        error_type="ProcessExpired",
                        message=f"worker died (exit code {exc.exitcode}); trying again",
                    )
                    self.log.warning("worker died, retrying", file=relative, exitcode=exc.exitcode)
                    self.ready.appendleft(claim)
                else:
                    error = WorkerCrashedError(
                        f"{relative}: the worker process died on each of {claim.attempts} tries "
                        f"(last exit code {exc.exitcode}), so the file is set aside as a poison "
                        "file; check the file and the daemon's memory limit, then drop it into "
                        "the inbox again"
                    )
                    self._finish_failure(claim, error, [])
            except CancelledError:
                self._release(claim, undo_attempt=True)
            except TimeoutError:
                timeout = self.settings.daemon.job_timeout
                timed_out = JobTimeoutError(
                    f"{relative}: OCR took longer than {timeout:g} s and was stopped; split the "
                    "document or raise daemon.job_timeout, then drop it into the inbox again"
                )
                self._finish_failure(claim, timed_out, [])
            except Exception as exc:  # the job's own error, raised in the worker
                remote = getattr(exc, "traceback", None)
                frames = str(remote).strip().splitlines()[-6:] if remote else _frames(exc)
                self._finish_failure(claim, exc, frames)
            else:
                self._finish_success(claim, outcome)
        if broken:
            self._restart_pool("all workers expired (pebble marked the pool broken)")

    # ----------------------------------------------------------------- terminal states

    def _finish_success(self, claim: Claim, outcome: JobOutcome) -> None:
        result = outcome.result
        sha = result.source.sha256
        relative = claim.relative.as_posix()
        try:
            stem = self.index.stem_for(claim.relative, sha)
            _write_result_at(result, self.folders.outbox, stem)
            self.index.add(sha, stem)
        except OSError as exc:
            self._note_error(relative, exc, "results not written; the file stays claimed")
            return
        try:
            target = self._dispose_original(claim, sha)
        except OSError as exc:
            self._note_error(
                relative,
                exc,
                "results written, but the original could not be moved out of the work folder; "
                "it stays claimed (check the archive folder's permissions and free space)",
            )
            return
        claim.discard()
        self.shas.pop(claim.claim_dir, None)
        confidences = [line.confidence for page in result.pages for line in page.lines]
        self.audit.record(
            "done",
            source=relative,
            sha256=sha,
            bytes=result.source.bytes,
            pages=len(result.pages),
            lines=len(confidences),
            mean_confidence=round(sum(confidences) / len(confidences), 4) if confidences else None,
            min_confidence=round(min(confidences), 4) if confidences else None,
            corrections=sum(len(line.corrections) for page in result.pages for line in page.lines),
            models={role: ref.sha256 for role, ref in result.models.items()},
            timings_ms=result.timings_ms,
            worker_pid=outcome.worker_pid,
            generation=outcome.generation,
            attempt=claim.attempts,
            result=f"{stem}.json",
            target=target,
        )
        self.counters.done += 1
        self.metrics.job("done", result.timings_ms)
        self.summary.done.append(relative)
        self.log.info(
            "done",
            file=relative,
            pages=len(result.pages),
            lines=len(confidences),
            seconds=round(result.timings_ms.get("total", 0.0) / 1000, 3),
        )

    def _finish_duplicate(self, claim: Claim, sha: str, earlier: str) -> None:
        relative = claim.relative.as_posix()
        try:
            stem = self.index.stem_for(claim.relative, sha)
            if stem != earlier:
                original = DocumentResult.model_validate_json(
                    (self.folders.outbox / f"{earlier}.json").read_bytes()
                )
                source = original.source.model_copy(
                    update={"name": claim.relative.name, "relative_path": relative}
                )
                _write_result_at(
                    original.model_copy(update={"source": source}), self.folders.outbox, stem
                )
                self.index.add(sha, stem)
            target = self._dispose_original(claim, sha)
        except (OSError, ValueError) as exc:
            self._note_error(relative, exc, "duplicate not resolved; the file stays claimed")
            return
        claim.discard()
        self.shas.pop(claim.claim_dir, None)
        self.audit.record(
            "duplicate",
            source=relative,
            sha256=sha,
            bytes=_size_or_none(target),
            result=f"{stem}.json",
            message=f"same bytes as the input of {earlier}.json; result reused",
            target=target,
        )
        self.counters.duplicate += 1
        self.metrics.job("duplicate")
        self.summary.duplicates.append(relative)
        self.log.info("duplicate", file=relative, result=f"{stem}.json", same_as=f"{earlier}.json")

    def _dispose_original(self, claim: Claim, sha: str) -> str | None:
        """Archive, delete or keep the original per policy; returns where it went."""
        policy = self.settings.daemon.on_success
        if policy == "delete":
            claim.path.unlink()
            return None
        if policy == "keep":
            back = self.folders.inbox / claim.relative
            if not back.exists():
                back.parent.mkdir(parents=True, exist_ok=True)
                # Recorded before it reappears (a rename keeps size and mtime), so the watcher
                # never sees the original back in the inbox without its ledger entry.
                self.kept.add(claim.relative, claim.path.stat())
                os.rename(claim.path, back)
                return str(back)
        target = free_name(self.folders.archive / claim.relative, sha[:8])
        move_file(claim.path, target)
        return str(target)

    def _finish_failure(self, claim: Claim, exc: BaseException, frames: list[str]) -> None:
        relative = claim.relative.as_posix()
        message = (
            str(exc)
            if relative in str(exc) or claim.relative.name in str(exc)
            else (f"{relative}: {exc}")
        )
        sha = self.shas.get(claim.claim_dir)
        target = free_name(self.folders.failed / claim.relative, (sha or f"{time.time_ns():x}")[:8])
        report = ErrorReport(
            source=relative,
            error_type=type(exc).__name__,
            message=message,
            traceback=frames,
            attempts=max(claim.attempts, 1),
            failed_at=utc_now(),
            pipeline_version=__version__,
        )
        try:
            write_error_report(report, target.with_name(f"{target.name}.error.json"))
            move_file(claim.path, target)
        except OSError as os_error:
            self._note_error(relative, os_error, "cannot move to failed/; the file stays claimed")
            return
        claim.discard()
        self.shas.pop(claim.claim_dir, None)
        self.audit.record(
            "failed",
            source=relative,
            sha256=sha,
            bytes=_size_or_none(str(target)),
            attempt=claim.attempts,
            error_type=type(exc).__name__,
            message=message,
            target=str(target),
        )
        self.counters.failed += 1
        self.metrics.job("failed")
        self.summary.failed[relative] = message
        self.last_error = {"time": utc_now(), "file": relative, "error": message}
        self.log.error("failed", file=relative, error_type=type(exc).__name__, error=message)

    def _release(self, claim: Claim, undo_attempt: bool) -> None:
        """Give an unfinished claim back to the inbox (shutdown)."""
        if undo_attempt and claim.attempts > 0:
            claim.attempts -= 1
            claim.save()
        try:
            released = release_claim(claim, self.folders.inbox)
        except OSError:
            released = False
        self.audit.record(
            "released",
            source=claim.relative.as_posix(),
            message="back in the inbox" if released else "left in the work folder for restart",
        )

    def _note_error(self, relative: str, exc: BaseException, what: str) -> None:
        message = f"{relative}: {what}: {exc}"
        self.last_error = {"time": utc_now(), "file": relative, "error": message}
        self.log.error("error", file=relative, error=message)

    # ----------------------------------------------------------------- reload, drain, status

    def _reload(self) -> None:
        self._reload_requested = False
        if self.reload_settings is None:
            return
        try:
            settings = self.reload_settings()
            check_models(settings)
        except OcrPipelineError as exc:
            self.log.error("reload refused; keeping the running settings", error=str(exc))
            self.last_error = {"time": utc_now(), "file": None, "error": str(exc)}
            return
        self.settings = settings
        self.job_settings = worker_settings(settings, self.pool.workers)
        self.generation += 1
        self.audit.record(
            "reloaded",
            message=(
                f"settings generation {self.generation}; workers reload models and lexicons "
                f"({', '.join(str(p) for p in settings.correct.lexicons) or 'none'}) at their "
                "next job"
            ),
        )
        self.log.info("reloaded", generation=self.generation)

    def _drain(self) -> None:
        """Stop: let running jobs finish within the grace period, give the rest back."""
        pool = getattr(self, "pool", None)
        if pool is None:
            return
        self._write_status()
        pool.close(self.settings.daemon.grace_seconds)
        self._collect(draining=True)
        for claim in list(self.in_flight.values()):
            self._release(claim, undo_attempt=True)
        self.in_flight.clear()
        while self.ready:
            self._release(self.ready.popleft(), undo_attempt=False)

    def _write_status(self) -> None:
        pids = WorkerPool.worker_pids() if getattr(self, "pool", None) else []
        queue_depth = len(self.tracker) + len(self.ready) if hasattr(self, "tracker") else 0
        status = {
            "pid": os.getpid(),
            "instance": self.folders.instance,
            "mode": "watch" if self.watch else "run",
            "state": self.state,
            "started": self.started_at,
            "inbox": str(self.folders.inbox),
            "queue_depth": queue_depth,
            "in_flight": len(self.in_flight),
            "workers_alive": len(pids),
            "worker_pids": pids,
            "worker_rss_bytes": {str(pid): process_rss_bytes(pid) for pid in pids},
            "generation": self.generation,
            "rescans": self.rescans,
            "jobs": {
                "done": self.counters.done,
                "failed": self.counters.failed,
                "duplicate": self.counters.duplicate,
                "retried": self.counters.retried,
            },
            "last_error": self.last_error,
        }
        if hasattr(self, "metrics"):
            self.metrics.gauges(queue_depth, len(self.in_flight), len(pids))
        try:
            write_status(self.folders.status_file, status)
        except OSError as exc:
            self.log.error(
                "cannot write status file", path=str(self.folders.status_file), error=str(exc)
            )


def _write_result_at(result: DocumentResult, outbox: Path, stem: str) -> None:
    stem_path = Path(stem)
    write_result(result, outbox / stem_path.parent, stem_path.name)


def _frames(exc: BaseException) -> list[str]:
    return [frame.strip() for frame in traceback.format_tb(exc.__traceback__)[-3:]]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _size_or_none(target: str | None) -> int | None:
    return _size(Path(target)) if target else None
