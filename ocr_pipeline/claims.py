"""Claiming inbox files by atomic rename into the daemon's work folder, and recovering claims.

A claim is ``WORK/<claim id>/<path relative to the inbox>`` plus ``WORK/<claim id>/.claim.json``
(attempts so far). ``rename(2)`` within one file system is atomic, so of two daemons racing for
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
from typing import IO

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
    """Jobs started for this file, including ones a dead worker never finished."""
    sha256: str | None = None
    """Hex sha256 of the file, once the daemon has hashed it (not persisted)."""

    @property
    def path(self) -> Path:
        """Where the claimed file is now."""
        return self.claim_dir / self.relative

    def save(self) -> None:
        """Persist the attempt count (written before each job starts)."""
        record = {"relative": self.relative.as_posix(), "attempts": self.attempts}
        temporary = self.claim_dir / f"{CLAIM_RECORD}.tmp"
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, self.claim_dir / CLAIM_RECORD)

    def discard(self) -> None:
        """Remove the claim folder once the file has left it (terminal state reached)."""
        shutil.rmtree(self.claim_dir, ignore_errors=True)


def claim_file(inbox: Path, relative: Path, work: Path) -> Claim | None:
    """Move ``inbox/relative`` into a new claim folder under ``work``.

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
    return Claim(claim_dir=claim_dir, relative=relative)


def release_claim(claim: Claim, inbox: Path) -> bool:
    """Put an unstarted claim back into the inbox (on shutdown) so any daemon can take it.

    Returns:
        False when a new file took the name meanwhile; the claim then stays in the work folder
        and is recovered by this instance's next start.

    """
    target = inbox / claim.relative
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(claim.path, target)
    claim.discard()
    return True


def recover_claims(work: Path) -> list[Claim]:
    """Claims left by an earlier run of this instance (crash, kill, shutdown), oldest first.

    Claim folders holding no file (the crash came after the terminal move) are removed.
    """
    claims: list[Claim] = []
    if not work.is_dir():
        return claims
    for claim_dir in sorted(p for p in work.iterdir() if p.is_dir()):
        record = _read_record(claim_dir)
        files = [p for p in claim_dir.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if not files:
            shutil.rmtree(claim_dir, ignore_errors=True)
            continue
        for path in files:
            relative = path.relative_to(claim_dir)
            attempts = record.get("attempts", 0)
            if record.get("relative") != relative.as_posix() or not isinstance(attempts, int):
                attempts = 0
            claims.append(Claim(claim_dir=claim_dir, relative=relative, attempts=attempts))
    return claims


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
