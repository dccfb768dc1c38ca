"""The Ray side of the cluster executor: the dispatcher process and the OCR actors it drives.

:class:`~ocr_pipeline.executors.cluster.RayExecutor` (in the daemon) starts
:func:`dispatch_main` in a child process of its own and talks to it over a pipe. Only that
child imports Ray and is a Ray driver. The reason is Ray's own: a driver that cannot reach the
cluster's GCS for ``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s) ends its process, and
that process must not be the daemon, which holds the claims, the terminal states and the
audit log. A lost dispatcher costs the jobs in flight (handed out again, not counted against
their files) and a reconnect.

The dispatcher:

* connects (``ray.address``: ``local`` starts a cluster inside the dispatcher, ``auto`` or
  ``HOST:PORT`` joins one) and starts ``ray.actors`` actors (0: the cluster's CPUs //
  ``ray.cpus_per_actor``), each reserving ``cpus_per_actor`` CPUs and holding one engine,
  loaded and warmed up once (:class:`OcrActor`);
* reads each job's file itself (it runs beside the daemon) and sends the bytes with the
  recipe, so worker nodes need no shared folder; at most ``ray.jobs_per_actor`` jobs wait on
  one actor (back-pressure: the daemon never submits more than :attr:`Ready.actors` x that);
* times the job at the head of each actor's queue: past ``daemon.job_timeout`` the actor is
  killed and replaced and the job ends as timed out;
* replaces an actor that dies (its process killed, its node lost): the job it was running ends
  as a lost worker (the daemon retries it, counted against the poison-file limit); the jobs
  queued behind it had not started and go to another actor, uncounted;
* on ``close``, starts nothing new, waits up to the grace period, then kills the actors.

Every message is one of the dataclasses below, pickled through a
``multiprocessing.connection.Connection``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ocr_pipeline.executors.base import JobOutcome, JobRecipe, remote_frames
from ocr_pipeline.executors.local import warm_up_worker
from ocr_pipeline.executors.worker import Worker
from ocr_pipeline.settings import RaySettings, Settings

GCS_PROBES = 3
"""Tries to reach the cluster's GCS before an actor's death is blamed on its job."""
GCS_PROBE_SECONDS = 0.5
"""Timeout of one try, and the pause between tries, seconds."""
REMOTE_FRAMES = 6
"""Traceback lines of an actor's error kept in the error report."""
WAIT_SECONDS = 0.05
"""Longest the dispatcher waits on Ray before it reads the daemon's pipe again, seconds."""


# ----------------------------------------------------------------- messages, daemon -> dispatcher


@dataclass(frozen=True)
class Submit:
    """Run ``recipe``; the answer is a :class:`Finished` with the same ``key``."""

    key: int
    recipe: JobRecipe


@dataclass(frozen=True)
class UseSettings:
    """Start replacement actors with these settings (jobs carry their own)."""

    settings: Settings
    generation: int


@dataclass(frozen=True)
class Close:
    """Start nothing more, wait up to ``grace_seconds`` for running jobs, then stop."""

    grace_seconds: float


# ----------------------------------------------------------------- messages, dispatcher -> daemon


@dataclass(frozen=True)
class Ready:
    """The actors that take jobs now (sent at start and whenever the pool changes)."""

    actors: int
    pids: list[int]
    """Process ids of the ready actors (on their own nodes)."""
    nodes: int
    """Nodes those actors run on."""


@dataclass(frozen=True)
class Finished:
    """One job's end.

    ``kind`` is ``done`` (``outcome`` set), ``raised`` (``error`` and ``frames`` set),
    ``lost`` (its actor died: ``message``), ``timeout`` or ``cancelled`` (closed first).
    """

    key: int
    kind: str
    outcome: JobOutcome | None = None
    error: BaseException | None = None
    frames: list[str] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class Fatal:
    """The dispatcher cannot go on (cannot connect, the cluster is gone); it exits next."""

    message: str


class ClusterLostError(Exception):
    """The cluster's GCS cannot be reached: the dispatcher stops and the daemon reconnects."""


@dataclass(frozen=True)
class Retried:
    """A job went back to the queue untouched: its actor died before it started."""

    key: int
    message: str


# ----------------------------------------------------------------- the actor


class OcrActor:
    """One engine on a Ray node: models loaded and warmed up once, then one job at a time.

    Made a Ray actor by :func:`dispatch_main` (``ray.remote(num_cpus=...)``); the class stays
    plain so it can be tested without Ray.

    Args:
        settings: the settings the actor loads first (threads already set per actor).
        generation: their generation; a job of another one makes it reload.

    A load or warm-up that fails is ignored here: the first job reports it with its file name.
    """

    def __init__(self, settings: Settings, generation: int) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="ocr-pipeline-actor-"))
        self._worker = Worker()
        try:
            self._worker.load(settings, generation)
            warm_up_worker(self._worker, settings, generation, self._folder)
        except Exception:  # reported again by the first job, with its file name
            self._worker.forget()

    def ready(self) -> tuple[int, str]:
        """The actor's process id and host name (answered once it is constructed)."""
        return os.getpid(), socket.gethostname()

    def run(self, name: str, data: bytes, recipe: JobRecipe) -> JobOutcome:
        """OCR ``data`` (the claimed file's bytes, saved here as ``name``) as ``recipe`` says.

        Raises:
            InputError, ModelError, OutputRenderError, ConfigError: as
                :meth:`~ocr_pipeline.executors.worker.Worker.run` raises them.

        """
        path = self._folder / Path(name).name
        path.write_bytes(data)
        try:
            return self._worker.run(replace(recipe, job=replace(recipe.job, path=path)))
        finally:
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------- the dispatcher


@dataclass
class _Slot:
    """One actor as the dispatcher tracks it."""

    handle: Any
    """The Ray actor handle."""
    ready_ref: Any | None
    """``ready()``'s object ref until it answers, then ``None``."""
    pid: int = 0
    node: str = ""
    queue: deque[tuple[int, Any]] = field(default_factory=deque)
    """(job key, object ref) in the order the actor runs them."""
    head_since: float = 0.0
    """Monotonic time the job at the head of ``queue`` became the running one."""


class _Dispatcher:
    """The actor pool and its jobs, inside the dispatcher process."""

    def __init__(
        self, ray: Any, conn: Connection, settings: Settings, generation: int, size: int
    ) -> None:
        self.ray = ray
        self.conn = conn
        self.settings, self.generation = settings, generation
        self.slots: list[_Slot] = []
        self.waiting: deque[Submit] = deque()
        self.recipes: dict[int, Submit] = {}
        self.closing_until: float | None = None
        self.announced: tuple[int, ...] | None = None
        options = settings.ray
        self.actor_class = ray.remote(num_cpus=options.cpus_per_actor, max_restarts=0)(OcrActor)
        for _ in range(size):
            self._add_actor()

    # ------------------------------------------------------------- actors

    def _add_actor(self) -> None:
        handle = self.actor_class.remote(actor_settings(self.settings), self.generation)
        self.slots.append(_Slot(handle=handle, ready_ref=handle.ready.remote()))

    def _check_cluster(self, why: str) -> None:
        """Raise :class:`ClusterLostError` when the GCS is unreachable on every probe.

        An actor that dies with the whole cluster (its head stopped, the network gone) is not
        its job's fault: the dispatcher then ends, so the daemon hands the jobs out again
        uncounted, instead of counting a try against each.
        """
        host, _, port = str(self.ray.get_runtime_context().gcs_address).rpartition(":")
        for attempt in range(GCS_PROBES):
            try:
                with socket.create_connection((host, int(port)), timeout=GCS_PROBE_SECONDS):
                    if attempt == GCS_PROBES - 1:
                        return
            except OSError as exc:
                gone = f"{why}, and the GCS at {host}:{port} is gone: {exc}"
                raise ClusterLostError(gone) from exc
            time.sleep(GCS_PROBE_SECONDS)

    def _retire(self, slot: _Slot, why: str, head_kind: str) -> None:
        """Kill ``slot``'s actor, end its running job as ``head_kind``, requeue the rest."""
        if head_kind == "lost":
            self._check_cluster(why)
        with contextlib.suppress(Exception):
            self.ray.kill(slot.handle, no_restart=True)
        self.slots.remove(slot)
        for position, (key, _ref) in enumerate(slot.queue):
            if position == 0 and slot.ready_ref is None:
                self._finish(Finished(key=key, kind=head_kind, message=why))
            else:
                submit = self.recipes.get(key)
                if submit is not None:
                    self.waiting.appendleft(submit)
                    self.conn.send(Retried(key=key, message=why))
        slot.queue.clear()
        if self.closing_until is None:
            self._add_actor()
        self._announce()

    def _announce(self) -> None:
        """Tell the daemon which actors take jobs, when that changed."""
        ready = [slot for slot in self.slots if slot.ready_ref is None]
        pids = tuple(sorted(slot.pid for slot in ready))
        if pids != self.announced:
            self.announced = pids
            nodes = len({slot.node for slot in ready})
            self.conn.send(Ready(actors=len(ready), pids=list(pids), nodes=nodes))

    # ------------------------------------------------------------- jobs

    def _finish(self, finished: Finished) -> None:
        self.recipes.pop(finished.key, None)
        self.conn.send(finished)

    def _assign(self) -> None:
        """Give waiting jobs to ready actors with room, shortest queue first."""
        limit = self.settings.ray.jobs_per_actor
        while self.waiting:
            ready = [s for s in self.slots if s.ready_ref is None and len(s.queue) < limit]
            if not ready:
                return
            slot = min(ready, key=lambda s: len(s.queue))
            submit = self.waiting.popleft()
            job = submit.recipe.job
            try:
                data = job.path.read_bytes()
            except OSError as exc:
                self._finish(Finished(key=submit.key, kind="raised", error=exc))
                continue
            ref = slot.handle.run.remote(job.path.name, data, submit.recipe)
            if not slot.queue:
                slot.head_since = time.monotonic()
            slot.queue.append((submit.key, ref))

    def _settle(self, ref: Any) -> None:
        """Handle one finished object ref: an actor's ``ready()`` or a job's ``run()``."""
        exceptions = self.ray.exceptions
        for slot in self.slots:
            if slot.ready_ref is ref:
                try:
                    slot.pid, slot.node = self.ray.get(ref)
                except exceptions.RayActorError as exc:
                    self._retire(slot, f"actor could not start: {exc}", "lost")
                    return
                slot.ready_ref = None
                self._announce()
                return
            if slot.queue and slot.queue[0][1] is ref:
                key, _ = slot.queue.popleft()
                slot.head_since = time.monotonic()
                try:
                    outcome = self.ray.get(ref)
                except exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    frames = remote_frames(str(getattr(exc, "traceback_str", "")), REMOTE_FRAMES)
                    self._finish(Finished(key=key, kind="raised", error=cause, frames=frames))
                    return
                except exceptions.RayActorError as exc:
                    slot.queue.appendleft((key, ref))
                    reason = f"actor pid {slot.pid} on {slot.node or 'its node'} died: {exc}"
                    self._retire(slot, _first_line(reason), "lost")
                    return
                self._finish(Finished(key=key, kind="done", outcome=outcome))
                return
        # a ref of a retired actor (its jobs were already handled): nothing to do

    def _check_timeouts(self) -> None:
        timeout = self.settings.daemon.job_timeout
        now = time.monotonic()
        for slot in list(self.slots):
            if slot.queue and now - slot.head_since > timeout:
                self._retire(slot, f"the job ran past {timeout:g} s", "timeout")

    def _pending_refs(self) -> list[Any]:
        refs = [s.ready_ref for s in self.slots if s.ready_ref is not None]
        refs.extend(s.queue[0][1] for s in self.slots if s.queue)
        return refs

    # ------------------------------------------------------------- the loop

    def _read_pipe(self) -> bool:
        """Handle every message the daemon sent; False once the daemon is gone."""
        try:
            while self.conn.poll(0 if self._pending_refs() else WAIT_SECONDS):
                message = self.conn.recv()
                if isinstance(message, Submit):
                    if self.closing_until is not None:
                        self.conn.send(Finished(key=message.key, kind="cancelled"))
                        continue
                    self.recipes[message.key] = message
                    self.waiting.append(message)
                elif isinstance(message, UseSettings):
                    self.settings, self.generation = message.settings, message.generation
                elif isinstance(message, Close):
                    self._close(message.grace_seconds)
        except (EOFError, OSError):
            return False
        return True

    def _close(self, grace_seconds: float) -> None:
        self.closing_until = time.monotonic() + grace_seconds
        while self.waiting:
            self._finish(Finished(key=self.waiting.popleft().key, kind="cancelled"))

    def run(self) -> None:
        """Dispatch until the daemon closes the pipe or asks to close and the jobs end."""
        self._announce()
        while self._read_pipe():
            self._assign()
            refs = self._pending_refs()
            if refs:
                done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=WAIT_SECONDS)
                for ref in done:
                    self._settle(ref)
            self._check_timeouts()
            if self.closing_until is not None:
                busy = any(slot.queue for slot in self.slots)
                if not busy or time.monotonic() > self.closing_until:
                    break
        for slot in self.slots:
            for key, _ref in slot.queue:
                self._finish(Finished(key=key, kind="cancelled"))
            with contextlib.suppress(Exception):
                self.ray.kill(slot.handle, no_restart=True)


def actor_settings(settings: Settings) -> Settings:
    """``settings`` as an actor runs them: ``runtime.intra_op_threads`` 0 becomes its CPUs."""
    if settings.runtime.intra_op_threads:
        return settings
    runtime = settings.runtime.model_copy(update={"intra_op_threads": settings.ray.cpus_per_actor})
    return settings.model_copy(update={"runtime": runtime})


def pool_size(options: RaySettings, cluster_cpus: float) -> int:
    """Actors to start: ``ray.actors``, else the cluster's CPUs // ``cpus_per_actor`` (>= 1)."""
    if options.actors:
        return options.actors
    return max(1, int(cluster_cpus) // options.cpus_per_actor)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def dispatch_main(conn: Connection, settings: Settings, generation: int) -> None:
    """The dispatcher process: connect to Ray, run the actor pool, answer over ``conn``.

    Sends :class:`Fatal` and returns when Ray cannot be reached or fails; the daemon starts
    another dispatcher after a back-off pause.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the daemon, which drains us
    try:
        import ray
    except ImportError:
        conn.send(Fatal("Ray is not installed; pip install 'ocr-pipeline[ray]'"))
        return
    address = settings.ray.address
    try:
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except Exception as exc:
        conn.send(Fatal(f"cannot connect to the Ray cluster at {address!r}: {exc}"))
        return
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        dispatcher = _Dispatcher(ray, conn, settings, generation, pool_size(settings.ray, cpus))
        dispatcher.run()
    except (EOFError, OSError):
        pass  # the daemon is gone
    except ClusterLostError as exc:
        with contextlib.suppress(Exception):
            conn.send(Fatal(str(exc)))
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.send(Fatal(f"the Ray cluster at {address!r} failed: {_first_line(str(exc))}"))
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
