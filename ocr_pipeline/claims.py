"""Claiming inbox files by atomic rename into the daemon's work folder, and recovering claims.

A claim is ``WORK/<claim id>/<path relative to the inbox>`` plus ``WORK/<claim id>/.claim.json``
(tries so far, and the terminal state being brought about, if any).
``rename(2)`` within one file system is atomic, so of two daemons racing for
one file exactly one wins; the other sees it vanish. A file stays in the work folder until it
reaches a terminal state, so after a crash or ``kill -9`` the next start finds it and requeues
it (:func:`recover_claims`): at-least-once processing, made idempotent by the results index.

The work folder is locked (``fcntl.flock``) by one daemon at a time: two daemons on one inbox
need two instance names, hence two work folders.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ocr_pipeline.atomic import fsync_dir
from ocr_pipeline.errors import ConfigError

CLAIM_RECORD = ".claim.json"
LOCK_FILE = ".lock"


@dataclass
class Claim:
    """One claimed input file."""

    claim_dir: Path
    """``WORK/<claim id>``."""
    relative: Path
    """Path relative to the inbox (and to ``claim_dir``)."""
    attempts: int = 0
    """Tries that ended with the file's worker dying or timing out: the tries that count
    towards ``daemon.max_attempts``. A daemon crash or a broken pool is not the file's fault."""
    started: int = 0
    """Jobs started for the file, every kind of end included (the audit log's ``attempt``)."""
    sha256: str | None = None
    """Hex sha256 of the file, once the daemon has hashed it (not persisted)."""
    claimed: tuple[int, int] | None = None
    """``(size in bytes, mtime in ns)`` of the file as claimed (not persisted): a change
    afterwards means its writer was still writing."""
    pending: dict[str, Any] | None = None
    """A terminal state being brought about: ``{"event", "fields", "target"}`` (see
    :meth:`intend`), persisted before the original moves so a crash cannot lose its record."""

    @property
    def path(self) -> Path:
        """Where the claimed file is now."""
        return self.claim_dir / self.relative

    def save(self) -> None:
        """Persist the counts and any pending terminal state (atomically: write, rename)."""
        record: dict[str, Any] = {
            "relative": self.relative.as_posix(),
            "attempts": self.attempts,
            "started": self.started,
        }
        if self.pending is not None:
            record["pending"] = self.pending
        self.claim_dir.mkdir(parents=True, exist_ok=True)  # gone if the inbox was deleted
        temporary = self.claim_dir / f"{CLAIM_RECORD}.tmp"
        # ensure_ascii: a name that is not valid UTF-8 (surrogate escapes) is kept as \udcXX.
        temporary.write_text(json.dumps(record, ensure_ascii=True), encoding="ascii")
        os.replace(temporary, self.claim_dir / CLAIM_RECORD)

    def intend(self, event: str, fields: dict[str, Any], target: str | None) -> None:
        """Persist the terminal state's audit record before the original moves.

        ``target`` is where the original goes (``None``: deleted). Recovery completes it. The
        record carries ``claim`` (this claim folder's name), so a recovery after a crash
        between writing the record and removing the claim finds it already written.
        """
        fields = {**fields, "claim": self.claim_dir.name}
        self.pending = {"event": event, "fields": fields, "target": target}
        self.save()

    def present(self) -> bool:
        """True while the claimed file (or symlink) is still in the claim folder."""
        try:
            self.path.lstat()
        except FileNotFoundError:
            return False
        return True

    def changed_since_claim(self) -> bool:
        """True when the file's size or mtime differ from when it was claimed."""
        if self.claimed is None:
            return False
        try:
            stat = self.path.lstat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) != self.claimed

    def discard(self) -> None:
        """Remove the claim folder once the file has left it (terminal state reached)."""
        shutil.rmtree(self.claim_dir, ignore_errors=True)


def claim_file(inbox: Path, relative: Path, work: Path) -> Claim | None:
    """Move ``inbox/relative`` into a new claim folder under ``work``.

    A symlink is moved as a link (``rename(2)`` never follows it).

    Returns:
        The claim, or ``None`` when the file is gone (another daemon claimed it, or the user
        removed it).

    Raises:
        OSError: the rename failed for another reason (permissions, different file system:
            the work folder must be on the inbox's volume).

    """
    claim_dir = work / f"{time.time_ns():x}-{os.getpid()}"
    target = claim_dir / relative
    target.parent.mkdir(parents=True)
    try:
        os.rename(inbox / relative, target)
    except FileNotFoundError:
        shutil.rmtree(claim_dir, ignore_errors=True)
        return None
    except OSError:
        shutil.rmtree(claim_dir, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    stat = target.lstat()
    return Claim(claim_dir=claim_dir, relative=relative, claimed=(stat.st_size, stat.st_mtime_ns))


def release_claim(claim: Claim, inbox: Path) -> bool:
    """Put an unstarted claim back into the inbox (on shutdown) so any daemon can take it.

    Returns:
        False when a new file took the name meanwhile; the claim then stays in the work folder
        and is recovered by this instance's next start.

    """
    target = inbox / claim.relative
    if os.path.lexists(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(claim.path, target)
    claim.discard()
    return True


def recover_claims(work: Path) -> list[Claim]:
    """Claims left by an earlier run of this instance (crash, kill, shutdown), oldest first.

    Entries are found without following links: a claimed symlink (dangling or not) is a claim
    like a file. A claim with a pending terminal state is returned even when its file already
    left (the crash came between the move and the audit record): the caller completes it.
    Claim folders holding neither a file nor a pending state are removed.
    """
    claims: list[Claim] = []
    if not work.is_dir():
        return claims
    for claim_dir in sorted(p for p in work.iterdir() if p.is_dir() and not p.is_symlink()):
        record = _read_record(claim_dir)
        pending = record.get("pending")
        pending = pending if isinstance(pending, dict) else None
        attempts = _count(record, "attempts")
        started = _count(record, "started")
        entries = list(_claimed_entries(claim_dir))
        if not entries and pending is not None and isinstance(record.get("relative"), str):
            relative = Path(str(record["relative"]))
            claims.append(Claim(claim_dir, relative, attempts, started, pending=pending))
            continue
        if not entries:
            shutil.rmtree(claim_dir, ignore_errors=True)
            continue
        for path in entries:
            relative = path.relative_to(claim_dir)
            if record.get("relative") != relative.as_posix():
                claims.append(Claim(claim_dir=claim_dir, relative=relative))
            else:
                claims.append(Claim(claim_dir, relative, attempts, started, pending=pending))
    return claims


def _claimed_entries(claim_dir: Path) -> list[Path]:
    """Every non-folder entry under ``claim_dir``, symlinks included and never followed.

    Hidden names (the claim record) are left out.
    """
    found: list[Path] = []
    for folder, dirs, files in os.walk(claim_dir):
        base = Path(folder)
        linked = [d for d in dirs if (base / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in linked]
        found.extend(base / name for name in [*files, *linked] if not name.startswith("."))
    return sorted(found)


def _count(record: dict[str, object], key: str) -> int:
    value = record.get(key, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def _read_record(claim_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((claim_dir / CLAIM_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class WorkLock:
    """An exclusive ``flock`` on ``WORK/.lock`` held for the daemon's lifetime.

    Raises:
        ConfigError: another live process holds the lock (message names its pid and the fix).

    """

    def __init__(self, work: Path) -> None:
        self.path = work / LOCK_FILE
        work.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] | None = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown"
            self._handle.close()
            self._handle = None
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"work folder {work} is in use by another daemon (pid {holder}); stop it, or "
                    "give this daemon its own name with OCR_PIPELINE_DAEMON__INSTANCE"
                ) from exc
            raise
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()

    def release(self) -> None:
        """Drop the lock (also dropped by the kernel when the process dies)."""
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
