"""The local executor: worker processes on this machine, pebble's ``ProcessPool`` underneath.

pebble (https://pebble.readthedocs.io) replaces a worker that dies (segfault, ``kill -9``, the
OOM killer), stops a job over its timeout by killing its worker, and recycles workers after
``max_tasks`` jobs. This module maps pebble's outcomes to the executor contract of
:mod:`ocr_pipeline.executors.base` and adds:

* each worker process holds one :class:`~ocr_pipeline.executors.worker.Worker`, created as the
  process starts, which loads the engine and lexicons then and OCRs one small rendered page
  (:func:`warm_up_page`) through the whole job path, so that whatever a first run does once
  (lazily imported code, ONNX Runtime's first allocations) is off the first file's clock.
  A warm-up that fails is ignored: the first real job reports the error with its file name.
  Workers start with the settings generation in force (a pool restarted after a SIGHUP reload,
  or a worker recycled after ``max_tasks`` jobs, loads the new one, not the pool's first);
* workers ignore SIGINT, so Ctrl-C reaches only the daemon, which drains them;
* a stop event, made from the spawn context with each pool and handed to every worker process
  through pebble's ``initializer``/``initargs``: :meth:`LocalPoolExecutor.close` sets it, and a
  running document stops before its next page with
  :class:`~ocr_pipeline.errors.JobStoppedError` (its future ends as :class:`JobError`), so a
  drain takes about one page, not the rest of a long document;
* a heartbeat: each worker process touches ``<pid>`` in the executor's private temporary folder
  every :data:`HEARTBEAT_SECONDS` from a thread of its own, and writes there the file it is
  reading; a worker stopped (``SIGSTOP``, a frozen VM, a debugger) stops beating, which
  :meth:`LocalPoolExecutor.silent_workers` reports and :meth:`LocalPoolExecutor.stop_worker`
  ends, so pebble replaces it;
* workers are started with ``spawn``: the daemon runs threads (watchdog, pebble) and forking a
  threaded process can deadlock;
* worker count and intra-op threads come from the CPUs this process may use
  (:func:`ocr_pipeline.cpus.available_cpus`): one worker per CPU, each with its share of the
  CPUs' threads (:func:`with_threads`), so that busy workers never contend; and a file submitted
  while no other job runs goes with every CPU's threads (:func:`wide_threads`: the worker holds
  a second engine for it), so a lone file on an idle daemon gets all the cores.

Two test-only hooks, read from the environment of the worker and unset in production:
``OCR_PIPELINE_TEST_CRASH_MARKER`` (a worker SIGKILLs itself when the file name contains it) and
``OCR_PIPELINE_TEST_STARTED_DIR`` (a worker writes ``started-<pid>`` there as a job begins).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.synchronize import Event
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from ocr_pipeline.cpus import available_cpus
from ocr_pipeline.errors import ExecutorBrokenError, JobTimeoutError, WorkerLostError
from ocr_pipeline.executors.base import (
    Job,
    JobError,
    JobOutcome,
    JobRecipe,
    WorkerSilence,
    remote_frames,
)
from ocr_pipeline.executors.worker import Worker
from ocr_pipeline.settings import Settings

CRASH_MARKER_ENV = "OCR_PIPELINE_TEST_CRASH_MARKER"
STARTED_DIR_ENV = "OCR_PIPELINE_TEST_STARTED_DIR"
REMOTE_FRAMES = 6
"""Traceback lines of a worker's error kept in the error report."""
HEARTBEAT_SECONDS = 1.0
"""How often a worker process touches its heartbeat file, seconds."""
RECIPE_FILE = "settings.pickle"
"""The settings and generation in force, pickled in the heartbeat folder for starting workers."""
WARM_UP_LINES = ("OCR warm-up page 0123", "TOTAL 12.50  CASH 20.00")
"""Text of the page each worker OCRs as it starts."""

# The worker process's own state: set by ``_start_worker`` in each pool process, never in the
# daemon's process. It belongs to this executor alone.
_process_worker: Worker | None = None
_heartbeat_file: Path | None = None


def _beat_forever(path: Path) -> None:
    """Touch ``path`` every ``HEARTBEAT_SECONDS`` (a daemon thread of the worker process)."""
    while True:
        with contextlib.suppress(OSError):  # the folder goes when the executor closes
            os.utime(path)
        time.sleep(HEARTBEAT_SECONDS)


def _start_worker(settings: Settings, generation: int, stop: Event, beats: str) -> None:
    """Worker process start-up: leave SIGINT to the daemon, load the engine, warm it up.

    Args:
        settings: the settings the pool started with; the executor's recipe file in
            ``beats`` (:data:`RECIPE_FILE`, written by :meth:`LocalPoolExecutor.use_settings`),
            when readable, replaces them and ``generation``.
        generation: their generation.
        stop: the pool's stop event; jobs stop between pages once it is set.
        beats: the executor's heartbeat folder.

    A load that fails leaves the worker empty: its first job loads again and fails with the
    error, which names the file and the fix. A warm-up page that fails is ignored likewise.
    """
    global _process_worker, _heartbeat_file
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _heartbeat_file = Path(beats, str(os.getpid()))
    with contextlib.suppress(OSError):
        _heartbeat_file.write_text("", encoding="utf-8")
    threading.Thread(
        target=_beat_forever, args=(_heartbeat_file,), name="heartbeat", daemon=True
    ).start()
    settings, generation, wide = _current_recipe(Path(beats), settings, generation)
    _process_worker = Worker(should_stop=stop.is_set)
    try:
        _process_worker.load(settings, generation)
    except Exception:  # reported again by the first job, with its file name
        _process_worker.forget()
        return
    with contextlib.suppress(Exception):  # a real job reports any error, with its file name
        for each in (settings, wide) if wide is not None else (settings,):
            warm_up_worker(_process_worker, each, generation, Path(beats))


def write_recipe(
    folder: Path, settings: Settings, generation: int, wide: Settings | None = None
) -> None:
    """Pickle ``settings``, ``generation`` and ``wide`` into ``folder`` for starting workers.

    ``wide``: the settings of a file that runs alone (:func:`wide_threads`), or None.

    Written to a temporary name, then renamed over :data:`RECIPE_FILE`: a worker starting
    meanwhile reads the old recipe or the new one, never half of one.

    Raises:
        OSError: the file cannot be written.

    """
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{RECIPE_FILE}.tmp"
    temporary.write_bytes(pickle.dumps((settings, generation, wide)))
    os.replace(temporary, folder / RECIPE_FILE)


def _current_recipe(
    beats: Path, settings: Settings, generation: int
) -> tuple[Settings, int, Settings | None]:
    """The settings, generation and wide settings in force.

    The recipe file's, else the ones given (and no wide settings).
    """
    try:
        with (beats / RECIPE_FILE).open("rb") as handle:
            recipe = pickle.load(handle)  # written by this executor into its private folder
    except Exception:  # unreadable or half-written: the pool's own settings still work
        return settings, generation, None
    if isinstance(recipe, tuple) and len(recipe) == 3 and isinstance(recipe[0], Settings):
        wide = recipe[2] if isinstance(recipe[2], Settings) else None
        return recipe[0], int(recipe[1]), wide
    return settings, generation, None


def warm_up_page(folder: Path) -> Path:
    """Write a small page of rendered text (PNG, 640 x 200 pixels) into ``folder``.

    Returns:
        The file, named after this process's pid.

    Raises:
        OSError: the file cannot be written.

    """
    import cv2
    import numpy as np

    page = np.full((200, 640, 3), 255, dtype=np.uint8)
    for row, text in enumerate(WARM_UP_LINES):
        origin = (24, 80 + 80 * row)
        cv2.putText(page, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2, cv2.LINE_AA)
    ok, encoded = cv2.imencode(".png", page)
    if not ok:
        raise OSError("cannot encode the warm-up page")
    path = folder / f"warm-up-{os.getpid()}.png"
    path.write_bytes(encoded.tobytes())
    return path


def warm_up_worker(worker: Worker, settings: Settings, generation: int, folder: Path) -> JobOutcome:
    """OCR :func:`warm_up_page` (written into ``folder``, then removed) with ``worker``.

    It runs as a job of ``settings`` and ``generation``, so the worker loads them first if it
    has not (a later job of the same generation does not load again).

    Returns:
        The warm-up page's outcome (the daemon drops it).

    Raises:
        ModelError: a model is missing or corrupt.
        ConfigError: a lexicon cannot be read.
        OSError: the page cannot be written.

    """
    path = warm_up_page(folder)
    try:
        job = Job(path=path, relative=path.name, sha256="0" * 64)
        return worker.run(JobRecipe(job=job, settings=settings, generation=generation))
    finally:
        path.unlink(missing_ok=True)


def _run_in_worker(recipe: JobRecipe) -> JobOutcome:
    """The function each pool process runs for a job (see :meth:`Worker.run`)."""
    _note_job(recipe.job.relative)
    try:
        _test_hooks(recipe.job)
        worker = _process_worker if _process_worker is not None else Worker()
        return worker.run(recipe)
    finally:
        _note_job("")


def _note_job(relative: str) -> None:
    """Write the file this worker is reading into its heartbeat file (empty: idle)."""
    if _heartbeat_file is not None:
        with contextlib.suppress(OSError):
            _heartbeat_file.write_text(relative, encoding="utf-8", errors="surrogateescape")


def _test_hooks(job: Job) -> None:
    started_dir = os.environ.get(STARTED_DIR_ENV)
    if started_dir:
        Path(started_dir, f"started-{os.getpid()}").write_text(job.relative, encoding="utf-8")
    marker = os.environ.get(CRASH_MARKER_ENV)
    if marker and marker in job.path.name:
        os.kill(os.getpid(), signal.SIGKILL)


def worker_count(settings: Settings) -> int:
    """Workers to start: ``daemon.workers``, or one per CPU this process may use when 0."""
    return settings.daemon.workers or available_cpus()


def with_threads(settings: Settings, workers: int) -> Settings:
    """Settings as each of ``workers`` workers uses them when others run too.

    ``runtime.intra_op_threads = 0`` (auto) becomes CPUs // workers, at least 1, so that
    workers x threads never exceeds the CPUs: a thread per CPU in every worker cost 8-14% of
    the pages per second of a bulk run on 2 cores, in each of three paired rounds
    (``benchmarks/compare.py --engines ocr-pipeline ocr-pipeline-1-thread``). An explicit
    thread count is kept.
    """
    if settings.runtime.intra_op_threads:
        return settings
    threads = max(1, available_cpus() // workers)
    runtime = settings.runtime.model_copy(update={"intra_op_threads": threads})
    return settings.model_copy(update={"runtime": runtime})


def wide_threads(settings: Settings, narrow: Settings) -> Settings | None:
    """Settings for a file that runs alone: every CPU's threads, or None when no wider.

    Only with ``runtime.intra_op_threads = 0`` (auto) in ``settings``, and only when
    ``narrow`` (:func:`with_threads`) has fewer threads than CPUs. A lone file with one thread
    per worker measured a drop-to-result p95 of 1.64x the engine's all-core time on 2 cores,
    with both 0.93-1.36x (docs/daemon.md).
    """
    cpus = available_cpus()
    if settings.runtime.intra_op_threads or narrow.runtime.intra_op_threads >= cpus:
        return None
    runtime = settings.runtime.model_copy(update={"intra_op_threads": cpus})
    return settings.model_copy(update={"runtime": runtime})


def _settle(outer: Future[JobOutcome], inner: Future[JobOutcome]) -> None:
    """Finish ``outer`` from pebble's ``inner``, mapping pebble's errors to the contract's."""
    if inner.cancelled():
        outer.cancel()
        return
    error = inner.exception()
    if error is None:
        outer.set_result(inner.result())
    elif isinstance(error, ProcessExpired):
        outer.set_exception(
            WorkerLostError(f"worker died (exit code {error.exitcode})", error.exitcode)
        )
    elif isinstance(error, TimeoutError):
        outer.set_exception(JobTimeoutError("the job ran past its timeout"))
    elif isinstance(error, BrokenProcessPool):
        outer.set_exception(ExecutorBrokenError(f"the worker pool broke: {error}"))
    elif isinstance(error, CancelledError):
        outer.cancel()
    else:
        remote = str(getattr(error, "traceback", "") or "")  # pebble's remote traceback
        outer.set_exception(JobError(error, remote_frames(remote, REMOTE_FRAMES)))


def _warm_up() -> None:
    """A job that does nothing: scheduling it starts the pool's worker processes."""


class LocalPoolExecutor:
    """A fixed number of OCR worker processes on this machine.

    Args:
        settings: the effective settings (``daemon.workers``, ``daemon.job_timeout``,
            ``daemon.max_jobs_per_worker``, and what the engine needs).
        generation: the settings generation, recorded in outcomes.

    """

    def __init__(self, settings: Settings, generation: int = 0) -> None:
        self._beats = Path(tempfile.mkdtemp(prefix="ocr-pipeline-workers-"))
        self._workers = worker_count(settings)
        self._unfinished = 0
        self._count_lock = threading.Lock()
        self._max_jobs = settings.daemon.max_jobs_per_worker
        self.use_settings(settings, generation)
        self._pool = self._start_pool()

    @property
    def slots(self) -> int:
        """Worker processes: jobs that run at once."""
        return self._workers

    @property
    def threads_per_worker(self) -> int:
        """Intra-op threads of each worker's inference sessions."""
        return self._settings.runtime.intra_op_threads

    def use_settings(self, settings: Settings, generation: int) -> None:
        """Send ``settings`` with later jobs; workers started from now on load them at start.

        They are pickled into the heartbeat folder (:data:`RECIPE_FILE`, atomic replace), which
        a starting worker reads: pebble's start-up arguments are fixed when the pool starts.
        """
        self._settings = with_threads(settings, self._workers)
        self._wide = wide_threads(settings, self._settings)
        self._timeout = settings.daemon.job_timeout
        self._generation = generation
        self._write_recipe()

    def _write_recipe(self) -> None:
        """Pickle the settings and generation in force for starting workers (best effort)."""
        with contextlib.suppress(OSError):  # workers then start with the pool's settings
            write_recipe(self._beats, self._settings, self._generation, self._wide)

    def _start_pool(self) -> ProcessPool:
        """A new pool with a fresh (unset) stop event, shared by all its worker processes.

        Its workers start at once (a no-op job makes pebble start them; it would otherwise
        wait for the first file), so health and readiness see them from the start and the
        first file waits neither for model loading nor for first-run work (each worker OCRs
        :func:`warm_up_page` as it starts).
        """
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        pool = ProcessPool(
            max_workers=self._workers,
            max_tasks=self._max_jobs,
            initializer=_start_worker,
            initargs=(self._settings, self._generation, self._stop, str(self._beats)),
            context=context,
        )
        pool.schedule(_warm_up)
        return pool

    def submit(self, job: Job) -> Future[JobOutcome]:
        """Queue one job for the next free worker; its timeout starts when a worker takes it.

        Raises:
            ExecutorBrokenError: pebble refuses work once its pool is broken.

        """
        with self._count_lock:
            alone = self._unfinished == 0
            self._unfinished += 1
        settings = self._wide if alone and self._wide is not None else self._settings
        recipe = JobRecipe(job=job, settings=settings, generation=self._generation)
        try:
            inner: Future[JobOutcome] = self._pool.schedule(
                _run_in_worker, args=(recipe,), timeout=self._timeout
            )
        except RuntimeError as exc:
            self._finished()
            raise ExecutorBrokenError(f"the worker pool stopped accepting jobs: {exc}") from exc
        outer: Future[JobOutcome] = Future()
        inner.add_done_callback(lambda done: self._settled(outer, done))
        return outer

    def _finished(self) -> None:
        """Count one submitted job as ended (done, failed or cancelled)."""
        with self._count_lock:
            self._unfinished -= 1

    def _settled(self, outer: Future[JobOutcome], inner: Future[JobOutcome]) -> None:
        """Count the job as ended, then finish ``outer``.

        In that order: a job the daemon submits on seeing this one finished counts it gone.
        """
        self._finished()
        _settle(outer, inner)

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes."""
        return sorted(p.pid for p in multiprocessing.active_children() if p.pid is not None)

    def silent_workers(self, after_seconds: float) -> list[WorkerSilence]:
        """Live workers whose heartbeat is older than ``after_seconds`` (stopped or hung).

        A worker that has not started beating yet (loading its models) is not reported.
        """
        now = time.time()
        silent = []
        for pid in self.worker_pids():
            beat = self._beats / str(pid)
            try:
                age = now - beat.stat().st_mtime
                job = beat.read_text(encoding="utf-8", errors="surrogateescape") or None
            except OSError:
                continue
            if age > after_seconds:
                silent.append(WorkerSilence(pid=pid, seconds=age, job=job))
        return silent

    def stop_worker(self, pid: int) -> None:
        """SIGKILL one worker (stopped or hung); pebble replaces it.

        Its job ends as :class:`~ocr_pipeline.errors.WorkerLostError`.
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def trouble(self) -> str | None:
        """None: local workers are replaced by pebble, never waited for."""
        return None

    def restart(self) -> None:
        """Stop every worker now (a broken or wedged pool) and start a fresh pool.

        The new pool has a new, unset stop event: a restart after :meth:`close` runs jobs again.
        """
        self._pool.stop()  # type: ignore[no-untyped-call]
        with contextlib.suppress(TimeoutError, RuntimeError):  # workers are gone either way
            self._pool.join(timeout=10)
        self._write_recipe()  # the folder was removed by an earlier close()
        self._pool = self._start_pool()

    def close(self, grace_seconds: float) -> bool:
        """Stop running documents at their next page, wait up to ``grace_seconds``, then stop.

        Sets the stop event first: a running job finishes the page it is on and ends with
        ``JobError(JobStoppedError)`` (a one-page job simply finishes). Jobs still queued run
        their first page only. Workers still busy after ``grace_seconds`` are stopped
        (pebble's ``stop``), as before.

        Returns:
            True when every job ended within the grace period.

        """
        self._stop.set()
        self._pool.close()  # type: ignore[no-untyped-call]
        try:
            self._pool.join(timeout=grace_seconds)
            return True
        except TimeoutError:
            self._pool.stop()  # type: ignore[no-untyped-call]
            self._pool.join()
            return False
        finally:
            shutil.rmtree(self._beats, ignore_errors=True)
