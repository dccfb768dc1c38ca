"""Worker processes that OCR claimed files: pebble's ``ProcessPool`` with our job function.

pebble (https://pebble.readthedocs.io) replaces a worker that dies (segfault, ``kill -9``, the
OOM killer) and fails its future with ``ProcessExpired``; a job over its timeout has its worker
killed and fails with ``TimeoutError``; ``max_tasks`` recycles workers. What we add:

* each worker loads the engine and the corrector (lexicons) once, and again only when the job
  carries a newer settings *generation* (SIGHUP reload: workers pick up new models or lexicons
  at their next job, no job is dropped);
* workers ignore SIGINT, so Ctrl-C reaches only the daemon, which drains them;
* workers are started with ``spawn``: the daemon runs threads (watchdog, pebble) and forking a
  threaded process can deadlock;
* intra-op threads per worker are set so that workers x threads = cores;
* after each job a worker gives its free heap memory back, so its resident memory stays flat
  over thousands of jobs (:mod:`ocr_pipeline.memory`).

Two test-only hooks, read from the environment of the worker and unset in production:
``OCR_PIPELINE_TEST_CRASH_MARKER`` (a worker SIGKILLs itself when the file name contains it) and
``OCR_PIPELINE_TEST_STARTED_DIR`` (a worker writes ``started-<pid>`` there as a job begins).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from pebble import ProcessPool

from ocr_pipeline.correct import Corrector, corrector_from_settings
from ocr_pipeline.documents import DecodeLimits
from ocr_pipeline.engine import Engine
from ocr_pipeline.jobs import ocr_file
from ocr_pipeline.memory import release_free_memory
from ocr_pipeline.results import DocumentResult
from ocr_pipeline.settings import Settings

CRASH_MARKER_ENV = "OCR_PIPELINE_TEST_CRASH_MARKER"
STARTED_DIR_ENV = "OCR_PIPELINE_TEST_STARTED_DIR"


@dataclass(frozen=True)
class JobRequest:
    """What a worker needs for one file (small: sent through a pipe)."""

    path: Path
    """The claimed file, in the work folder."""
    relative: str
    """Inbox-relative path recorded in the result."""
    generation: int
    """Settings generation; a worker with an older engine reloads first."""
    settings: Settings


@dataclass(frozen=True)
class JobOutcome:
    """A finished job."""

    result: DocumentResult
    worker_pid: int
    generation: int
    """Settings generation the worker's engine and lexicons were loaded from."""
    reloaded: bool
    """The worker (re)loaded its engine for this job."""


_engine: Engine | None = None
_corrector: Corrector | None = None
_generation = -1


def _init_worker(settings: Settings | None, generation: int) -> None:
    """Worker start-up: leave SIGINT to the daemon, then load the engine and lexicons.

    Loading here, while the daemon settles its first files, keeps the model load (about 1 s of
    session creation per worker) out of the first job's time. A load that fails leaves the
    worker empty: its first job loads again and fails with the error, which names the fix.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings is None:
        return
    try:
        _load(settings, generation)
    except Exception:  # reported again by the first job, with its file name
        _forget()


def _load(settings: Settings, generation: int) -> Engine:
    """Load this worker's engine and corrector for ``generation``, freeing the old ones first.

    Returns:
        The new engine (also kept in the module's ``_engine``).

    Raises:
        ModelError: a model is missing or corrupt.
        ConfigError: a lexicon or the look-alike table cannot be read.

    """
    global _engine, _corrector, _generation
    _forget()  # free the old sessions before loading the new ones
    _engine = Engine.from_settings(settings)
    _corrector = corrector_from_settings(settings.correct)
    _generation = generation
    return _engine


def _forget() -> None:
    global _engine, _corrector, _generation
    _engine, _corrector, _generation = None, None, -1


def _test_hooks(request: JobRequest) -> None:
    started_dir = os.environ.get(STARTED_DIR_ENV)
    if started_dir:
        Path(started_dir, f"started-{os.getpid()}").write_text(request.relative, encoding="utf-8")
    marker = os.environ.get(CRASH_MARKER_ENV)
    if marker and marker in request.path.name:
        os.kill(os.getpid(), signal.SIGKILL)


def run_job(request: JobRequest) -> JobOutcome:
    """OCR one claimed file in a worker process (the function the pool runs).

    Raises:
        InputError: the file is unsupported, corrupt or over a limit.
        ModelError: a model is missing or corrupt.
        OSError: the file cannot be read.

    """
    _test_hooks(request)
    if _engine is None or _generation != request.generation:
        engine, reloaded = _load(request.settings, request.generation), True
    else:
        engine, reloaded = _engine, False
    decode = request.settings.decode
    limits = DecodeLimits(
        max_bytes=decode.max_bytes, max_pixels=decode.max_pixels, pdf_dpi=decode.pdf_dpi
    )
    try:
        result = ocr_file(request.path, engine, limits, request.relative, _corrector)
    finally:
        release_free_memory()
    return JobOutcome(
        result=result, worker_pid=os.getpid(), generation=_generation, reloaded=reloaded
    )


def worker_settings(settings: Settings, workers: int) -> Settings:
    """Settings as a worker uses them: intra-op threads = cores // workers when set to 0 (auto)."""
    if settings.runtime.intra_op_threads:
        return settings
    threads = max(1, (os.cpu_count() or 1) // workers)
    runtime = settings.runtime.model_copy(update={"intra_op_threads": threads})
    return settings.model_copy(update={"runtime": runtime})


def worker_count(settings: Settings) -> int:
    """Workers to start: the setting, or one per core when it is 0."""
    return settings.daemon.workers or (os.cpu_count() or 1)


class WorkerPool:
    """A fixed number of OCR worker processes."""

    def __init__(
        self,
        workers: int,
        max_jobs_per_worker: int,
        preload: Settings | None = None,
        generation: int = 0,
    ) -> None:
        """Start ``workers`` processes; with ``preload``, each loads that engine as it starts.

        ``generation`` is the settings generation ``preload`` belongs to; a worker started later
        (replacing a dead or recycled one) loads the same and reloads at its first job if the
        daemon has moved on.
        """
        self.workers = workers
        self._pool = ProcessPool(
            max_workers=workers,
            max_tasks=max_jobs_per_worker,
            initializer=_init_worker,
            initargs=(preload, generation),
            context=multiprocessing.get_context("spawn"),
        )

    def submit(self, request: JobRequest, timeout_seconds: float) -> Future[JobOutcome]:
        """Queue one job; the future fails with ``ProcessExpired`` or ``TimeoutError`` as above."""
        return self._pool.schedule(run_job, args=(request,), timeout=timeout_seconds)

    @staticmethod
    def worker_pids() -> list[int]:
        """Pids of the live worker processes."""
        return sorted(p.pid for p in multiprocessing.active_children() if p.pid is not None)

    def kill(self) -> None:
        """Stop every worker now (a broken or wedged pool)."""
        self._pool.stop()  # type: ignore[no-untyped-call]
        with contextlib.suppress(TimeoutError, RuntimeError):  # workers are gone either way
            self._pool.join(timeout=10)

    def close(self, grace_seconds: float) -> bool:
        """Let running jobs finish for up to ``grace_seconds``, then stop the workers.

        Returns:
            True when every job finished within the grace period.

        """
        self._pool.close()  # type: ignore[no-untyped-call]
        try:
            self._pool.join(timeout=grace_seconds)
            return True
        except TimeoutError:
            self._pool.stop()  # type: ignore[no-untyped-call]
            self._pool.join()
            return False
