"""Daemon state kept in ``OUTBOX/.ocr-pipeline``: the results index and the heartbeat file.

The results index (``index.jsonl``, append-only, one ``{"sha256", "stem"}`` per line) maps an
input's content to the result it produced, so the same bytes dropped again reuse that result
instead of recomputing it, and a different file with a used name never overwrites it. It is a
cache: losing it costs recomputation, never correctness (a result's own ``source.sha256`` is
read back when the index does not know a name).

Names that are not valid UTF-8 (surrogate escapes from :func:`os.fsdecode`) are written in
display form with their original bytes beside them, base64 (``stem_bytes``, ``relative_bytes``),
so every file here is valid UTF-8 and every name is recovered exactly.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.folders import candidate_names, real_folder
from ocr_pipeline.names import byte_length, bytes_field, decode_name_bytes, display_name, printable
from ocr_pipeline.writers import WRITERS

INDEX_FILE = "index.jsonl"
KEPT_FILE_PREFIX = "kept-"


def _named_record(key: str, name: str, **fields: Any) -> str:
    """One JSON line, valid UTF-8: ``name`` in display form under ``key``.

    Its bytes go under ``<key>_bytes`` (base64) when it is not valid UTF-8.
    """
    record: dict[str, Any] = {**fields, key: display_name(name)}
    raw = bytes_field(name)
    if raw is not None:
        record[f"{key}_bytes"] = raw
    return json.dumps(record, ensure_ascii=False) + "\n"


def _read_name(record: dict[str, Any], key: str) -> str:
    """The name written by :func:`_named_record` (surrogate escapes restored).

    Raises:
        KeyError: no ``key``.
        ValueError: ``<key>_bytes`` is not base64.

    """
    raw = record.get(f"{key}_bytes")
    return decode_name_bytes(raw) if isinstance(raw, str) else str(record[key])


def _is_regular_file(path: Path) -> bool:
    """True when ``path`` is a regular file itself (a symlink is not followed)."""
    try:
        return S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


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
                    self._remember(str(record["sha256"]), _read_name(record, "stem"))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash: the entry is simply unknown

    def _remember(self, sha256: str, stem: str) -> None:
        self._by_sha[sha256] = stem
        self._by_stem[stem] = sha256

    def result_for(self, sha256: str) -> str | None:
        """Stem of an existing result of these bytes, or ``None`` (unknown or deleted since)."""
        stem = self._by_sha.get(sha256)
        if stem is None or not _is_regular_file(self.outbox / f"{stem}.json"):
            return None
        return stem

    def owner_of(self, stem: str) -> str | None:
        """sha256 of the input whose result is ``OUTBOX/<stem>.json``; ``None`` if no result."""
        json_path = self.outbox / f"{stem}.json"
        if not _is_regular_file(json_path):
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
        """Record a result: one appended line (``O_APPEND`` : writers' lines stay whole).

        A stem that is not valid UTF-8 is written in display form plus ``stem_bytes`` (base64).

        Raises:
            OSError: the index cannot be written.

        """
        if self._by_sha.get(sha256) == stem:
            return
        self._remember(sha256, stem)
        line = _named_record("stem", stem, sha256=sha256)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def stem_for(self, relative: Path, sha256: str, suffixes: Iterable[str] | None = None) -> str:
        """The result stem of an input: ``sub/scan`` for ``sub/scan.jpg``.

        If that name already holds the result of different bytes (another file of the same
        stem, or a changed file with a reused name), the stem gets the first 8 hex digits of the
        sha256 (``sub/scan.1a2b3c4d``, then ``sub/scan.1a2b3c4d-2``, ...), so neither result is
        overwritten. The same happens when an output name (``stem + suffix``) is taken by
        anything but a regular file (a folder ``scan.json/``, a symlink). A folder of the stem
        that exists as a file or a symlink is replaced by ``<folder>.1a2b3c4d`` (then ``-2``,
        ...), so no result is written through a symlink. Every output name fits 255 bytes: a
        longer stem is shortened with a hash of its full name
        (:func:`ocr_pipeline.names.fit_name`); the JSON keeps the full name.

        Args:
            relative: the input's path relative to the inbox.
            sha256: hex sha256 of the input.
            suffixes: the suffixes of the outputs to be written (``.json``, ``.txt``); default:
                those of every registered writer.

        Raises:
            OSError: an outbox folder cannot be read.

        """
        chosen = list(suffixes) if suffixes is not None else [w.suffix for w in WRITERS.values()]
        if ".json" not in chosen:
            chosen.append(".json")
        tag = sha256[:8]
        folder = self.outbox
        for part in relative.parts[:-1]:
            folder = real_folder(folder, part, tag, create=False)
        prefix = folder.relative_to(self.outbox).as_posix()
        reserve = max(byte_length(suffix) for suffix in chosen)
        for name in candidate_names(relative.stem, tag, reserve, keep_suffix=False):
            stem = name if prefix == "." else f"{prefix}/{name}"
            if any(self._blocked(folder / f"{name}{suffix}") for suffix in chosen):
                continue
            owner = self.owner_of(stem)
            if owner is None or owner == sha256:
                return stem
        raise AssertionError("unreachable: candidate_names is endless")  # pragma: no cover

    @staticmethod
    def _blocked(path: Path) -> bool:
        """True when ``path`` is held by anything but a regular file (a folder, a symlink)."""
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        return not S_ISREG(mode)


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
                    relative = _read_name(record, "relative")
                    self._entries[relative] = (record["size"], record["mtime_ns"])
                except (ValueError, KeyError, TypeError):
                    continue

    def add(self, relative: Path, stat: os.stat_result) -> None:
        """Remember a kept original as it is now.

        A path that is not valid UTF-8 is written in display form plus ``relative_bytes``.

        Raises:
            OSError: the ledger cannot be written.

        """
        key = relative.as_posix()
        self._entries[key] = (stat.st_size, stat.st_mtime_ns)
        line = _named_record("relative", key, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def matches(self, relative: Path, stat: os.stat_result) -> bool:
        """True when this file is a kept original, unchanged since."""
        return self._entries.get(relative.as_posix()) == (stat.st_size, stat.st_mtime_ns)


@dataclass
class Counters:
    """Jobs by outcome since the daemon started."""

    done: int = 0
    partial: int = 0
    failed: int = 0
    duplicate: int = 0
    retried: int = 0


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write the heartbeat atomically; ``updated`` (Unix seconds) is set here.

    Every string (file names in ``last_error``, the inbox path) is written in display form, so
    the file is valid UTF-8 whatever names it quotes.

    Raises:
        OSError: the file cannot be written.

    """
    status = printable({**status, "updated": time.time()})
    atomic_write_bytes(path, (json.dumps(status, indent=2, ensure_ascii=False) + "\n").encode())


def _unix_seconds(iso: object) -> float | None:
    """Unix seconds of an ISO 8601 time (``Z`` or an offset), ``None`` if it is not one."""
    try:
        return datetime.datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def check_health(path: Path, max_age_seconds: float) -> tuple[bool, str]:
    """Whether the daemon that writes ``path`` is alive.

    Returns:
        ``(healthy, reason)``: unhealthy when the file is missing or unreadable, older than
        ``max_age_seconds``, says the daemon has stopped, has had no live worker process
        for longer than ``max_age_seconds`` since it started, or reports files stuck (a result,
        move or audit record that keeps failing for want of space or access; the daemon
        retries them, but someone has to free the space or fix the permissions).

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
    if status.get("executor_trouble"):
        return False, (
            f"daemon pid {status.get('pid')} can start no job: {status['executor_trouble']}; "
            "the files stay claimed and it reconnects by itself"
        )
    started = _unix_seconds(status.get("started")) or updated
    if not status.get("workers_alive") and updated - started > max_age_seconds:
        return False, (
            f"daemon pid {status.get('pid')} has had no live worker process for a while; "
            "check its log (workers dying as they start: models, memory, permissions)"
        )
    silent = status.get("silent_workers") or []
    if silent:
        worst = max(silent, key=lambda worker: worker.get("seconds", 0))
        return False, (
            f"daemon pid {status.get('pid')}: worker pid {worst.get('pid')} has been silent for "
            f"{worst.get('seconds')} s (stopped or hung) while reading {worst.get('file')}; "
            "the daemon stops it at twice daemon.worker_silence_seconds and retries the file"
        )
    if status.get("held"):
        return False, (
            f"daemon pid {status.get('pid')} holds every file: {status['held']}; restore the "
            "models (ocr-pipeline models fetch) or the lexicons and it resumes by itself"
        )
    stuck = status.get("stuck") or 0
    if stuck:
        last = (status.get("last_error") or {}).get("error", "see the daemon's log")
        return False, (
            f"daemon pid {status.get('pid')} has {stuck} file(s) stuck in its work folder "
            f"(last error: {last}); free space or fix permissions, it retries them by itself"
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
