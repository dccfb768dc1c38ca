"""The executor seam: where OCR jobs run, behind one interface the daemon knows.

The daemon hands an executor a :class:`Job` (which claimed file, its sha256) and gets a
``concurrent.futures.Future`` back. The future ends in exactly one of:

* a :class:`JobOutcome` (the document's result);
* :class:`JobError`: the job itself raised (a corrupt file, a missing model); it carries the
  error and its last traceback frames. ``JobError(JobStoppedError)`` is a job the executor
  stopped between two pages as it closed: not the file's fault, nothing of it kept;
* :class:`~ocr_pipeline.errors.WorkerLostError`: the process running the job died (segfault,
  ``kill -9``, the OOM killer);
* :class:`~ocr_pipeline.errors.JobTimeoutError`: the job ran past ``daemon.job_timeout`` and
  its worker was stopped;
* :class:`~ocr_pipeline.errors.ExecutorBrokenError`: the executor lost its workers for a reason
  that is not this job's file; the daemon restarts the executor and hands the job out again;
* cancelled: the executor was stopped before the job ran.

Executor-specific exceptions (pebble's, Ray's) never leave the executor. What is sent to a
worker is a :class:`JobRecipe`: the claimed file's path (a remote executor sends its bytes
instead), the settings and their generation, never live objects: each worker builds its own
engine from the settings, once per generation.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ocr_pipeline.results import DocumentResult
from ocr_pipeline.settings import Settings


@dataclass(frozen=True)
class Job:
    """One claimed file to OCR, as the daemon submits it."""

    path: Path
    """The claimed file, in the work folder."""
    relative: str
    """Inbox-relative path, recorded in the result's ``source.relative_path``."""
    sha256: str
    """Hex sha256 of the file's bytes (hashed once, by the daemon)."""


@dataclass(frozen=True)
class JobRecipe:
    """What a worker needs to run a :class:`Job`: small and picklable, no live objects."""

    job: Job
    settings: Settings
    """The settings to OCR with, threads per worker already set by the executor."""
    generation: int
    """Settings generation; a worker whose engine is older reloads first."""


@dataclass(frozen=True)
class JobOutcome:
    """A finished job."""

    result: DocumentResult
    worker_pid: int
    """Process that ran the job."""
    generation: int
    """Settings generation the worker's engine and lexicons were loaded from."""
    rendered: dict[str, bytes] = field(default_factory=dict)
    """Outputs the worker rendered because they embed the original's pages (the searchable
    PDF), bytes by format name (:func:`ocr_pipeline.writers.render_in_worker`)."""


@dataclass(frozen=True)
class WorkerSilence:
    """A worker whose heartbeat stopped: stopped (``SIGSTOP``) or hung."""

    pid: int
    seconds: float
    """Since its last heartbeat, seconds."""
    job: str | None
    """The inbox-relative file it was reading, ``None`` when idle."""


class JobError(Exception):
    """The job raised: ``error`` is what it raised, ``frames`` its last traceback lines.

    Args:
        error: the exception raised by the job (``InputError``, ``ModelError``, ...).
        frames: the innermost traceback lines (from the worker process), innermost last.

    """

    def __init__(self, error: BaseException, frames: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.frames = frames


def traceback_lines(error: BaseException, count: int = 3) -> list[str]:
    """The innermost ``count`` frames of ``error``'s traceback, stripped, innermost last.

    Each frame is its ``File "...", line N, in f`` line and its source line. The markers
    Python 3.11+ prints under a source line (``^^^^``, ``~~~^~~``) are left out: without the
    indentation they point at nothing, and no frame starts or ends with one.
    """
    frames = []
    for frame in traceback.format_tb(error.__traceback__)[-count:]:
        kept = [line for line in frame.splitlines() if line.strip(" ^~")]
        frames.append("\n".join(kept).strip())
    return frames


def remote_frames(text: str, count: int) -> list[str]:
    """The last ``count`` lines of a traceback printed in another process, from a frame's start.

    Python 3.11+'s ``^^^^``/``~~^~~`` marker lines are dropped (they point at nothing in a
    report), and the kept lines start at a frame's ``File ...`` line, never halfway.

    Args:
        text: the traceback as the other process formatted it (pebble's, Ray's).
        count: most lines kept.

    """
    lines = [line for line in text.splitlines() if line.strip(" ^~")][-count:]
    first = next((i for i, line in enumerate(lines) if line.lstrip().startswith("File ")), 0)
    return lines[first:]


class Executor(Protocol):
    """Runs OCR jobs: the local process pool, an in-process serial executor, later Ray actors."""

    @property
    def slots(self) -> int:
        """Jobs that run at once; the daemon keeps at most this many in flight."""
        ...

    @property
    def threads_per_worker(self) -> int:
        """Inference threads each worker uses (for the log)."""
        ...

    def submit(self, job: Job) -> Future[JobOutcome]:
        """Start ``job``; the future ends as described in the module docstring.

        Raises:
            ExecutorBrokenError: the executor cannot accept work until :meth:`restart`.

        """
        ...

    def use_settings(self, settings: Settings, generation: int) -> None:
        """Run later jobs, and load restarted workers, with ``settings`` (a SIGHUP reload)."""
        ...

    def restart(self) -> None:
        """Stop every worker now and start fresh ones; unfinished futures end cancelled.

        The fresh workers run jobs to their end again (a stop asked by :meth:`close` does not
        carry over).
        """
        ...

    def close(self, grace_seconds: float) -> bool:
        """Ask running jobs to stop, wait up to ``grace_seconds``, then stop every worker.

        A running document stops before its next page and its future ends with
        ``JobError(JobStoppedError)``; a job on its last (or only) page finishes. An executor
        that cannot interrupt a job (or runs none between calls, like the serial one) just
        waits. After ``grace_seconds`` the workers are stopped whatever they are doing.

        Returns:
            True when every job ended within the grace period.

        """
        ...

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (for the status file)."""
        ...

    def silent_workers(self, after_seconds: float) -> list[WorkerSilence]:
        """Workers with no heartbeat for more than ``after_seconds`` (none for in-process)."""
        ...

    def stop_worker(self, pid: int) -> None:
        """End one silent worker; its job, if any, ends as ``WorkerLostError`` (retried)."""
        ...

    def trouble(self) -> str | None:
        """Why no job can start now though the daemon is fine (a lost cluster), else ``None``.

        The daemon reports it in its status (health turns unhealthy) while :attr:`slots` is 0.
        """
        ...


ExecutorFactory = Callable[[Settings, int], Executor]
"""Builds an executor from the settings and their generation (the daemon's one place to do so)."""
