"""Jobs of the HTTP front, answered from the folders and the audit log.

A job is an upload that arrived in the inbox (:mod:`ocr_pipeline.web.uploads`). The front keeps
one small record per job in ``OUTBOX/.ocr-pipeline/jobs/<job id>.json`` (the client's name, the
name in the inbox, when it was submitted) and owns no other state: a job's status is read from
the daemon's own traces, so the front can restart, or run apart from the daemon on a shared
volume, and still answer.

* **done / failed**: the audit log's terminal record for the file (``done``, ``partial``,
  ``duplicate`` or ``failed``), which the daemon writes exactly once per file;
* **queued**: no terminal record, and the file is still in the inbox;
* **processing**: no terminal record, and the file has left the inbox (claimed).

The audit log is followed incrementally (:class:`AuditFollower`): each refresh reads only the
bytes appended since the last.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.daemon.terminal import REPORT_SUFFIX
from ocr_pipeline.folders import Folders

TERMINAL_EVENTS = frozenset({"done", "partial", "duplicate", "failed"})
"""Audit events that end a file's life in the daemon (one per file)."""
JOBS_DIR = "jobs"
"""Folder of the job records, inside ``OUTBOX/.ocr-pipeline``."""

READ_CHUNK_BYTES = 8 << 20
"""The audit log is read in pieces of at most this many bytes (a months-old log is large)."""
UPLOAD_SOURCE = re.compile(rb'"source":"[0-9a-f]{16}-')
"""An audit line about a file that arrived through the API (``<job id>-<name>``); the others
are skipped, so memory grows with API jobs only."""

Status = Literal["queued", "processing", "done", "failed"]


def utc_iso(seconds: float | None = None) -> str:
    """ISO 8601 UTC time with milliseconds and ``Z`` (now, or Unix ``seconds``)."""
    moment = (
        datetime.datetime.now(datetime.UTC)
        if seconds is None
        else datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    )
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JobRecord:
    """What the front remembers of a job (``OUTBOX/.ocr-pipeline/jobs/<job_id>.json``)."""

    job_id: str
    name: str
    """The client's file name as sent (display only; never a path)."""
    inbox_name: str
    """The file's name in the inbox, where the daemon's records know it."""
    bytes: int
    submitted_at: str
    """ISO 8601 UTC."""


@dataclass(frozen=True)
class JobView:
    """A job's state as the API shows it."""

    record: JobRecord
    status: Status
    terminal: dict[str, Any] | None
    """The audit log's terminal record, once there is one."""

    @property
    def outcome(self) -> str | None:
        """``done``, ``partial``, ``duplicate`` or ``failed`` once finished, else ``None``."""
        return str(self.terminal["event"]) if self.terminal else None

    @property
    def result_stem(self) -> str | None:
        """The outbox-relative stem of the job's results (``<stem>.json``), once written."""
        if not self.terminal or "result" not in self.terminal:
            return None
        return str(self.terminal["result"]).removesuffix(".json")


class AuditFollower:
    """The latest terminal record per source file, read incrementally from the audit log.

    Thread-safe. A log that shrank (replaced or truncated) is read again from the start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._terminal: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read what was appended since the last call (complete lines only)."""
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return
            if size < self._offset:
                self._offset, self._partial, self._terminal = 0, b"", {}
            if size == self._offset:
                return
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                while self._offset < size:
                    chunk = handle.read(min(READ_CHUNK_BYTES, size - self._offset))
                    if not chunk:
                        break
                    self._offset += len(chunk)
                    *lines, self._partial = (self._partial + chunk).split(b"\n")
                    for line in lines:
                        self._take(line)

    def _take(self, line: bytes) -> None:
        if not UPLOAD_SOURCE.search(line):
            return  # not a file that came through the API: not kept
        try:
            record = json.loads(line)
        except ValueError:
            return
        if isinstance(record, dict) and record.get("event") in TERMINAL_EVENTS:
            self._terminal[str(record.get("source"))] = record

    def terminal(self, source: str) -> dict[str, Any] | None:
        """The last terminal record of inbox-relative ``source``, if any."""
        with self._lock:
            return self._terminal.get(source)


class JobBook:
    """Job records and job states of one daemon's folders.

    Args:
        folders: the daemon's folders (from the same settings as the daemon).

    """

    def __init__(self, folders: Folders) -> None:
        self.folders = folders
        self.records_dir = folders.state / JOBS_DIR
        self.audit = AuditFollower(folders.audit_log)

    def add(self, record: JobRecord) -> None:
        """Save a job's record (atomically).

        Raises:
            OSError: the outbox cannot be written.

        """
        self.records_dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(asdict(record), ensure_ascii=False).encode("utf-8")
        atomic_write_bytes(self.records_dir / f"{record.job_id}.json", payload)

    def record(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id`` (a validated id), or ``None`` if there is none."""
        try:
            data = json.loads((self.records_dir / f"{job_id}.json").read_text(encoding="utf-8"))
            return JobRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def view(self, job_id: str) -> JobView | None:
        """The job's current state, or ``None`` for an unknown job."""
        record = self.record(job_id)
        if record is None:
            return None
        self.audit.refresh()
        terminal = self.audit.terminal(record.inbox_name)
        if terminal is not None:
            status: Status = "failed" if terminal.get("event") == "failed" else "done"
        elif os.path.lexists(self.folders.inbox / record.inbox_name):
            status = "queued"
        else:
            status = "processing"
        return JobView(record=record, status=status, terminal=terminal)

    def error_report(self, view: JobView) -> dict[str, Any] | None:
        """The error report of a failed or partial job, else ``None``.

        The report is ``failed/<name>.error.json`` (for a partial result, the one naming the
        pages that could not be read); the audit record's message when the report is gone.
        """
        if view.terminal is None or view.outcome not in ("failed", "partial"):
            return None
        for path in self._report_candidates(view):
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(report, dict):
                return report
        return {
            "error_type": view.terminal.get("error_type"),
            "message": view.terminal.get("message"),
        }

    def _report_candidates(self, view: JobView) -> list[Path]:
        terminal = view.terminal or {}
        candidates = []
        for key in ("report", "target"):
            value = terminal.get(key)
            if isinstance(value, str) and value:
                path = Path(value)
                if key == "target":
                    path = path.with_name(path.name + REPORT_SUFFIX)
                candidates.append(path)
        candidates.append(self.folders.failed / f"{view.record.inbox_name}{REPORT_SUFFIX}")
        return candidates

    def original(self, view: JobView) -> Path | None:
        """Where the job's original file is now (inbox, work folder, archive, failed), if kept."""
        terminal = view.terminal or {}
        target = terminal.get("target")
        candidates = [Path(target)] if isinstance(target, str) and target else []
        candidates.append(self.folders.inbox / view.record.inbox_name)
        if self.folders.work.is_dir():
            candidates.extend(self.folders.work.glob(f"*/{view.record.inbox_name}"))
        for path in candidates:
            if path.is_file() and not path.is_symlink():
                return path
        return None

    def count_waiting(self, limit: int) -> int:
        """Entries waiting at the inbox's top level and claims in its work folder.

        Counted up to ``limit + 1``: enough to tell whether the backlog is over ``limit``.
        """
        count = 0
        for folder in (self.folders.inbox, self.folders.work):
            try:
                entries = os.scandir(folder)
            except OSError:
                continue
            with entries:
                for entry in entries:
                    if not entry.name.startswith(".") and entry.name != ".lock":
                        count += 1
                        if count > limit:
                            return count
        return count
