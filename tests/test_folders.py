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
from ocr_pipeline.folders import file_size, move_file, place

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


# ----------------------------------------------------------------- names and links (issue 16)


def test_symlink_moves_across_file_systems_as_a_link_never_its_target(
    shared_dirs: tuple[Path, Path],
) -> None:
    source_root, target_root = shared_dirs
    secret = source_root / "secret"
    secret.write_bytes(b"root-only bytes")
    os.chmod(secret, 0o600)
    link = source_root / "scan.jpg"
    link.symlink_to(secret)
    target = target_root / "failed" / "scan.jpg"

    move_file(link, target)

    assert target.is_symlink() and os.readlink(target) == str(secret)
    assert not os.path.lexists(link) and secret.read_bytes() == b"root-only bytes"
    copied = [p for p in target_root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert copied == [], "the link's target was copied"
    assert sorted(p.name for p in target.parent.iterdir()) == ["scan.jpg"], "no .part left"


def test_255_byte_name_moves_across_file_systems(shared_dirs: tuple[Path, Path]) -> None:
    source_root, target_root = shared_dirs
    name = "é" * 125 + ".jpg"  # 254 bytes: the .<name>.<pid>.part temporary must be shortened
    (source_root / name).write_bytes(b"scan")
    move_file(source_root / name, target_root / name)
    assert [p.name for p in target_root.iterdir()] == [name]
    assert (target_root / name).read_bytes() == b"scan"


def test_atomic_write_of_a_255_byte_name_replaces_a_link_without_following_it(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_bytes(b"not yours")
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / ("r" * 250 + ".json")
    path.symlink_to(outside)
    atomic_write_bytes(path, b"{}")
    assert not path.is_symlink() and path.read_bytes() == b"{}"
    assert outside.read_bytes() == b"not yours"
    assert [p.name for p in folder.iterdir()] == [path.name], "no temporary left"


def test_file_size_is_of_the_link_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1000)
    (tmp_path / "link").symlink_to(tmp_path / "big")
    assert file_size(tmp_path / "link") == len(str(tmp_path / "big"))
    assert file_size(tmp_path / "big") == 1000 and file_size(tmp_path / "none") is None


def test_place_passes_over_files_and_links_where_folders_should_be(tmp_path: Path) -> None:
    root, outside = tmp_path / "archive", tmp_path / "outside"
    outside.mkdir()
    (root / "real").mkdir(parents=True)
    (root / "d.jpg").write_bytes(b"an archived file")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    (root / "sub.1a2b3c4d").write_bytes(b"the first sibling is taken too")
    (root / "real" / "gone.jpg").symlink_to(tmp_path / "missing")  # a dangling link

    assert place(root, Path("real/x.jpg"), "1a2b3c4d") == root / "real" / "x.jpg"
    assert place(root, Path("d.jpg/e.jpg"), "1a2b3c4d") == root / "d.jpg.1a2b3c4d" / "e.jpg"
    assert place(root, Path("sub/a.jpg"), "1a2b3c4d") == root / "sub.1a2b3c4d-2" / "a.jpg"
    assert (root / "sub.1a2b3c4d-2").is_dir() and list(outside.iterdir()) == []
    assert place(root, Path("real/gone.jpg"), "1a2b3c4d") == root / "real" / "gone.1a2b3c4d.jpg"
    assert place(root, Path("new/deep/f.jpg"), "t") == root / "new" / "deep" / "f.jpg"
    assert (root / "new" / "deep").is_dir()


def test_place_fits_names_with_room_for_the_report(tmp_path: Path) -> None:
    name = "增" * 83 + ".jpg"  # 253 bytes
    (tmp_path / name).write_bytes(b"taken")
    tagged = place(tmp_path, Path(name), "1a2b3c4d")
    assert len(os.fsencode(tagged.name)) <= 255 and tagged.name.endswith(".jpg")
    report = place(tmp_path, Path(name), "1a2b3c4d", reserve=len(".error.json"))
    assert len(os.fsencode(report.name + ".error.json")) <= 255
    assert report.name.startswith("增" * 60) and report != tagged
    folder = place(tmp_path, Path("f" * 255 + "/x.jpg"), "t")
    assert folder.parent.name == "f" * 255 and folder.parent.is_dir()
