"""What happens to a claimed file next: pure decisions, no files, processes or clocks.

The daemon asks twice per job. Before starting it (:func:`before_start`): reuse an earlier
result of the same bytes (duplicate), set the file aside as poison because its counted tries
are used up, or start a job. After the job ends (:func:`after_job`): done, failed, retried,
poison, handed out again because the executor broke (not the file's fault), or released back to
the inbox because the daemon is draining or the file was still being written, or held because
the worker could not load its models or lexicons (damaged after start: the daemon's fault).

``attempts`` counts only the tries that were the file's fault: its worker died (segfault,
``kill -9``, the OOM killer) or it ran past the timeout. A daemon killed mid-job, a broken pool,
a drain or a stop between pages take nothing from the file, so two ``kill -9`` of the daemon
never turn a good receipt into a poison file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ocr_pipeline.errors import JobTimeoutError, WorkerCrashedError


class BeforeStart(StrEnum):
    """The decision before a job starts."""

    start = "start"
    duplicate = "duplicate"
    """The same bytes already have a result: reuse it."""
    poison = "poison"
    """``max_attempts`` tries already started and none finished: the daemon died each time."""


class JobEnd(StrEnum):
    """How a job ended, as the executor reported it."""

    succeeded = "succeeded"
    raised = "raised"
    """The job's own error (corrupt file, missing model): the file fails, no retry."""
    changed = "changed"
    """The job's own error, but the file changed after its claim: its writer was not done."""
    stopped = "stopped"
    """Stopped between pages because the executor is closing."""
    setup_failed = "setup_failed"
    """The worker could not load its models or lexicons: the daemon's fault, not the file's."""
    worker_lost = "worker_lost"
    timed_out = "timed_out"
    executor_broken = "executor_broken"
    cancelled = "cancelled"


class Action(StrEnum):
    """What the daemon does with the claim."""

    done = "done"
    fail = "fail"
    retry = "retry"
    """Start the file again, first in line; the attempt counts."""
    poison = "poison"
    """Fail the file as poison: its worker died on every try."""
    requeue = "requeue"
    """Start the file again, first in line, after restarting the executor; not counted."""
    release = "release"
    """Give the file back to the inbox (draining, or its writer was still writing)."""
    hold = "hold"
    """Keep the file claimed, first in line, and start nothing until the models check again."""


@dataclass(frozen=True)
class Decision:
    """An action and the claim's attempt count after it (to save when it changed)."""

    action: Action
    attempts: int


def before_start(attempts: int, max_attempts: int, has_result: bool) -> BeforeStart:
    """Decide before a job for a claimed file starts.

    Args:
        attempts: counted tries so far (worker died or timed out; a recovered claim keeps its
            count).
        max_attempts: ``daemon.max_attempts``.
        has_result: an earlier result of the same bytes exists.

    """
    if has_result:
        return BeforeStart.duplicate
    if attempts >= max_attempts:
        return BeforeStart.poison
    return BeforeStart.start


def after_job(end: JobEnd, attempts: int, max_attempts: int, draining: bool) -> Decision:
    """Decide what a finished job means for its file.

    Args:
        end: how the job ended.
        attempts: counted tries before this job.
        max_attempts: ``daemon.max_attempts``: counted tries before the file is poison.
        draining: the daemon is stopping (SIGTERM): unfinished work goes back to the inbox.

    Returns:
        The action and the counted tries after this job: one more when the worker died (not
        while draining: the drain itself stops workers) or the job timed out.

    """
    if end is JobEnd.succeeded:
        return Decision(Action.done, attempts)
    if end is JobEnd.raised:
        return Decision(Action.fail, attempts)
    if end is JobEnd.setup_failed and not draining:
        return Decision(Action.hold, attempts)
    if end is JobEnd.timed_out:
        return Decision(Action.fail, attempts + 1)
    if end is JobEnd.worker_lost and not draining:
        counted = attempts + 1
        return Decision(Action.retry if counted < max_attempts else Action.poison, counted)
    if end is JobEnd.executor_broken and not draining:
        return Decision(Action.requeue, attempts)
    return Decision(Action.release, attempts)  # changed, stopped, cancelled, or draining


def poison_error(relative: str, attempts: int, exitcode: int | None) -> WorkerCrashedError:
    """The error of a file whose worker died on every try (``exitcode``: the last one's)."""
    last = f" (last exit code {exitcode})" if exitcode is not None else ""
    return WorkerCrashedError(
        f"{relative}: the worker process died or ran out of time on each of {attempts} "
        f"tries{last}, so the file is set aside as a poison file; check the "
        "file and the daemon's memory limit, then drop it into the inbox again"
    )


def timeout_error(relative: str, timeout_seconds: float) -> JobTimeoutError:
    """The error of a file that ran past ``daemon.job_timeout`` (seconds).

    Its worker kept its heartbeat all along (a silent one is stopped and the file retried long
    before), so it was busy: a very long document, or a native call that never returned.
    """
    return JobTimeoutError(
        f"{relative}: OCR took longer than {timeout_seconds:g} s and was stopped (its worker "
        "was busy all along: a very long document, or a page the engine could not finish); "
        "split the document or raise daemon.job_timeout, then drop it into the inbox again"
    )
