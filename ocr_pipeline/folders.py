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
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ocr_pipeline.atomic import fsync_dir, temporary_name
from ocr_pipeline.errors import ConfigError
from ocr_pipeline.names import fit_name
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

    def written(self) -> list[tuple[str, Path]]:
        """Every folder the daemon writes to, with its setting's name (for messages)."""
        return [
            ("outbox", self.outbox),
            ("daemon.archive_dir", self.archive),
            ("daemon.failed_dir", self.failed),
            ("daemon.work_dir", self.work),
            ("daemon.audit_log's folder", self.audit_log.parent),
        ]

    def check(self) -> None:
        """Refuse layouts that cannot work, and create the folders that may be missing.

        A folder the daemon writes to must not lie inside the inbox (its files would be read
        back as input: results, originals, its own audit log, its own claims), except a work
        folder under a hidden name (the default ``INBOX/.ocr-pipeline/work/``, never scanned);
        and the inbox must not lie inside any of them (an inbox inside the outbox or the
        archive would take in what the daemon writes there).

        Raises:
            ConfigError: the inbox is not a folder, a layout above, or a folder cannot be
                created (the message names the folder, its setting and the fix).

        """
        if not self.inbox.is_dir():
            raise ConfigError(
                f"inbox {self.inbox} is not a folder; create it or pass another INBOX"
            )
        for label, folder in self.written():
            if folder.is_relative_to(self.inbox):
                hidden = is_ignored_path(folder.relative_to(self.inbox))
                if not (label == "daemon.work_dir" and hidden):
                    raise ConfigError(
                        f"{label} {folder} is inside the inbox {self.inbox}, so the daemon "
                        f"would read its own files back as input; choose a folder outside it"
                    )
            elif self.inbox.is_relative_to(folder):
                raise ConfigError(
                    f"the inbox {self.inbox} is inside {label} {folder}, so what the daemon "
                    "writes there would come back as input; choose folders side by side"
                )
        for _label, folder in [*self.written(), ("state", self.state)]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except FileExistsError as exc:
                raise ConfigError(
                    f"{folder} exists but is not a folder; remove or rename that file, or "
                    "choose another folder"
                ) from exc
            except OSError as exc:
                raise ConfigError(
                    f"cannot create folder {folder}: {exc.strerror}; create it or fix permissions"
                ) from exc


def move_file(source: Path, target: Path) -> None:
    """Move a file, creating ``target``'s folder; never leaves it in neither place.

    A rename when both are on one file system; else copy to a hidden temporary name beside the
    target (``.<name>.<pid>.part``, shortened to fit 255 bytes), fsync, rename into place, then
    remove the source. A symlink is moved as a link, never followed: across file systems the
    link is re-created at the target (same link text) and the source link removed, so the bytes
    of the file it points to are never copied.

    Raises:
        FileExistsError: ``target`` exists, or is a symlink (callers choose a free name first).
        OSError: the move failed; the source is still in place.

    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "target exists", str(target))
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temporary = target.with_name(temporary_name(target.name, f"{os.getpid()}.part"))
        try:
            if stat.S_ISLNK(os.lstat(source).st_mode):
                os.symlink(os.readlink(source), temporary)
            else:
                shutil.copy2(source, temporary, follow_symlinks=False)
                # Read-only: copy2 keeps the source's mode, and scans are often dropped read-only
                # (0444), which a non-root user could not reopen for writing. fsync needs no
                # write; O_NOFOLLOW: the temporary is the regular file just copied.
                fd = os.open(temporary, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.rename(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)
        source.unlink()
    fsync_dir(target.parent)


def file_size(path: Path | str | None) -> int | None:
    """Size in bytes of a file, or of a symlink itself (never followed: ``lstat``).

    ``None`` when there is no path or it cannot be read.
    """
    if not path:
        return None
    try:
        return Path(path).lstat().st_size
    except OSError:
        return None


def _tagged(name: str, tag: str, counter: int, keep_suffix: bool) -> str:
    """``name`` (counter 1), ``name.<tag>`` (2), ``name.<tag>-<counter>`` (3 on: -2, -3, ...).

    With ``keep_suffix`` the tag goes before the extension: ``scan.<tag>.jpg``.
    """
    if counter == 1:
        return name
    label = tag if counter == 2 else f"{tag}-{counter - 1}"
    base, suffix = os.path.splitext(name) if keep_suffix else (name, "")
    return f"{base}.{label}{suffix}"


def candidate_names(
    name: str, tag: str, reserve: int = 0, keep_suffix: bool = True
) -> Iterator[str]:
    """``name``, then ``name.<tag>.ext``, ``name.<tag>-2.ext``, ... each fitting 255 bytes.

    Every candidate is shortened (:func:`ocr_pipeline.names.fit_name`) to leave ``reserve``
    bytes to spare. Endless: the caller stops at the first free one.

    Raises:
        ValueError: ``reserve`` leaves no room for a name.

    """
    counter = 1
    while True:
        yield fit_name(_tagged(name, tag, counter, keep_suffix), reserve)
        counter += 1


def _lstat(path: Path) -> os.stat_result | None:
    """``lstat`` of ``path``; ``None`` when nothing (not even a dangling link) is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def real_folder(parent: Path, name: str, tag: str, create: bool) -> Path:
    """A real folder named ``name`` in ``parent``, or a sibling ``name.<tag>`` (``-2``, ...).

    A name held by a file, a symlink (to a folder or not) or anything but a folder is passed
    over, so nothing is ever written through a symlinked folder. With ``create``, a missing
    folder is made (a folder made meanwhile by another process is accepted; a file or link made
    meanwhile is passed over); without it, the first missing name is returned as it is.

    Raises:
        OSError: ``parent`` cannot be read or the folder cannot be made (permissions, disk).

    """
    for candidate in candidate_names(name, tag, keep_suffix=False):
        path = parent / candidate
        while True:
            status = _lstat(path)
            if status is None:
                if not create:
                    return path
                try:
                    path.mkdir()
                except FileExistsError:
                    continue  # made meanwhile: look at what it is
                return path
            break
        if stat.S_ISDIR(status.st_mode):
            return path
    raise AssertionError("unreachable: candidate_names is endless")  # pragma: no cover


def place(root: Path, relative: Path, tag: str, reserve: int = 0) -> Path:
    """A free path under ``root`` mirroring ``relative``, safe to move or write a file to.

    Each folder of ``relative`` becomes a real folder under ``root`` (made when missing); where
    that name is held by a file or a symlink, the sibling ``<folder>.<tag>`` (then
    ``<folder>.<tag>-2``, ...) is used instead, so nothing goes through a symlink. The file
    name is ``relative``'s name if nothing (not even a dangling link) holds it, else
    ``name.<tag>.ext``, ``name.<tag>-2.ext``, ...; every name fits 255 bytes, the file name with
    ``reserve`` bytes to spare (``len(".error.json")`` for a failed file's report), shortened
    with a hash of the full name when needed (:func:`ocr_pipeline.names.fit_name`).

    Args:
        root: the archive or failed folder (made when missing).
        relative: the input's path relative to the inbox, ``sub/scan.jpg``.
        tag: a short label for a taken name, usually the first 8 hex digits of the sha256.
        reserve: bytes the caller will append to the file name.

    Raises:
        OSError: a folder cannot be read or made (permissions, disk full).
        ValueError: ``reserve`` leaves no room for a name.

    """
    root.mkdir(parents=True, exist_ok=True)
    folder = root
    for part in relative.parts[:-1]:
        folder = real_folder(folder, part, tag, create=True)
    for candidate in candidate_names(relative.name, tag, reserve):
        if _lstat(folder / candidate) is None:
            return folder / candidate
    raise AssertionError("unreachable: candidate_names is endless")  # pragma: no cover
