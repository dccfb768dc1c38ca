"""CPUs this process may use: cgroup quota parsing on files written here, and the real CLI
started on one core."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocr_pipeline.cpus import (
    affinity_cpus,
    available_cpus,
    cgroup_cpu_limit,
    cgroup_v1_cpu_limit,
    cgroup_v2_cpu_limit,
)
from tests.daemon_harness import run_cli


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),  # 1.5 CPUs: rounded up
        ("50000 100000\n", 1),
        ("1000 100000\n", 1),  # a hundredth of a CPU is still one
        ("400000 50000\n", 8),
        ("", None),
        ("garbage\n", None),
        ("12 x\n", None),
        ("0 100000\n", None),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    _write(tmp_path, "cpu.max", cpu_max)
    assert cgroup_v2_cpu_limit(tmp_path) == expected
    assert cgroup_cpu_limit(tmp_path) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [
        ("-1", "100000", None),
        ("100000", "100000", 1),
        ("250000", "100000", 3),
        ("300000", "100000", 3),
        ("x", "100000", None),
    ],
)
def test_cgroup_v1_cfs_quota(tmp_path: Path, quota: str, period: str, expected: int | None) -> None:
    _write(tmp_path, "cpu/cpu.cfs_quota_us", quota + "\n")
    _write(tmp_path, "cpu/cpu.cfs_period_us", period + "\n")
    assert cgroup_v1_cpu_limit(tmp_path) == expected
    assert cgroup_cpu_limit(tmp_path) == expected


def test_cgroup_v1_under_the_combined_controller_folder(tmp_path: Path) -> None:
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "200000")
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000")
    assert cgroup_v1_cpu_limit(tmp_path) == 2


def test_v1_needs_both_files(tmp_path: Path) -> None:
    _write(tmp_path, "cpu/cpu.cfs_quota_us", "200000")
    assert cgroup_v1_cpu_limit(tmp_path) is None


def test_no_cgroup_files_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "does-not-exist") is None
    assert available_cpus(tmp_path) == affinity_cpus()


def test_the_tighter_of_v1_and_v2_wins(tmp_path: Path) -> None:
    _write(tmp_path, "cpu.max", "300000 100000")
    _write(tmp_path, "cpu/cpu.cfs_quota_us", "100000")
    _write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path) == 1


def test_available_cpus_is_affinity_capped_by_the_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert affinity_cpus() == affinity
    _write(tmp_path, "cpu.max", "100000 100000")
    assert available_cpus(tmp_path) == 1
    _write(tmp_path, "cpu.max", f"{(affinity + 4) * 100000} 100000")
    assert available_cpus(tmp_path) == affinity  # a quota above the affinity does not add CPUs
    _write(tmp_path, "cpu.max", "max 100000")
    assert available_cpus(tmp_path) == affinity
    # This machine's real cgroup files, with this thread pinned to one CPU: one, whatever the
    # machine's CPU count (os.cpu_count() would say otherwise wherever it has more than one).
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        assert affinity_cpus() == 1
        assert available_cpus() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert available_cpus() == min(affinity, cgroup_cpu_limit() or affinity)


def _one_core() -> None:
    """``preexec_fn``: pin the child to the first CPU this process may use."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def test_cli_on_one_core_starts_one_worker_with_one_thread(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    done = run_cli(
        ["--log-format", "json", "run", inbox, outbox],
        unset=["OCR_PIPELINE_DAEMON__WORKERS", "OCR_PIPELINE_RUNTIME__INTRA_OP_THREADS"],
        cwd=tmp_path,
        preexec_fn=_one_core,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    started = [event for event in events if event.get("event") == "started"]
    assert started, f"no 'started' event in the JSON log:\n{done.stderr}"
    assert started[0]["workers"] == 1
    assert started[0]["threads_per_worker"] == 1
