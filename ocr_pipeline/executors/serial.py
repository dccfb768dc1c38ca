"""The serial executor: jobs run in the calling process, one at a time, as they are submitted.

For tests of the daemon's decisions without processes (the habit of OCRmyPDF's
``SerialExecutor`` and rq's ``SimpleWorker``), and for library callers who want no pool. It
runs the real engine by default; a test passes ``run`` to inject faults (a job that raises
:class:`~ocr_pipeline.errors.WorkerLostError` behaves as a worker that died). There is no
timeout: a job runs to its end.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future

from ocr_pipeline.errors import ExecutorBrokenError, JobTimeoutError, WorkerLostError
from ocr_pipeline.executors.base import (
    Job,
    JobError,
    JobOutcome,
    JobRecipe,
    WorkerSilence,
    traceback_lines,
)
from ocr_pipeline.executors.worker import Worker
from ocr_pipeline.settings import Settings

_CONTRACT_ERRORS = (WorkerLostError, JobTimeoutError, ExecutorBrokenError)


class SerialExecutor:
    """Runs each job at :meth:`submit`, in this process; the future is already finished.

    Args:
        settings: the settings jobs run with.
        generation: their generation.
        run: what runs a recipe (default: a real :class:`Worker`); its contract errors
            (``WorkerLostError``, ``JobTimeoutError``, ``ExecutorBrokenError``) end the future
            as such, anything else as :class:`JobError`.

    """

    def __init__(
        self,
        settings: Settings,
        generation: int = 0,
        run: Callable[[JobRecipe], JobOutcome] | None = None,
    ) -> None:
        self._worker = Worker()
        self._run = run if run is not None else self._worker.run
        self.restarts = 0
        """How many times :meth:`restart` was called."""
        self.use_settings(settings, generation)

    @property
    def slots(self) -> int:
        """One job at a time."""
        return 1

    @property
    def threads_per_worker(self) -> int:
        """Inference threads of the in-process engine (0: every CPU)."""
        return self._settings.runtime.intra_op_threads

    def use_settings(self, settings: Settings, generation: int) -> None:
        """Run later jobs with ``settings``."""
        self._settings, self._generation = settings, generation

    def submit(self, job: Job) -> Future[JobOutcome]:
        """Run ``job`` now and return its finished future."""
        future: Future[JobOutcome] = Future()
        recipe = JobRecipe(job=job, settings=self._settings, generation=self._generation)
        try:
            future.set_result(self._run(recipe))
        except _CONTRACT_ERRORS as exc:
            future.set_exception(exc)
        except Exception as exc:
            future.set_exception(JobError(exc, traceback_lines(exc)))
        return future

    def restart(self) -> None:
        """Drop the loaded engine; the next job loads it again."""
        self.restarts += 1
        self._worker.forget()

    def close(self, grace_seconds: float) -> bool:
        """Nothing runs between calls (each job ran inside :meth:`submit`): always finished.

        So there is nothing to stop between pages; the worker is made without ``should_stop``.
        """
        return True

    def worker_pids(self) -> list[int]:
        """The calling process, where the jobs run."""
        return [os.getpid()]

    def silent_workers(self, after_seconds: float) -> list[WorkerSilence]:
        """None: jobs run in the caller's thread, which is the one that would ask."""
        return []

    def stop_worker(self, pid: int) -> None:
        """Nothing to stop (there is no worker process)."""

    def trouble(self) -> str | None:
        """None: the calling process is always there."""
        return None
