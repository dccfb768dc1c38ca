"""The daemon's lifecycle: start-up checks, signals, the loop, reload and drain.

One loop on the main thread owns every decision and every file move; the watchdog thread only
adds candidates, and executor callbacks only wake the loop. Each collaborator is built once, in
:class:`_Service`'s constructor:

* :class:`~ocr_pipeline.daemon.sources.InboxSource`: what to claim next;
* :mod:`~ocr_pipeline.daemon.policy`: what a started or finished job means for its file;
* an :class:`~ocr_pipeline.executors.Executor`: where the OCR runs;
* :class:`~ocr_pipeline.daemon.terminal.TerminalWriter`: the one writer of terminal states;
* :class:`~ocr_pipeline.daemon.status.StatusBoard`: counters, heartbeat, metrics.

Signals: SIGTERM and SIGINT drain (running jobs get ``daemon.grace_seconds``, the rest go back
to the inbox); SIGHUP reloads the settings, and workers load the new models and lexicons at their
next job (a new settings *generation*). ``run`` stops by itself when the inbox is done.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any

from ocr_pipeline.audit import AuditLog, get_logger
from ocr_pipeline.claims import Claim, WorkLock
from ocr_pipeline.correct import corrector_from_settings
from ocr_pipeline.daemon import policy
from ocr_pipeline.daemon.intake import check_claimed, hash_claimed
from ocr_pipeline.daemon.policy import Action, BeforeStart, JobEnd
from ocr_pipeline.daemon.sources import InboxSource
from ocr_pipeline.daemon.status import Activity, RunSummary, StatusBoard
from ocr_pipeline.daemon.terminal import TerminalWriter, worth_waiting
from ocr_pipeline.engine.backend import check_runtime
from ocr_pipeline.errors import (
    ConfigError,
    ExecutorBrokenError,
    InputError,
    InternalError,
    JobStoppedError,
    JobTimeoutError,
    ModelError,
    OcrPipelineError,
    PoolError,
    UnreadableInputError,
    WorkerLostError,
)
from ocr_pipeline.executors import (
    Executor,
    ExecutorFactory,
    Job,
    JobError,
    JobOutcome,
    WorkerSilence,
    make_executor,
    traceback_lines,
)
from ocr_pipeline.executors.cluster import require_ray
from ocr_pipeline.folders import Folders
from ocr_pipeline.jobs import decode_limits
from ocr_pipeline.metrics import Metrics
from ocr_pipeline.models import get_spec, load_registry, require_model
from ocr_pipeline.progress import RunProgress, progress_enabled
from ocr_pipeline.settings import Settings
from ocr_pipeline.state import KeptLedger, ResultsIndex
from ocr_pipeline.watcher import scan_inbox

STALL_MARGIN_SECONDS = 60.0
"""Grace beyond ``daemon.job_timeout`` before an unfinished job means a lost worker."""
RESTARTS_PER_MINUTE = 5
"""Executor restarts in a minute beyond which the daemon stops (workers die as they start)."""
HOLD_CHECK_SECONDS = 5.0
"""While held (models or lexicons cannot be loaded), how often the daemon checks them, seconds."""
FIRST_RETRY_SECONDS = 1.0
"""First pause before a failed step (write, move, read) is tried again; it doubles each time
up to ``daemon.retry_max_seconds``."""


@dataclass
class _Parked:
    """A claim whose last step failed (full disk, permissions): tried again at ``due``."""

    claim: Claim
    retry: Callable[[], bool]
    """The step again; True once the claim reached its terminal state (or was started)."""
    due: float
    """Monotonic time of the next try, seconds."""
    pause: float
    """The pause before ``due``, seconds (doubles per failure)."""


def check_models(settings: Settings) -> None:
    """Verify the runtime, the configured models and lexicons before starting workers.

    Raises:
        ModelError: a model is unknown, missing or corrupt (says to run ``models fetch``).
        ConfigError: the backend is not installed or the CPU lacks the precision asked for
            (:func:`~ocr_pipeline.engine.backend.check_runtime`), the Ray executor is chosen
            without Ray installed, or a lexicon or the look-alike table is missing or malformed.

    """
    check_runtime(settings.runtime)
    if settings.daemon.executor == "ray":
        require_ray()
    corrector_from_settings(settings.correct)
    registry = load_registry(settings.models.registry_file)
    for name, kind in settings.configured_models().items():
        require_model(get_spec(registry, name, kind), settings.models.dir)


class Daemon:
    """One daemon instance over one inbox.

    Args:
        settings: the effective settings.
        watch: True for ``watch`` (observer, rescans, runs until signalled); False for ``run``
            (start-up scan only, returns when nothing is left).
        reload_settings: called on SIGHUP for fresh settings (``None``: SIGHUP is ignored).
        executor: builds the executor from the settings and their generation (default: the
            local worker processes; tests pass :class:`~ocr_pipeline.executors.SerialExecutor`).
        metrics: the metrics to update (``serve`` passes its own, exposed on the API's
            ``/metrics``); default: built from ``daemon.metrics_port``.

    """

    def __init__(
        self,
        settings: Settings,
        *,
        watch: bool,
        reload_settings: Callable[[], Settings] | None = None,
        executor: ExecutorFactory = make_executor,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.watch = watch
        self.reload_settings = reload_settings
        self.executor_factory = executor
        self.folders = Folders.from_settings(settings)

    def run(self) -> RunSummary:
        """Run until the inbox is done (``run``) or a stop signal (``watch``).

        Raises:
            ConfigError: bad folders, a busy metrics port, or another daemon holds this
                instance's work folder.
            ModelError: a configured model is missing or corrupt.
            PoolError: workers keep dying as they start.

        """
        self.folders.check()
        lock = WorkLock(self.folders.work)
        service: _Service | None = None
        try:
            check_models(self.settings)
            service = _Service(self, lock)
            service.run()
            return service.board.summary
        finally:
            (service.lock if service is not None else lock).release()


class _Service:
    """A running daemon: every collaborator built here, once; the loop and its decisions."""

    def __init__(self, daemon: Daemon, lock: WorkLock) -> None:
        settings = daemon.settings
        folders = daemon.folders
        self.lock = lock
        """The work folder's lock, taken again when the inbox is replaced."""
        self.inbox_device = folders.inbox.stat().st_dev
        self.settings = settings
        self.folders = folders
        self.watch = daemon.watch
        self.reload_settings = daemon.reload_settings
        self.log = get_logger("ocr_pipeline.daemon")
        self.wake = threading.Event()
        self.generation = 0
        self.ready: deque[Claim] = deque()
        """Claims to start before new ones: recovered, retried, handed back by a restart."""
        self.in_flight: dict[Future[JobOutcome], Claim] = {}
        self.deadlines: dict[Future[JobOutcome], float] = {}
        """Per job, the monotonic time after which the executor counts as wedged."""
        self.restarts: list[float] = []
        self.same_bytes: dict[str, list[Claim]] = {}
        """Claims whose bytes are being OCRed for another claim, by sha256: started after it."""
        self.parked: dict[str, _Parked] = {}
        """Claims whose last step failed, by claim folder, each with its next try."""
        self.silent: list[WorkerSilence] = []
        """Workers whose heartbeat stopped, as of the last status tick."""
        self._silenced: dict[str, str] = {}
        """Inbox-relative file -> why its worker was stopped (for the retry record)."""
        self.held: str | None = None
        """Why no job starts: a worker could not load the models or lexicons (``None``: none)."""
        self._held_since = 0.0
        self._next_hold_check = 0.0
        self._stop_requested = False
        self._stop_signal = ""
        self._reload_requested = False
        self._inbox_missing = False
        try:
            metrics = daemon.metrics or Metrics(
                settings.daemon.metrics_port, settings.daemon.metrics_host
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {settings.daemon.metrics_host}:"
                f"{settings.daemon.metrics_port}: {exc.strerror}; choose a free "
                "daemon.metrics_port or 0 to turn metrics off"
            ) from exc
        progress = None
        if not daemon.watch:
            progress = RunProgress(total=None, enabled=progress_enabled(settings.log.format))
        self.board = StatusBoard(folders, daemon.watch, metrics, progress)
        self.audit = AuditLog(folders.audit_log, folders.instance)
        kept = KeptLedger(folders.state, folders.instance)
        self.index = ResultsIndex(folders.outbox, folders.state)
        self.source = InboxSource(folders, settings.daemon, kept, self.audit, self.wake, self.watch)
        self.terminal = TerminalWriter(
            folders, self.index, kept, self.audit, self.board, settings.daemon, settings.outputs
        )
        self.executor: Executor = daemon.executor_factory(settings, self.generation)

    # ----------------------------------------------------------------- lifecycle

    def run(self) -> None:
        """Recover, scan, loop until done or signalled, then drain and close everything."""
        previous = self._install_signal_handlers()
        try:
            self.source.start(time.monotonic())
            self.log.info(
                "started",
                mode="watch" if self.watch else "run",
                inbox=str(self.folders.inbox),
                outbox=str(self.folders.outbox),
                workers=self.executor.slots,
                threads_per_worker=self.executor.threads_per_worker,
                observer=self.source.observer_kind,
            )
            for claim in self.source.recover():
                if claim.pending is not None:
                    self._handle(claim, partial(self.terminal.complete, claim))
                else:
                    self.ready.append(claim)
            self.source.scan()
            if self.board.progress is not None:
                found = sum(1 for _ in scan_inbox(self.folders.inbox))
                self.board.progress.set_total(len(self.ready) + found)
            self.board.state = "running"
            self._loop()
        finally:
            self.board.state = "draining"
            self.source.stop()
            self._drain()
            _restore_signal_handlers(previous)
            self.board.state = "stopped"
            self._write_status()
            self.audit.close()
            self.board.metrics.close()
            if self.board.progress is not None:
                self.board.progress.close()
            counters = self.board.counters
            self.log.info(
                "stopped", done=counters.done, failed=counters.failed, duplicate=counters.duplicate
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

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signal.Signals(signum).name
        self._stop_requested = True
        self.wake.set()

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self.wake.set()

    # ----------------------------------------------------------------- the loop

    def _loop(self) -> None:
        next_status = 0.0
        while not self._stop_requested:
            self.wake.clear()
            if self._reload_requested:
                self._reload()
            self._check_inbox()
            self._collect(draining=False)
            self._check_stalled()
            self._retry_parked()
            self._check_held()
            self._dispatch()
            now = time.monotonic()
            if self.source.rescan_if_due(now):
                self.wake.set()
            if now >= next_status:
                self._check_silent_workers()
                self._write_status()
                next_status = now + self.settings.daemon.status_seconds
            if not self.watch and self._idle():
                break
            waits = [next_status - now, 1.0]
            rescan = self.source.next_rescan(now)
            if rescan is not None:
                waits.append(rescan)
            settle = self.source.next_settle()
            if settle is not None and len(self.in_flight) < self.executor.slots:
                waits.append(settle)
            waits.extend(parked.due - now for parked in self.parked.values())
            if self.held is not None:
                waits.append(self._next_hold_check - now)
            self.wake.wait(timeout=max(0.01, min(waits)))
        if self._stop_requested:
            self.log.info(
                "stop requested; draining",
                signal=self._stop_signal,
                in_flight=len(self.in_flight),
                grace_seconds=self.settings.daemon.grace_seconds,
            )

    def _check_inbox(self) -> None:
        """Notice the inbox deleted or replaced; watch the new one and take its lock.

        While the inbox is missing nothing can be claimed: that is logged once. When a folder
        is back under its name, the work folder is created again, its lock taken (another
        daemon holding it stops this one with :class:`~ocr_pipeline.errors.ConfigError`), and
        the observer and a rescan start on the new folder.
        """
        if not self.source.inbox_changed():
            return
        inbox = self.folders.inbox
        if not inbox.is_dir():
            if not self._inbox_missing:
                message = (
                    f"inbox {inbox} was deleted or moved; nothing is claimed until a folder is "
                    "back under that name (create it again, or restart with another INBOX)"
                )
                self.log.error("inbox missing", inbox=str(inbox), error=message)
                self.board.error(None, message)
                self._inbox_missing = True
            return
        try:
            self.source.rewatch()
        except OSError:
            return  # gone again: the next turn looks again
        self._inbox_missing = False
        self.log.warning(
            "inbox replaced, or its watch stopped; watching it again", inbox=str(inbox)
        )
        self.folders.check()
        self.lock.release()
        self.lock = WorkLock(self.folders.work)  # another daemon holding it stops this one
        self.inbox_device = inbox.stat().st_dev
        self.wake.set()

    def _idle(self) -> bool:
        """Nothing left for ``run``: no work, and every parked claim has had the longest pause.

        ``run`` then stops and reports the parked claims; they stay claimed for the next start.
        """
        waited = all(
            parked.pause >= self.settings.daemon.retry_max_seconds
            for parked in self.parked.values()
        )
        return (
            not self.ready
            and not self.in_flight
            and not self.same_bytes
            and self.source.exhausted()
            and waited
        )

    def _dispatch(self) -> None:
        """Start jobs while slots are free: recovered and retried claims first, then settled."""
        if self.held is not None:
            return
        slots = self.executor.slots
        while len(self.in_flight) < slots and self.ready:
            claim = self.ready.popleft()
            self._handle(claim, partial(self._start, claim))
        while len(self.in_flight) < slots and not self._stop_requested:
            claims, problems = self.source.claim(slots - len(self.in_flight))
            for relative, exc in problems:
                self.terminal.stuck(relative, exc, "claim failed; the file stays in the inbox")
            if not claims and not problems:
                return
            for claim in claims:
                self._handle(claim, partial(self._start, claim))

    # ----------------------------------------------------------------- one file at a time

    def _handle(self, claim: Claim, step: Callable[[], bool], pause: float = 0.0) -> None:
        """Run one step for one file; whatever it raises stays with that file.

        A step that returns False (a write or move failed for want of space or access) is
        tried again after a pause that doubles from ``FIRST_RETRY_SECONDS`` up to
        ``daemon.retry_max_seconds``. An unexpected exception fails the file with an
        :class:`~ocr_pipeline.errors.InternalError` report; the daemon goes on.
        """
        try:
            finished = step()
        except Exception as exc:
            relative = claim.relative.as_posix()
            self.log.exception("unexpected error", file=relative)
            error = InternalError(
                f"{relative}: unexpected {type(exc).__name__} while handling the file: {exc}; "
                "the daemon went on without it. Please report this with the error report, then "
                "drop the file into the inbox again"
            )
            frames = traceback_lines(exc)
            step = partial(self.terminal.failed, claim, error, frames)
            try:
                finished = step()
            except Exception:
                self.log.exception("cannot fail the file either; tried again later", file=relative)
                finished = False
        if not finished:
            pause = min(max(pause * 2, FIRST_RETRY_SECONDS), self.settings.daemon.retry_max_seconds)
            key = str(claim.claim_dir)
            self.parked[key] = _Parked(claim, step, time.monotonic() + pause, pause)

    def _retry_parked(self) -> None:
        """Try again each parked claim whose pause is over."""
        now = time.monotonic()
        for key, parked in list(self.parked.items()):
            if parked.due <= now:
                del self.parked[key]
                self._handle(parked.claim, parked.retry, parked.pause)

    def _hold(self, reason: str) -> None:
        """Start no job until the models and lexicons check again (a worker could not load them).

        The files stay claimed, first in line; health turns unhealthy with ``reason``.
        """
        now = time.monotonic()
        if self.held is None:
            self.log.error(
                "workers cannot load the models or lexicons; holding the files until they are "
                "restored",
                error=reason,
                wait_seconds=self.settings.daemon.fault_wait_seconds,
            )
            if not self._held_since:
                self._held_since = now
            self._next_hold_check = now + HOLD_CHECK_SECONDS
        self.held = reason
        self.board.error(None, f"holding every file: {reason}")

    def _check_held(self) -> None:
        """While held, check the models every ``HOLD_CHECK_SECONDS``; resume once they pass.

        Raises:
            ModelError: still failing after ``daemon.fault_wait_seconds``; the daemon stops
                (exit 4) and gives the held files back to the inbox.

        """
        now = time.monotonic()
        if self.held is None or now < self._next_hold_check:
            return
        try:
            check_models(self.settings)
        except OcrPipelineError as exc:
            self.held = str(exc)
            self._next_hold_check = now + HOLD_CHECK_SECONDS
            waited = now - self._held_since
            if waited > self.settings.daemon.fault_wait_seconds:
                raise ModelError(
                    f"workers could not load the models or lexicons for {waited:.0f} s "
                    f"(daemon.fault_wait_seconds): {exc}; fix them and start the daemon again "
                    "(the files are back in the inbox)"
                ) from exc
            return
        self.log.info("models and lexicons check again; restarting the workers")
        self.held = None
        if self.board.last_error is not None and self.board.last_error.get("file") is None:
            self.board.last_error = None
        self.executor.restart()
        self.wake.set()

    def _start(self, claim: Claim) -> bool:
        """Refuse an unreadable file, reuse a result, fail a poison file, or submit a job.

        Returns:
            False when the file could not be read for now (the caller tries again later).

        """
        relative = claim.relative.as_posix()
        daemon = self.settings.daemon
        limits = decode_limits(self.settings.decode)
        refused: InputError | None
        try:
            refused = check_claimed(
                claim.path, relative, limits, daemon.follow_symlinks, self.inbox_device
            )
            if refused is None and claim.sha256 is None:
                claim.sha256 = hash_claimed(claim.path, relative, limits, daemon.follow_symlinks)
        except FileNotFoundError:
            refused = UnreadableInputError(
                f"{relative} vanished from the work folder {claim.claim_dir} before it was read "
                "(was the inbox deleted or moved?); drop the file into the inbox again"
            )
        except InputError as exc:
            refused = exc
        except OSError as exc:
            if worth_waiting(exc):
                self.terminal.stuck(
                    relative, exc, "cannot read the claimed file; tried again later"
                )
                return False
            refused = UnreadableInputError(
                f"{relative} cannot be read ({exc}); check the file, then drop it into the inbox"
            )
        if refused is not None:
            return self.terminal.failed(claim, refused, [])
        sha = claim.sha256
        assert sha is not None
        if any(other.sha256 == sha for other in self.in_flight.values()):
            self.same_bytes.setdefault(sha, []).append(claim)  # a duplicate once that one ends
            return True
        earlier = self.index.result_for(sha)
        verdict = policy.before_start(claim.attempts, daemon.max_attempts, earlier is not None)
        if verdict is BeforeStart.duplicate and earlier is not None:
            return self.terminal.duplicate(claim, sha, earlier)
        if verdict is BeforeStart.poison:
            return self.terminal.failed(
                claim, policy.poison_error(relative, claim.attempts, None), []
            )
        claim.started += 1
        claim.save()
        job = Job(path=claim.path, relative=relative, sha256=sha)
        try:
            future = self.executor.submit(job)
        except ExecutorBrokenError:
            self._restart_executor("the worker pool stopped accepting jobs")
            future = self.executor.submit(job)
        self.in_flight[future] = claim
        self.deadlines[future] = time.monotonic() + self._stall_seconds()
        future.add_done_callback(lambda _: self.wake.set())
        return True

    def _stall_seconds(self) -> float:
        """How long a job may stay unfinished before the executor counts as wedged, seconds.

        A local worker's timeout starts when it picks the job up; a job whose worker died before
        that would otherwise wait forever.
        """
        return self.settings.daemon.job_timeout + STALL_MARGIN_SECONDS

    def _check_silent_workers(self) -> None:
        """Report workers silent past ``daemon.worker_silence_seconds``; stop them at twice that.

        Their files are retried on a fresh worker (a counted try: a file that hangs its worker
        every time becomes a poison file).
        """
        bound = self.settings.daemon.worker_silence_seconds
        silent = self.executor.silent_workers(bound)
        known = {worker.pid for worker in self.silent}
        for worker in silent:
            reading = f" while reading {worker.job}" if worker.job else " (idle)"
            message = (
                f"worker pid {worker.pid} silent for {worker.seconds:.0f} s (stopped or hung)"
                f"{reading}"
            )
            if worker.pid not in known:
                self.log.error("worker silent", pid=worker.pid, file=worker.job, error=message)
                self.board.error(worker.job, message)
            if worker.seconds > 2 * bound:
                self.log.error("stopping a silent worker", pid=worker.pid, file=worker.job)
                if worker.job:
                    self._silenced[worker.job] = f"{message}; it was stopped"
                self.executor.stop_worker(worker.pid)
        self.silent = silent

    def _check_stalled(self) -> None:
        """Restart the executor when a job has waited past its stall deadline."""
        now = time.monotonic()
        if any(now > deadline for deadline in self.deadlines.values()):
            self._restart_executor("a job neither finished nor timed out (worker lost)")

    def _restart_executor(self, reason: str) -> None:
        """Replace a broken or wedged executor's workers; unfinished jobs go back to ``ready``.

        The jobs it held were not the files' fault: no try is counted against them.

        Raises:
            PoolError: more than ``RESTARTS_PER_MINUTE`` restarts in a minute (workers cannot
                start: the log shows why); the daemon stops, files stay claimed for the next
                start.

        """
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < 60.0] + [now]
        self.log.error("restarting the worker pool", reason=reason, restarts=len(self.restarts))
        self.board.error(None, f"worker pool: {reason}")
        for claim in list(self.in_flight.values()):
            self.ready.appendleft(claim)
        self.in_flight.clear()
        self.deadlines.clear()
        if len(self.restarts) > RESTARTS_PER_MINUTE:
            raise PoolError(
                f"worker processes keep dying ({len(self.restarts)} pool restarts in a "
                f"minute; last reason: {reason}); see the log above for their error, fix it "
                "(memory limit, models, permissions) and start the daemon again"
            )
        self.executor.restart()

    def _collect(self, draining: bool) -> None:
        """Bring finished jobs to their terminal state, or back to ``ready`` for another try."""
        broken = False
        for future in [f for f in self.in_flight if f.done()]:
            claim = self.in_flight.pop(future)
            self.deadlines.pop(future, None)
            if claim.sha256 is not None:
                self.ready.extendleft(self.same_bytes.pop(claim.sha256, []))
            end, error, frames = _job_end(future)
            if (
                end is JobEnd.raised
                and isinstance(error, InputError)
                and claim.changed_since_claim()
            ):
                end = JobEnd.changed  # its writer was still writing: not the file's fault
            max_attempts = self.settings.daemon.max_attempts
            decision = policy.after_job(end, claim.attempts, max_attempts, draining)
            if decision.attempts != claim.attempts:
                claim.attempts = decision.attempts
                claim.save()
            if decision.action is Action.requeue:
                self.ready.appendleft(claim)
                broken = True
                continue
            apply = partial(self._apply, decision.action, claim, future, end, error, frames)
            self._handle(claim, apply)
        if broken:
            self._restart_executor("all workers expired (the pool broke)")

    def _apply(
        self,
        action: Action,
        claim: Claim,
        future: Future[JobOutcome],
        end: JobEnd,
        error: BaseException | None,
        frames: list[str],
    ) -> bool:
        """Carry out one decision (not ``requeue``); False when a step must be tried again."""
        relative = claim.relative.as_posix()
        if action is Action.done:
            self._held_since = 0.0  # a job ran: a later hold is a new fault
            return self.terminal.done(claim, future.result())
        if action is Action.fail:
            if isinstance(error, JobTimeoutError):
                error = policy.timeout_error(relative, self.settings.daemon.job_timeout)
            return self.terminal.failed(claim, error or RuntimeError("unknown error"), frames)
        if action is Action.poison:
            exitcode = error.exitcode if isinstance(error, WorkerLostError) else None
            return self.terminal.failed(
                claim, policy.poison_error(relative, claim.attempts, exitcode), []
            )
        if action is Action.retry:
            exitcode = error.exitcode if isinstance(error, WorkerLostError) else None
            why = self._silenced.pop(relative, f"worker died (exit code {exitcode})")
            self.board.retried()
            self.audit.record(
                "retried",
                source=relative,
                sha256=claim.sha256,
                attempt=claim.started + 1,
                error_type="WorkerLostError",
                message=f"{why}; trying again",
            )
            self.log.warning("worker died, retrying", file=relative, exitcode=exitcode)
            self.ready.appendleft(claim)
            return True
        if action is Action.hold:
            self.ready.appendleft(claim)
            self._hold(str(error))
            return True
        if end is JobEnd.changed:
            self.log.warning("still being written; given back to the inbox", file=relative)
            if self.terminal.release(
                claim, "changed after its claim (its writer was not done); back in the inbox"
            ):
                self.source.tracker.observe(claim.relative)  # settles again, then read whole
        elif end is JobEnd.stopped:
            self.terminal.release(claim, "stopped between pages by the drain; back in the inbox")
        else:
            self.terminal.release(claim)
        return True

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
            self.board.error(None, str(exc))
            return
        self.settings = settings
        self.generation += 1
        if self.board.last_error is not None and self.board.last_error.get("file") is None:
            self.board.last_error = None  # a refused reload (or other daemon error) is fixed
        self.executor.use_settings(settings, self.generation)
        self.terminal.use(settings.daemon, settings.outputs)
        lexicons = ", ".join(str(p) for p in settings.correct.lexicons) or "none"
        self.audit.record(
            "reloaded",
            message=(
                f"settings generation {self.generation}; workers reload models and lexicons "
                f"({lexicons}) at their next job"
            ),
        )
        self.log.info("reloaded", generation=self.generation)

    def _drain(self) -> None:
        """Stop: let running jobs finish within the grace period, give the rest back."""
        self._write_status()
        self.executor.close(self.settings.daemon.grace_seconds)
        self._collect(draining=True)
        for claim in list(self.in_flight.values()):
            self.terminal.release(claim)
        self.in_flight.clear()
        for waiting in self.same_bytes.values():
            self.ready.extend(waiting)
        self.same_bytes.clear()
        while self.ready:
            self.terminal.release(self.ready.popleft())
        for parked in self.parked.values():
            relative = parked.claim.relative.as_posix()
            error = self.board.last_error or {}
            self.board.summary.stuck[relative] = str(error.get("error", "a step kept failing"))

    def _write_status(self) -> None:
        self.board.write(
            Activity(
                queue_depth=self.source.pending()
                + len(self.ready)
                + sum(len(w) for w in self.same_bytes.values()),
                in_flight=len(self.in_flight),
                worker_pids=self.executor.worker_pids(),
                generation=self.generation,
                rescans=self.source.rescans,
                stuck=[parked.claim.relative.as_posix() for parked in self.parked.values()],
                observer=self.source.observer_kind,
                held=self.held,
                executor_trouble=self.executor.trouble(),
                silent_workers=[
                    {"pid": w.pid, "seconds": round(w.seconds, 1), "file": w.job}
                    for w in self.silent
                ],
            )
        )


def _job_end(future: Future[JobOutcome]) -> tuple[JobEnd, BaseException | None, list[str]]:
    """How a finished job ended, the error (``None`` on success) and its traceback lines."""
    if future.cancelled():
        return JobEnd.cancelled, None, []
    error = future.exception()
    if error is None:
        return JobEnd.succeeded, None, []
    if isinstance(error, JobError):
        if isinstance(error.error, JobStoppedError):
            return JobEnd.stopped, error.error, error.frames
        if isinstance(error.error, (ModelError, ConfigError)):
            return JobEnd.setup_failed, error.error, error.frames
        return JobEnd.raised, error.error, error.frames
    if isinstance(error, WorkerLostError):
        return JobEnd.worker_lost, error, []
    if isinstance(error, JobTimeoutError):
        return JobEnd.timed_out, error, []
    if isinstance(error, ExecutorBrokenError):
        return JobEnd.executor_broken, error, []
    return JobEnd.raised, error, traceback_lines(error)  # outside the contract: still the file's


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
