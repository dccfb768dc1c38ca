"""Daemon state kept in ``OUTBOX/.ocr-pipeline``: the results index and the heartbeat file.

The results index (``index.jsonl``, append-only, one ``{"sha256", "stem"}`` per line) maps an
input's content to the result it produced, so the same bytes dropped again reuse that result
instead of recomputing it, and a different file with a used name never overwrites it. It is a
cache: losing it costs recomputation, never correctness (a result's own ``source.sha256`` is
read back when the index does not know a name).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocr_pipeline.atomic import atomic_write_bytes

INDEX_FILE = "index.jsonl"
KEPT_FILE_PREFIX = "kept-"


class ResultsIndex:
    """sha256 of an input -> stem of its result (``sub/scan`` for ``OUTBOX/sub/scan.json``)."""

    def __init__(self, outbox: Path, state: Path) -> None:
        self.outbox = outbox
        self.path = state / INDEX_FILE
        self._by_sha: dict[str, str] = {}
        self._by_stem: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    self._remember(str(record["sha256"]), str(record["stem"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash: the entry is simply unknown

    def _remember(self, sha256: str, stem: str) -> None:
        self._by_sha[sha256] = stem
        self._by_stem[stem] = sha256

    def result_for(self, sha256: str) -> str | None:
        """Stem of an existing result of these bytes, or ``None`` (unknown or deleted since)."""
        stem = self._by_sha.get(sha256)
        if stem is None or not (self.outbox / f"{stem}.json").is_file():
            return None
        return stem

    def owner_of(self, stem: str) -> str | None:
        """sha256 of the input whose result is ``OUTBOX/<stem>.json``; ``None`` if no result."""
        json_path = self.outbox / f"{stem}.json"
        if not json_path.is_file():
            return None
        known = self._by_stem.get(stem)
        if known is not None:
            return known
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
            return str(data["source"]["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return ""  # unreadable: treat as someone else's

    def add(self, sha256: str, stem: str) -> None:
        """Record a result: one appended line (``O_APPEND`` : writers' lines stay whole)."""
        if self._by_sha.get(sha256) == stem:
            return
        self._remember(sha256, stem)
        line = json.dumps({"sha256": sha256, "stem": stem}, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def stem_for(self, relative: Path, sha256: str) -> str:
        """The result stem of an input: ``sub/scan`` for ``sub/scan.jpg``.

        If that name already holds the result of different bytes (another file of the same
        stem, or a changed file with a reused name), the stem gets the first 8 hex digits of the
        sha256 (``sub/scan.1a2b3c4d``), so neither result is overwritten.
        """
        stem = relative.with_suffix("").as_posix()
        owner = self.owner_of(stem)
        if owner is None or owner == sha256:
            return stem
        return f"{stem}.{sha256[:8]}"


class KeptLedger:
    """Originals left in the inbox after success (policy ``keep``), so they are not redone.

    A file is skipped while its size and mtime are those recorded; a changed file is new work.
    Stored as JSON lines ``OUTBOX/.ocr-pipeline/kept-<instance>.jsonl``.
    """

    def __init__(self, state: Path, instance: str) -> None:
        self.path = state / f"{KEPT_FILE_PREFIX}{instance}.jsonl"
        self._entries: dict[str, tuple[int, int]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    self._entries[record["relative"]] = (record["size"], record["mtime_ns"])
                except (ValueError, KeyError, TypeError):
                    continue

    def add(self, relative: Path, stat: os.stat_result) -> None:
        """Remember a kept original as it is now."""
        key = relative.as_posix()
        self._entries[key] = (stat.st_size, stat.st_mtime_ns)
        record = {"relative": key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def matches(self, relative: Path, stat: os.stat_result) -> bool:
        """True when this file is a kept original, unchanged since."""
        return self._entries.get(relative.as_posix()) == (stat.st_size, stat.st_mtime_ns)


@dataclass
class Counters:
    """Jobs by outcome since the daemon started."""

    done: int = 0
    failed: int = 0
    duplicate: int = 0
    retried: int = 0


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write the heartbeat atomically; ``updated`` (Unix seconds) is set here."""
    status = {**status, "updated": time.time()}
    atomic_write_bytes(path, (json.dumps(status, indent=2, ensure_ascii=False) + "\n").encode())


def check_health(path: Path, max_age_seconds: float) -> tuple[bool, str]:
    """Whether the daemon that writes ``path`` is alive.

    Returns:
        ``(healthy, reason)``: unhealthy when the file is missing or unreadable, older than
        ``max_age_seconds``, or says the daemon has stopped.

    """
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        updated = float(status["updated"])
    except (OSError, ValueError, KeyError, TypeError):
        return False, f"no readable status file at {path}: is `ocr-pipeline watch` running?"
    age = time.time() - updated
    if status.get("state") == "stopped":
        return False, f"daemon pid {status.get('pid')} stopped {age:.0f} s ago"
    if age > max_age_seconds:
        return False, (
            f"status file {path} is {age:.0f} s old (limit {max_age_seconds:.0f} s): "
            f"daemon pid {status.get('pid')} is hung or dead; check its log and restart it"
        )
    return True, (
        f"ok: pid {status.get('pid')}, {status.get('workers_alive')} workers, "
        f"queue {status.get('queue_depth')}, done {status.get('jobs', {}).get('done')}"
    )


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of a process from ``/proc/<pid>/status`` (Linux), bytes."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
