"""File moves and result files as the daemon's non-root user meets them.

Found by running the image under podman: a scan dropped read-only (0444) could not be archived
across file systems by a non-root user, and result files were created 0600.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.folders import move_file

NOBODY = 65534


@pytest.fixture
def shared_dirs() -> Iterator[tuple[Path, Path]]:
    """A source folder on tmpfs and a target folder on disk: two file systems, both 0777."""
    source_root = Path(tempfile.mkdtemp(dir="/dev/shm"))
    target_root = Path(tempfile.mkdtemp(dir="/var/tmp"))
    if source_root.stat().st_dev == target_root.stat().st_dev:
        pytest.skip("/dev/shm and /var/tmp are one file system here: no cross-device move")
    for folder in (source_root, target_root):
        os.chmod(folder, 0o777)
    yield source_root, target_root
    shutil.rmtree(source_root, ignore_errors=True)
    shutil.rmtree(target_root, ignore_errors=True)


def _as_non_root(action: Callable[[], None]) -> None:
    """Run ``action`` as UID/GID 65534 in a forked child (directly if already non-root).

    Raises:
        AssertionError: the action raised; the child's exit code says so.

    """
    if os.geteuid() != 0:
        action()
        return
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, act, report through the exit code
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the action failed as a non-root user"


def test_read_only_scan_moves_across_file_systems_as_non_root(
    shared_dirs: tuple[Path, Path],
) -> None:
    source_root, target_root = shared_dirs
    source = source_root / "scan.jpg"
    source.write_bytes(b"\xff\xd8 a read-only scan")
    os.chmod(source, 0o444)
    target = target_root / "archive" / "scan.jpg"

    _as_non_root(lambda: move_file(source, target))

    assert target.read_bytes() == b"\xff\xd8 a read-only scan"
    assert not source.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["scan.jpg"], "no .part left"


def test_result_files_get_the_umask_mode_not_0600(tmp_path: Path) -> None:
    path = tmp_path / "scan.json"
    atomic_write_bytes(path, b"{}")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
