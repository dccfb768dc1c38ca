"""What the daemon checks about a claimed file before it hashes it or hands it to a worker.

Everything here looks at the claim with ``lstat`` and opens it with ``O_NOFOLLOW``, so nothing
outside the inbox is read on the daemon's behalf:

* a symlink is refused (:class:`~ocr_pipeline.errors.SymlinkRefusedError`) unless
  ``daemon.follow_symlinks``, and even then its target must be a regular file on the inbox's
  file system (``st_dev``);
* anything but a regular file (FIFO, socket, device, folder link) is refused without opening it;
* the size comes from ``lstat``/``fstat`` before a byte is read, so a 50 GB sparse file is
  refused at once (:class:`~ocr_pipeline.errors.InputTooLargeError`), and hashing reads at most
  ``decode.max_bytes`` (200 MB by default: about 0.2 s at the 0.9 GB/s sha256 runs on the
  project's 2-core test machine), which bounds the main loop's time per file;
* a file the daemon's user may not read is refused
  (:class:`~ocr_pipeline.errors.UnreadableInputError`) instead of staying claimed forever.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ocr_pipeline.documents import DecodeLimits, check_byte_limit
from ocr_pipeline.errors import (
    InputError,
    InputTooLargeError,
    SymlinkRefusedError,
    UnreadableInputError,
)
from ocr_pipeline.jobs import open_input

CHUNK_BYTES = 1 << 20
"""Read size while hashing, bytes."""

_KINDS = {
    stat.S_IFIFO: "named pipe (FIFO)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "folder",
}


def check_claimed(
    path: Path, relative: str, limits: DecodeLimits, follow_symlinks: bool, inbox_device: int
) -> InputError | None:
    """The reason a claimed file cannot be read, or ``None`` when it may be hashed and OCRed.

    Args:
        path: the claimed file in the work folder.
        relative: its inbox-relative path, for messages.
        limits: ``decode.max_bytes`` is checked against the size from ``stat``.
        follow_symlinks: ``daemon.follow_symlinks``.
        inbox_device: ``st_dev`` of the inbox: a followed link's target must be on it.

    Raises:
        FileNotFoundError: the claimed file is gone.

    """
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        refused = _check_link(path, relative, follow_symlinks, inbox_device)
        if refused is not None:
            return refused
        info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "special file")
        return UnreadableInputError(
            f"{relative} is a {kind}, not a regular file, so it was not opened; only files are "
            "read: remove it from failed/ and drop a regular file into the inbox"
        )
    try:
        check_byte_limit(relative, info.st_size, limits)
    except InputTooLargeError as exc:
        return exc
    return None


def _check_link(
    path: Path, relative: str, follow_symlinks: bool, inbox_device: int
) -> InputError | None:
    target = os.readlink(path)
    if not follow_symlinks:
        return SymlinkRefusedError(
            f"{relative} is a symlink (to {target}); symlinks are not followed "
            "(daemon.follow_symlinks = false), so the link itself was moved to failed/ and its "
            "target was not read; drop the file itself into the inbox, or set "
            "daemon.follow_symlinks = true"
        )
    try:
        info = path.stat()
    except OSError as exc:
        return SymlinkRefusedError(
            f"{relative} is a symlink to {target}, which cannot be reached ({exc.strerror}); "
            "drop the file itself into the inbox"
        )
    if info.st_dev != inbox_device:
        return SymlinkRefusedError(
            f"{relative} is a symlink to {target}, on another file system than the inbox; "
            "followed symlinks must stay on the inbox's file system "
            "(daemon.follow_symlinks); drop the file itself into the inbox"
        )
    return None


def hash_claimed(path: Path, relative: str, limits: DecodeLimits, follow_symlinks: bool) -> str:
    """Hex sha256 of a claimed file, reading at most ``limits.max_bytes`` + 1 bytes.

    Opened as the worker opens it (:func:`ocr_pipeline.jobs.open_input`: no symlink unless
    followed, never blocking, a regular file only).

    Raises:
        UnreadableInputError: the daemon's user may not read it, or it is not a regular file.
        SymlinkRefusedError: it became a symlink after :func:`check_claimed`.
        InputTooLargeError: it grew past the byte limit while being read.
        OSError: another read error (the caller waits and tries again).

    """
    descriptor, _ = open_input(path, relative, follow_symlinks)
    digest = hashlib.sha256()
    read = 0
    with os.fdopen(descriptor, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            read += len(chunk)
            if read > limits.max_bytes:
                check_byte_limit(relative, read, limits)
            digest.update(chunk)
    return digest.hexdigest()
