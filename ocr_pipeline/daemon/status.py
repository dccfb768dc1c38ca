"""What the daemon has done and is doing: counters, the run summary, the last error, the heartbeat.

The heartbeat is ``OUTBOX/.ocr-pipeline/status-<instance>.json``, rewritten atomically every
``daemon.status_seconds``; ``ocr-pipeline health`` reads it. Counters also feed the Prometheus
metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from ocr_pipeline.audit import get_logger
from ocr_pipeline.folders import Folders
from ocr_pipeline.metrics import Metrics
from ocr_pipeline.progress import RunProgress
from ocr_pipeline.results import utc_now
from ocr_pipeline.state import Counters, process_rss_bytes, write_status

DaemonState = Literal["starting", "running", "draining", "stopped"]


@dataclass
class RunSummary:
    """What a daemon run did, by inbox-relative path."""

    done: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    partial: dict[str, str] = field(default_factory=dict)
    """Relative path -> which pages could not be read (their results were written)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Relative path -> error message."""
    stuck: dict[str, str] = field(default_factory=dict)
    """Relative path -> the error that kept it claimed when ``run`` gave up waiting (full or
    read-only disk); the file stays in the work folder for the next start."""


@dataclass(frozen=True)
class Activity:
    """What the loop holds right now, for the heartbeat."""

    queue_depth: int
    """Files waiting: settling candidates plus claims ready to start."""
    in_flight: int
    """Jobs running."""
    worker_pids: list[int]
    generation: int
    """Settings generation (SIGHUP reloads)."""
    rescans: int
    stuck: list[str] = field(default_factory=list)
    """Claims waiting to retry a failed step (full disk, permissions), inbox-relative."""
    observer: str | None = None
    """The observer watching the inbox (native, polling), ``None`` for ``run``."""
    held: str | None = None
    """Why no job starts (workers cannot load the models or lexicons), ``None``: running."""
    silent_workers: list[dict[str, Any]] = field(default_factory=list)
    """Workers with no heartbeat past ``daemon.worker_silence_seconds``: pid, seconds, file."""
    executor_trouble: str | None = None
    """Why the executor can start no job (a lost Ray cluster), ``None``: it can."""


class StatusBoard:
    """Counts outcomes, remembers the last error, writes the heartbeat and the metrics.

    Args:
        folders: the daemon's folders (the status file lives in the outbox's state folder).
        watch: ``watch`` (True) or ``run`` (False), as reported.
        metrics: the Prometheus endpoint (a no-op when its port is 0).
        progress: files finished, shown as ``run`` goes (``None``: not shown).

    """

    def __init__(
        self, folders: Folders, watch: bool, metrics: Metrics, progress: RunProgress | None = None
    ) -> None:
        self.folders = folders
        self.progress = progress
        """``run``'s progress bar or lines (``None`` for ``watch``)."""
        self.mode = "watch" if watch else "run"
        self.metrics = metrics
        self.counters = Counters()
        self.summary = RunSummary()
        self.last_error: dict[str, Any] | None = None
        self.started_at = utc_now()
        self.state: DaemonState = "starting"
        self.log = get_logger(__name__)

    def done(self, relative: str, timings_ms: dict[str, float]) -> None:
        """Count a file whose results were written."""
        self.counters.done += 1
        self.metrics.job("done", timings_ms)
        self.summary.done.append(relative)
        self._advance("done", relative)

    def partial(self, relative: str, message: str, timings_ms: dict[str, float]) -> None:
        """Count a document written with some pages missing (their errors in the result)."""
        self.counters.partial += 1
        self.metrics.job("partial", timings_ms)
        self.summary.partial[relative] = message
        self.error(relative, message)
        self._advance("partial", relative)

    def duplicate(self, relative: str) -> None:
        """Count a file whose bytes had a result already."""
        self.counters.duplicate += 1
        self.metrics.job("duplicate")
        self.summary.duplicates.append(relative)
        self._advance("duplicate", relative)

    def failed(self, relative: str, message: str) -> None:
        """Count a file moved to failed/."""
        self.counters.failed += 1
        self.metrics.job("failed")
        self.summary.failed[relative] = message
        self.error(relative, message)
        self._advance("failed", relative)

    def _advance(self, outcome: str, relative: str) -> None:
        if self.progress is not None:
            self.progress.advance(outcome, relative)

    def retried(self) -> None:
        """Count a file started again after its worker died."""
        self.counters.retried += 1
        self.metrics.job("retried")

    def error(self, file: str | None, message: str) -> None:
        """Remember the last error (``file``: inbox-relative, ``None`` for the daemon's own)."""
        self.last_error = {"time": utc_now(), "file": file, "error": message}

    def write(self, activity: Activity) -> None:
        """Rewrite the heartbeat and the gauges; a write error is logged, never raised."""
        pids = activity.worker_pids
        status = {
            "pid": os.getpid(),
            "instance": self.folders.instance,
            "mode": self.mode,
            "state": self.state,
            "started": self.started_at,
            "inbox": str(self.folders.inbox),
            "queue_depth": activity.queue_depth,
            "in_flight": activity.in_flight,
            "workers_alive": len(pids),
            "worker_pids": pids,
            "worker_rss_bytes": {str(pid): process_rss_bytes(pid) for pid in pids},
            "generation": activity.generation,
            "rescans": activity.rescans,
            "observer": activity.observer,
            "held": activity.held,
            "executor_trouble": activity.executor_trouble,
            "silent_workers": activity.silent_workers,
            "stuck": len(activity.stuck),
            "stuck_files": activity.stuck[:20],
            "jobs": {
                "done": self.counters.done,
                "partial": self.counters.partial,
                "failed": self.counters.failed,
                "duplicate": self.counters.duplicate,
                "retried": self.counters.retried,
            },
            "last_error": self.last_error,
        }
        self.metrics.gauges(activity.queue_depth, activity.in_flight, len(pids))
        try:
            write_status(self.folders.status_file, status)
        except OSError as exc:
            self.log.error(
                "cannot write status file", path=str(self.folders.status_file), error=str(exc)
            )
