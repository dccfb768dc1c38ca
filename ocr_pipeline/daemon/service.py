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
from types import FrameType
from typing import Any

from ocr_pipeline.audit import AuditLog, get_logger
from ocr_pipeline.claims import Claim, WorkLock
from ocr_pipeline.correct import corrector_from_settings
from ocr_pipeline.daemon import policy
from ocr_pipeline.daemon.policy import Action, BeforeStart, JobEnd
from ocr_pipeline.daemon.sources import InboxSource
from ocr_pipeline.daemon.status import Activity, RunSummary, StatusBoard
from ocr_pipeline.daemon.terminal import TerminalWriter
from ocr_pipeline.errors import (
    ConfigError,
    ExecutorBrokenError,
    JobTimeoutError,
    OcrPipelineError,
    PoolError,
    WorkerLostError,
)
from ocr_pipeline.executors import (
    Executor,
    ExecutorFactory,
    Job,
    JobError,
    JobOutcome,
    LocalPoolExecutor,
    traceback_lines,
)
from ocr_pipeline.folders import Folders
from ocr_pipeline.metrics import Metrics
from ocr_pipeline.models import get_spec, load_registry, require_model, sha256_of
from ocr_pipeline.settings import Settings
from ocr_pipeline.state import KeptLedger, ResultsIndex

STALL_MARGIN_SECONDS = 60.0
"""Grace beyond ``daemon.job_timeout`` before an unfinished job means a lost worker."""
RESTARTS_PER_MINUTE = 5
"""Executor restarts in a minute beyond which the daemon stops (workers die as they start)."""


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


class Daemon:
    """One daemon instance over one inbox.

    Args:
        settings: the effective settings.
        watch: True for ``watch`` (observer, rescans, runs until signalled); False for ``run``
            (start-up scan only, returns when nothing is left).
        reload_settings: called on SIGHUP for fresh settings (``None``: SIGHUP is ignored).
        executor: builds the executor from the settings and their generation (default: the
            local worker processes; tests pass :class:`~ocr_pipeline.executors.SerialExecutor`).

    """

    def __init__(
        self,
        settings: Settings,
        *,
        watch: bool,
        reload_settings: Callable[[], Settings] | None = None,
        executor: ExecutorFactory = LocalPoolExecutor,
    ) -> None:
        self.settings = settings
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
        try:
            check_models(self.settings)
            service = _Service(self)
            service.run()
            return service.board.summary
        finally:
            lock.release()


class _Service:
    """A running daemon: every collaborator built here, once; the loop and its decisions."""

    def __init__(self, daemon: Daemon) -> None:
        settings = daemon.settings
        folders = daemon.folders
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
        self._stop_requested = False
        self._reload_requested = False
        try:
            metrics = Metrics(settings.daemon.metrics_port, settings.daemon.metrics_host)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {settings.daemon.metrics_host}:"
                f"{settings.daemon.metrics_port}: {exc.strerror}; choose a free "
                "daemon.metrics_port or 0 to turn metrics off"
            ) from exc
        self.board = StatusBoard(folders, daemon.watch, metrics)
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
                observer=self.settings.daemon.observer if self.watch else None,
            )
            self.ready.extend(self.source.recover())
            self.source.scan()
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
            self._collect(draining=False)
            self._check_stalled()
            self._dispatch()
            now = time.monotonic()
            if self.source.rescan_if_due(now):
                self.wake.set()
            if now >= next_status:
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
            self.wake.wait(timeout=max(0.01, min(waits)))

    def _idle(self) -> bool:
        return not self.ready and not self.in_flight and self.source.exhausted()

    def _dispatch(self) -> None:
        """Start jobs while slots are free: recovered and retried claims first, then settled."""
        slots = self.executor.slots
        while len(self.in_flight) < slots and self.ready:
            self._start(self.ready.popleft())
        while len(self.in_flight) < slots and not self._stop_requested:
            claims, problems = self.source.claim(slots - len(self.in_flight))
            for relative, exc in problems:
                self.terminal.stuck(relative, exc, "claim failed; the file stays in the inbox")
            if not claims and not problems:
                return
            for claim in claims:
                self._start(claim)

    def _start(self, claim: Claim) -> None:
        """Reuse a result of the same bytes, fail a poison file, or submit a job."""
        relative = claim.relative.as_posix()
        try:
            sha = claim.sha256 or sha256_of(claim.path)
        except OSError as exc:
            self.terminal.stuck(relative, exc, "cannot read the claimed file")
            return
        claim.sha256 = sha
        earlier = self.index.result_for(sha)
        max_attempts = self.settings.daemon.max_attempts
        verdict = policy.before_start(claim.attempts, max_attempts, earlier is not None)
        if verdict is BeforeStart.duplicate and earlier is not None:
            self.terminal.duplicate(claim, sha, earlier)
            return
        if verdict is BeforeStart.poison:
            self.terminal.failed(claim, policy.died_with_daemon_error(relative, claim.attempts), [])
            return
        claim.attempts += 1
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

    def _stall_seconds(self) -> float:
        """How long a job may stay unfinished before the executor counts as wedged, seconds.

        A local worker's timeout starts when it picks the job up; a job whose worker died before
        that would otherwise wait forever.
        """
        return self.settings.daemon.job_timeout + STALL_MARGIN_SECONDS

    def _check_stalled(self) -> None:
        """Restart the executor when a job has waited past its stall deadline."""
        now = time.monotonic()
        if any(now > deadline for deadline in self.deadlines.values()):
            self._restart_executor("a job neither finished nor timed out (worker lost)")

    def _restart_executor(self, reason: str) -> None:
        """Replace a broken or wedged executor's workers; unfinished jobs go back to ``ready``.

        The jobs it held were not the files' fault, so their attempts are taken back.

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
            claim.attempts = policy.undo_attempt(claim.attempts)
            claim.save()
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
            end, error, frames = _job_end(future)
            max_attempts = self.settings.daemon.max_attempts
            decision = policy.after_job(end, claim.attempts, max_attempts, draining)
            if decision.attempts != claim.attempts:
                claim.attempts = decision.attempts
                claim.save()
            broken |= self._apply(decision.action, claim, future, error, frames)
        if broken:
            self._restart_executor("all workers expired (the pool broke)")

    def _apply(
        self,
        action: Action,
        claim: Claim,
        future: Future[JobOutcome],
        error: BaseException | None,
        frames: list[str],
    ) -> bool:
        """Carry out one decision; True when the executor must be restarted."""
        relative = claim.relative.as_posix()
        if action is Action.done:
            self.terminal.done(claim, future.result())
        elif action is Action.fail:
            if isinstance(error, JobTimeoutError):
                error = policy.timeout_error(relative, self.settings.daemon.job_timeout)
            self.terminal.failed(claim, error or RuntimeError("unknown error"), frames)
        elif action is Action.retry:
            exitcode = error.exitcode if isinstance(error, WorkerLostError) else None
            self.board.retried()
            self.audit.record(
                "retried",
                source=relative,
                sha256=claim.sha256,
                attempt=claim.attempts + 1,
                error_type="WorkerLostError",
                message=f"worker died (exit code {exitcode}); trying again",
            )
            self.log.warning("worker died, retrying", file=relative, exitcode=exitcode)
            self.ready.appendleft(claim)
        elif action is Action.poison:
            exitcode = error.exitcode if isinstance(error, WorkerLostError) else None
            self.terminal.failed(claim, policy.poison_error(relative, claim.attempts, exitcode), [])
        elif action is Action.requeue:
            self.ready.appendleft(claim)
            return True
        else:
            self.terminal.release(claim)
        return False

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
            claim.attempts = policy.undo_attempt(claim.attempts)
            claim.save()
            self.terminal.release(claim)
        self.in_flight.clear()
        while self.ready:
            self.terminal.release(self.ready.popleft())

    def _write_status(self) -> None:
        self.board.write(
            Activity(
                queue_depth=self.source.pending() + len(self.ready),
                in_flight=len(self.in_flight),
                worker_pids=self.executor.worker_pids(),
                generation=self.generation,
                rescans=self.source.rescans,
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
