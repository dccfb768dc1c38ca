"""The Ray executor: OCR jobs on a Ray cluster's actors, the folders kept by this daemon.

The daemon keeps everything it keeps with the local executor: the claims, the one writer of
terminal states, the audit log. Only the OCR moves: each job's bytes go to an actor holding a
loaded engine (:class:`~ocr_pipeline.executors.ray_dispatch.OcrActor`) and its result comes
back. The Ray driver is a child process of the daemon (:mod:`ocr_pipeline.executors.ray_dispatch`
says why); this class starts it, talks to it over a pipe and maps its answers to the executor
contract of :mod:`ocr_pipeline.executors.base`:

* a job's own error ends as :class:`JobError`; an actor that died (its process killed, its
  node lost) as :class:`~ocr_pipeline.errors.WorkerLostError` (retried, counted against
  ``daemon.max_attempts``); a job past ``daemon.job_timeout`` as
  :class:`~ocr_pipeline.errors.JobTimeoutError`;
* a lost dispatcher (the cluster gone, Ray ended the driver) ends every job in flight as
  :class:`~ocr_pipeline.errors.ExecutorBrokenError`: the daemon keeps the files claimed and
  hands them out again, uncounted. Meanwhile :attr:`RayExecutor.slots` is 0, so nothing is
  submitted, :meth:`RayExecutor.trouble` says why (health turns unhealthy), and a supervisor
  thread starts a new dispatcher after a pause that doubles from 1 s up to
  ``ray.reconnect_max_seconds``.

Ray is an optional extra: without it :class:`RayExecutor` refuses to start with a
:class:`~ocr_pipeline.errors.ConfigError` naming the install command.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import multiprocessing
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ocr_pipeline.audit import get_logger
from ocr_pipeline.errors import ConfigError, ExecutorBrokenError, JobTimeoutError, WorkerLostError
from ocr_pipeline.executors.base import Job, JobError, JobOutcome, JobRecipe, WorkerSilence
from ocr_pipeline.executors.ray_dispatch import (
    Close,
    Fatal,
    Finished,
    Ready,
    Retried,
    Submit,
    UseSettings,
    actor_settings,
    dispatch_main,
)
from ocr_pipeline.settings import Settings

FIRST_RECONNECT_SECONDS = 1.0
"""First pause before a lost cluster is tried again, seconds (doubles per failure)."""
INSTALL_HINT = "pip install 'ocr-pipeline[ray]'"


def require_ray() -> None:
    """Refuse the Ray executor when Ray is not installed.

    Raises:
        ConfigError: naming the install command.

    """
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "daemon.executor = 'ray' (--executor ray) needs Ray, which is not installed; "
            f"install it with {INSTALL_HINT}, or use --executor local"
        )


class RayExecutor:
    """A pool of OCR actors on a Ray cluster, driven from a dispatcher child process.

    Args:
        settings: the effective settings (section ``ray``, ``daemon.job_timeout`` and what the
            engine needs).
        generation: the settings generation, recorded in outcomes.

    Raises:
        ConfigError: Ray is not installed, or no actor was ready within
            ``ray.connect_timeout_seconds`` (the message says what the cluster answered).

    """

    def __init__(self, settings: Settings, generation: int = 0) -> None:
        require_ray()
        self.log = get_logger("ocr_pipeline.executors.ray")
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._futures: dict[int, Future[JobOutcome]] = {}
        self._keys = itertools.count()
        self._ready = Ready(actors=0, pids=[], nodes=0)
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._closed = threading.Event()
        self._restart_now = threading.Event()
        self._first_answer = threading.Event()
        self._trouble: str | None = f"connecting to the Ray cluster at {settings.ray.address!r}"
        self._last_loss = "no actor became ready"
        self.use_settings(settings, generation)
        self._supervisor = threading.Thread(
            target=self._supervise, name="ray-dispatcher", daemon=True
        )
        self._supervisor.start()
        timeout = settings.ray.connect_timeout_seconds
        if not self._first_answer.wait(timeout) or self._ready.actors == 0:
            self._shutdown(0.0)
            raise ConfigError(
                f"the Ray executor did not start within {timeout:g} s "
                f"(ray.connect_timeout_seconds): {self._last_loss}; start the cluster (ray "
                "start --head), check ray.address, or use --executor local"
            )

    # ------------------------------------------------------------- the executor contract

    @property
    def slots(self) -> int:
        """Ready actors x ``ray.jobs_per_actor``; 0 while the cluster is lost."""
        if self._trouble is not None:
            return 0
        return self._ready.actors * self._settings.ray.jobs_per_actor

    @property
    def threads_per_worker(self) -> int:
        """Inference threads of each actor (``ray.cpus_per_actor`` unless set)."""
        return self._settings.runtime.intra_op_threads

    def use_settings(self, settings: Settings, generation: int) -> None:
        """Send ``settings`` with later jobs, and to actors started from now on."""
        self._settings = actor_settings(settings)
        self._generation = generation
        self._send(UseSettings(self._settings, generation))

    def submit(self, job: Job) -> Future[JobOutcome]:
        """Send ``job`` to the dispatcher; a job sent while the cluster is lost ends broken.

        Never raises: a lost dispatcher ends the future with ``ExecutorBrokenError``.
        """
        future: Future[JobOutcome] = Future()
        key = next(self._keys)
        recipe = JobRecipe(job=job, settings=self._settings, generation=self._generation)
        with self._lock:
            self._futures[key] = future
        if not self._send(Submit(key=key, recipe=recipe)):
            self._end(key, ExecutorBrokenError("the Ray dispatcher is not running"))
        return future

    def restart(self) -> None:
        """Stop the dispatcher (its actors go with it) and connect again; never waits."""
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
        self._restart_now.set()

    def close(self, grace_seconds: float) -> bool:
        """Let running jobs finish within ``grace_seconds``, then stop the actors and Ray.

        Jobs not started end cancelled (the daemon gives their files back to the inbox). A
        running job is not interrupted between pages: Ray actors cannot see the daemon's stop
        event; after ``grace_seconds`` its actor is killed and it ends cancelled.

        Returns:
            True when every job ended within the grace period.

        """
        return self._shutdown(grace_seconds)

    def worker_pids(self) -> list[int]:
        """Process ids of the ready actors (each on its own node)."""
        return list(self._ready.pids)

    def silent_workers(self, after_seconds: float) -> list[WorkerSilence]:
        """None: Ray checks its actors' health; a hung one ends by ``daemon.job_timeout``."""
        return []

    def stop_worker(self, pid: int) -> None:
        """Nothing to stop here (no silent workers are reported)."""

    def trouble(self) -> str | None:
        """Why no job can start (connecting to, or reconnecting to, the cluster), or None."""
        return self._trouble

    # ------------------------------------------------------------- the dispatcher

    def _start_dispatcher(self) -> Connection:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=dispatch_main,
            args=(theirs, self._settings, self._generation),
            name="ocr-pipeline-ray-dispatcher",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._process, self._conn = process, ours
        return ours

    def _supervise(self) -> None:
        """Run a dispatcher, read its answers; when it ends, pause and start another."""
        pause = FIRST_RECONNECT_SECONDS
        longest = self._settings.ray.reconnect_max_seconds
        while not self._closed.is_set():
            self._restart_now.clear()
            conn = self._start_dispatcher()
            reason = self._last_loss = self._read_answers(conn)
            with contextlib.suppress(OSError):
                conn.close()
            if self._process is not None:
                self._process.join(timeout=5)
            self._conn = None
            was_ready = self._ready.actors > 0
            self._ready = Ready(actors=0, pids=[], nodes=0)
            self._fail_in_flight(f"lost the Ray cluster: {reason}")
            if self._closed.is_set():
                break
            pause = FIRST_RECONNECT_SECONDS if was_ready else min(pause * 2, longest)
            if self._restart_now.is_set():
                pause = 0.0
            address = self._settings.ray.address
            self._trouble = (
                f"lost the Ray cluster at {address!r} ({reason}); connecting again in {pause:g} s"
            )
            self._first_answer.set()
            self.log.error(
                "Ray cluster lost; files stay claimed, connecting again",
                address=address,
                error=reason,
                retry_in_seconds=pause,
            )
            if pause:
                self._restart_now.wait(pause)
            self._trouble = f"lost the Ray cluster at {address!r} ({reason}); connecting again"

    def _read_answers(self, conn: Connection) -> str:
        """Handle the dispatcher's messages until it ends; return why it ended."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                code = self._process.exitcode if self._process is not None else None
                return f"the dispatcher process ended (exit code {code})"
            if isinstance(message, Ready):
                self._on_ready(message)
            elif isinstance(message, Finished):
                self._on_finished(message)
            elif isinstance(message, Retried):
                self.log.warning(
                    "a Ray actor was lost before the job started; sent to another",
                    error=message.message,
                )
            elif isinstance(message, Fatal):
                return message.message

    def _on_ready(self, ready: Ready) -> None:
        before = self._ready
        self._ready = ready
        if ready.actors:
            if self._trouble is not None:
                self.log.info(
                    "Ray actors ready", actors=ready.actors, nodes=ready.nodes, pids=ready.pids
                )
            self._trouble = None
            self._first_answer.set()
        elif before.actors:
            self.log.error("no Ray actor is ready; waiting for the cluster to place them")

    def _on_finished(self, finished: Finished) -> None:
        if finished.kind == "done" and finished.outcome is not None:
            self._end(finished.key, finished.outcome)
        elif finished.kind == "raised" and finished.error is not None:
            self._end(finished.key, JobError(finished.error, finished.frames))
        elif finished.kind == "lost":
            self._end(finished.key, WorkerLostError(finished.message, None))
        elif finished.kind == "timeout":
            self._end(finished.key, JobTimeoutError(finished.message))
        else:
            self._end(finished.key, None)

    def _end(self, key: int, result: JobOutcome | BaseException | None) -> None:
        """Finish the future of ``key``: a result, an exception, or cancelled (``None``)."""
        with self._lock:
            future = self._futures.pop(key, None)
        if future is None or future.done():
            return
        if isinstance(result, JobOutcome):
            future.set_result(result)
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.cancel()

    def _fail_in_flight(self, reason: str) -> None:
        with self._lock:
            keys = list(self._futures)
        for key in keys:
            self._end(key, ExecutorBrokenError(reason))

    def _send(self, message: object) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def _shutdown(self, grace_seconds: float) -> bool:
        self._closed.set()
        self._restart_now.set()
        process = self._process
        sent = self._send(Close(grace_seconds))
        finished = True
        if process is not None:
            process.join(timeout=grace_seconds + 15.0 if sent else 0.0)
            if process.is_alive():
                finished = False
                process.terminate()
                process.join(timeout=10)
            if process.is_alive():
                process.kill()
        with self._lock:
            left = list(self._futures)
        finished = finished and not left
        for key in left:
            self._end(key, None)
        self._supervisor.join(timeout=10)
        return finished
