"""The folder contract: where inputs, claims, results, archived and failed files live.

Default layout, for ``INBOX`` and ``OUTBOX`` given on the command line::

    INBOX/                      scans are dropped here (sub-folders mirrored everywhere below)
    INBOX/.ocr-pipeline/work/I/ claimed files of daemon instance I (hidden: never an input)
    OUTBOX/<stem>.json, .txt    results
    OUTBOX/.ocr-pipeline/       daemon state: status-I.json heartbeat, results index
    ../archive/                 originals after success (policy ``archive``), beside INBOX
    ../failed/                  originals that failed, each with ``<name>.error.json``
    ../logs/audit.jsonl         the audit log

Every move here is a rename when source and target share a file system; otherwise the file is
copied, fsynced and only then removed, so a crash leaves a copy in at least one place.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ocr_pipeline.atomic import fsync_dir
from ocr_pipeline.errors import ConfigError
from ocr_pipeline.settings import Settings

IGNORED_PREFIXES = (".", "~$")
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", ".partial")
STATE_DIR_NAME = ".ocr-pipeline"


def is_ignored(name: str) -> bool:
    """Hidden and temporary names that are never inputs (``.x``, ``~$x``, ``*.part``, ...)."""
    return name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES)


def is_ignored_path(relative: Path) -> bool:
    """True when any part of an inbox-relative path is hidden or temporary."""
    return any(is_ignored(part) for part in relative.parts)


@dataclass(frozen=True)
class Folders:
    """Resolved, absolute folders of one daemon instance."""

    inbox: Path
    outbox: Path
    work: Path
    archive: Path
    failed: Path
    audit_log: Path
    state: Path
    """``OUTBOX/.ocr-pipeline``: status file and results index."""
    instance: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Folders:
        """Resolve every folder from the settings (defaults described in the module docstring)."""
        inbox = settings.inbox.resolve()
        outbox = settings.outbox.resolve()
        daemon = settings.daemon
        beside = inbox.parent
        return cls(
            inbox=inbox,
            outbox=outbox,
            work=(daemon.work_dir or inbox / STATE_DIR_NAME / "work" / daemon.instance).resolve(),
            archive=(daemon.archive_dir or beside / "archive").resolve(),
            failed=(daemon.failed_dir or beside / "failed").resolve(),
            audit_log=(daemon.audit_log or beside / "logs" / "audit.jsonl").resolve(),
            state=outbox / STATE_DIR_NAME,
            instance=daemon.instance,
        )

    @property
    def status_file(self) -> Path:
        """The heartbeat file of this instance."""
        name = "status.json" if self.instance == "default" else f"status-{self.instance}.json"
        return self.state / name

    def check(self) -> None:
        """Refuse layouts that cannot work, and create the folders that may be missing.

        Raises:
            ConfigError: the inbox is not a folder, the outbox, archive or failed folder lies
                inside the inbox (it would be read back as input), or a folder cannot be created.

        """
        if not self.inbox.is_dir():
            raise ConfigError(
                f"inbox {self.inbox} is not a folder; create it or pass another INBOX"
            )
        for label, folder in (
            ("outbox", self.outbox),
            ("archive", self.archive),
            ("failed", self.failed),
        ):
            if folder.is_relative_to(self.inbox):
                raise ConfigError(
                    f"{label} folder {folder} is inside inbox {self.inbox}; "
                    f"choose a {label} folder outside it"
                )
        for folder in (
            self.outbox,
            self.state,
            self.work,
            self.archive,
            self.failed,
            self.audit_log.parent,
        ):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create folder {folder}: {exc.strerror}; create it or fix permissions"
                ) from exc


def move_file(source: Path, target: Path) -> None:
    """Move a file, creating ``target``'s folder; never leaves it in neither place.

    A rename when both are on one file system; else copy to a hidden temporary name beside the
    target, fsync, rename into place, then remove the source.

    Raises:
        FileExistsError: ``target`` exists (callers choose a free name first).
        OSError: the move failed; the source is still in place.

    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(errno.EEXIST, "target exists", str(target))
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            shutil.copy2(source, temporary)
            # Read-only: copy2 keeps the source's mode, and scans are often dropped read-only
            # (0444), which a non-root user could not reopen for writing. fsync needs no write.
            with temporary.open("rb") as handle:
                os.fsync(handle.fileno())
            os.rename(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)
        source.unlink()
    fsync_dir(target.parent)


def file_size(path: Path | str | None) -> int | None:
    """Size of a file in bytes, or ``None`` when there is no path or it cannot be read."""
    if not path:
        return None
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


def free_name(target: Path, tag: str) -> Path:
    """``target`` if it does not exist, else ``name.<tag>.ext``, then ``name.<tag>-2.ext``, ...

    Used so an archived or failed file never replaces an earlier one with the same name.
    """
    if not target.exists():
        return target
    base, suffix = target.stem, target.suffix
    candidate = target.with_name(f"{base}.{tag}{suffix}")
    counter = 2
    while candidate.exists():
        candidate = target.with_name(f"{base}.{tag}-{counter}{suffix}")
        counter += 1
    return candidate
