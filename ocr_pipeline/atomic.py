"""Durable, atomic file writes: the one helper every result, report and status file goes through.

A reader never sees half a file: bytes go to a temporary name in the destination folder, are
fsynced, then renamed over the final name, and the folder is fsynced so the rename survives a
crash (POSIX ``rename(2)`` is atomic within one file system).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ocr_pipeline.names import fit_name


def _process_umask() -> int:
    """The process's umask, read without changing it (``/proc`` on Linux), else via ``os.umask``."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Mode of written files: what ``open()`` would create (0644 under the usual umask 022).
_NEW_FILE_MODE = 0o666 & ~_process_umask()


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable (best effort where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(name: str, tag: str) -> str:
    """A hidden temporary name for ``name``: ``.<name>.<tag>``, within ``NAME_MAX`` bytes.

    ``name`` is shortened (:func:`ocr_pipeline.names.fit_name`) so that the dot, the name and
    ``.<tag>`` together fit 255 bytes.

    Raises:
        ValueError: ``tag`` is too long to leave room for a name.

    """
    suffix = f".{tag}"
    return f".{fit_name(name, reserve=1 + len(suffix.encode()))}{suffix}"


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_CREATE_FLAGS |= getattr(os, "O_CLOEXEC", 0)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new temporary file beside ``path`` (never an existing file, never a link)."""
    while True:
        temporary = path.with_name(temporary_name(path.name, f"{secrets.token_hex(4)}.tmp"))
        try:
            return os.open(temporary, _CREATE_FLAGS, 0o600), temporary
        except FileExistsError:
            continue  # another writer's temporary of the same token: draw again


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one.

    The bytes go to a new temporary file in the same folder (``.<name>.<random>.tmp``, created
    with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and shortened to fit 255 bytes), are fsynced, then
    renamed over ``path``; the folder is fsynced so the rename survives a crash. A symlink at
    ``path`` is replaced by the file, never written through (``rename(2)`` does not follow it).
    The file gets the umask's mode.

    Raises:
        OSError: the folder is not writable, the disk is full, or ``path``'s own name is longer
            than 255 bytes (``ENAMETOOLONG``); the temporary file is removed.

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, _NEW_FILE_MODE)  # created 0600; results are for other users too
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
