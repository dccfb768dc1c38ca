"""Durable, atomic file writes: the one helper every result, report and status file goes through.

A reader never sees half a file: bytes go to a temporary name in the destination folder, are
fsynced, then renamed over the final name, and the folder is fsynced so the rename survives a
crash (POSIX ``rename(2)`` is atomic within one file system).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over ``path``;
    the folder is fsynced so the rename survives a crash. The file gets the umask's mode.

    Raises:
        OSError: the folder is not writable or the disk is full (the temporary file is removed).

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _NEW_FILE_MODE)  # mkstemp makes 0600; results are for other users too
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
