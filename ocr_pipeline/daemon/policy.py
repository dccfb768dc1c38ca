"""What happens to a claimed file next: pure decisions, no files, processes or clocks.

The daemon asks twice per job. Before starting it (:func:`before_start`): reuse an earlier
result of the same bytes (duplicate), set the file aside as poison because earlier tries died
with it (the daemon itself, or its worker, was killed while reading it), or start a job. After
the job ends (:func:`after_job`): done, failed, retried, poison, handed out again because the
executor broke (not the file's fault), or released back to the inbox because the daemon is
draining. ``attempts`` counts jobs started for the file, saved in its claim before each start.
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
    """Give the file back to the inbox (draining)."""


@dataclass(frozen=True)
class Decision:
    """An action and the claim's attempt count after it (to save when it changed)."""

    action: Action
    attempts: int


def before_start(attempts: int, max_attempts: int, has_result: bool) -> BeforeStart:
    """Decide before a job for a claimed file starts.

    Args:
        attempts: jobs already started for the file (a recovered claim keeps its count).
        max_attempts: ``daemon.max_attempts``.
        has_result: an earlier result of the same bytes exists.

    """
    if has_result:
        return BeforeStart.duplicate
    if attempts >= max_attempts:
        return BeforeStart.poison
    return BeforeStart.start


def undo_attempt(attempts: int) -> int:
    """The attempt count after taking back a try that was not the file's fault."""
    return max(attempts - 1, 0)


def after_job(end: JobEnd, attempts: int, max_attempts: int, draining: bool) -> Decision:
    """Decide what a finished job means for its file.

    Args:
        end: how the job ended.
        attempts: jobs started for the file, this one included.
        max_attempts: ``daemon.max_attempts``: tries whose worker died before the file is poison.
        draining: the daemon is stopping (SIGTERM): unfinished work goes back to the inbox.

    Returns:
        The action and the attempt count to keep. A try that did not finish through no fault
        of the file (executor broken, cancelled, or a worker lost while draining) is taken back.

    """
    if end is JobEnd.succeeded:
        return Decision(Action.done, attempts)
    if end in (JobEnd.raised, JobEnd.timed_out):
        return Decision(Action.fail, attempts)
    if end is JobEnd.worker_lost:
        if draining:
            return Decision(Action.release, undo_attempt(attempts))
        if attempts < max_attempts:
            return Decision(Action.retry, attempts)
        return Decision(Action.poison, attempts)
    if end is JobEnd.executor_broken:
        action = Action.release if draining else Action.requeue
        return Decision(action, undo_attempt(attempts))
    return Decision(Action.release, undo_attempt(attempts))  # cancelled


def poison_error(relative: str, attempts: int, exitcode: int | None) -> WorkerCrashedError:
    """The error of a file whose worker died on every try (``exitcode``: the last one's)."""
    return WorkerCrashedError(
        f"{relative}: the worker process died on each of {attempts} tries "
        f"(last exit code {exitcode}), so the file is set aside as a poison file; check the "
        "file and the daemon's memory limit, then drop it into the inbox again"
    )


def died_with_daemon_error(relative: str, attempts: int) -> WorkerCrashedError:
    """The error of a recovered file whose earlier tries all ended with the daemon dying."""
    return WorkerCrashedError(
        f"{relative}: the daemon or its worker died {attempts} times while reading this file, "
        "so it is set aside as a poison file; check the file and the memory limit, then drop "
        "it into the inbox again"
    )


def timeout_error(relative: str, timeout_seconds: float) -> JobTimeoutError:
    """The error of a file that ran past ``daemon.job_timeout`` (seconds)."""
    return JobTimeoutError(
        f"{relative}: OCR took longer than {timeout_seconds:g} s and was stopped; split the "
        "document or raise daemon.job_timeout, then drop it into the inbox again"
    )
