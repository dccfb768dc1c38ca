r"""Logging: the operational log (structlog, stderr) and the audit log (JSON lines, a file).

The operational log goes to stderr, one event per line, as ``console`` (coloured key=value) or
``json``. Importing this module configures nothing; :func:`configure_logging` does.

File names that are not valid UTF-8 (surrogate escapes from :func:`os.fsdecode`) appear in both
logs in display form, undecodable bytes as ``\xNN`` (:func:`ocr_pipeline.names.display_name`):
no log line ever fails to encode.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal

import structlog

from ocr_pipeline.names import bytes_field, printable


def printable_event(
    logger: object, method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Processor for structlog: every string of the event in display form (valid UTF-8)."""
    result: structlog.types.EventDict = printable(event_dict)
    return result


class _InactiveEmitterFilter(logging.Filter):
    """Drops watchdog's "queue_events() called when the thread is inactive" (at shutdown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


def configure_logging(fmt: Literal["console", "json"] = "console", level: str = "info") -> None:
    r"""Route structlog events to stderr in the given format and minimum level.

    Names that are not valid UTF-8 are rendered in display form (``\xNN``), so a line never
    fails to encode, whatever the stream's error handler.
    """
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            printable_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # watchdog reports through the standard logging module, as an error, that its inotify
    # thread was stopped while an event was pending ("queue_events() called when the thread is
    # inactive"): harmless at shutdown, and a plain-text line in a JSON log. That one message is
    # dropped; watchdog's other errors still show.
    logging.getLogger("watchdog").setLevel(logging.ERROR)
    inotify_log = logging.getLogger("watchdog.observers.inotify")
    if not any(isinstance(f, _InactiveEmitterFilter) for f in inotify_log.filters):
        inotify_log.addFilter(_InactiveEmitterFilter())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to ``name`` (the module), for use after :func:`configure_logging`."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


AUDIT_EVENTS = (
    "claimed",
    "done",
    "partial",
    "failed",
    "duplicate",
    "retried",
    "released",
    "reloaded",
)
"""State changes recorded in the audit log (``released``: put back in the inbox on shutdown;
``partial``: results written for the pages that could be read, an error report for the rest)."""


class AuditLog:
    r"""The append-only audit log: one JSON object per line, one line per state change.

    Each record is written with a single ``write`` on an ``O_APPEND`` descriptor and fsynced, so
    lines of concurrent daemons do not interleave and a record survives a crash once written.
    Fields: ``time`` (RFC 3339 UTC), ``event`` (one of :data:`AUDIT_EVENTS`), ``instance``,
    ``pid`` (the daemon), then per event: ``source`` (inbox-relative path), ``sha256``,
    ``bytes``, ``pages``, ``lines``, ``mean_confidence``, ``min_confidence``, ``corrections``,
    ``models`` (name -> sha256), ``timings_ms``, ``worker_pid``, ``generation`` (settings
    generation of the worker: 0 at start, +1 per SIGHUP reload), ``attempt``, ``error_type``,
    ``message``, ``result`` (outbox-relative JSON path), ``target`` (where the original went).

    Every record is valid UTF-8: text that is not (file names in GBK, Shift-JIS or Latin-1
    bytes, as surrogate escapes) is written in display form, undecodable bytes as ``\xNN``,
    nested values included; a top-level field so changed (``source``, ``result``, ``target``)
    gets a sibling ``<field>_bytes`` holding its original bytes, base64.
    """

    def __init__(self, path: Path, instance: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.instance = instance
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, event: str, **fields: Any) -> None:
        """Append one record.

        Raises:
            ValueError: ``event`` is not one of :data:`AUDIT_EVENTS`.

        """
        if event not in AUDIT_EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        payload = {
            "time": now.replace("+00:00", "Z"),
            "event": event,
            "instance": self.instance,
            "pid": os.getpid(),
        }
        for key, value in fields.items():
            if value is None:
                continue
            payload[key] = value
            raw = bytes_field(value) if isinstance(value, str) else None
            if raw is not None:
                payload[f"{key}_bytes"] = raw
        line = json.dumps(printable(payload), ensure_ascii=False, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)

    def has_claim_record(self, claim: str, tail_bytes: int = 1 << 20) -> bool:
        """True when a record of claim folder ``claim`` is among the log's last ``tail_bytes``.

        Recovery asks before writing a pending terminal record again: a crash may have come
        after the record and before its claim folder was removed.
        """
        try:
            with self.path.open("rb") as handle:
                handle.seek(max(0, self.path.stat().st_size - tail_bytes))
                tail = handle.read()
        except OSError:
            return False
        return f'"claim":{json.dumps(claim)}'.encode() in tail

    def close(self) -> None:
        """Close the log file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every record of an audit log, in order (for tests and tools)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
