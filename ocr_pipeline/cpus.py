"""How many CPUs this process may use: CPU affinity, capped by the cgroup CPU quota.

The rule (used wherever a setting says "0: one per CPU this process may use"):

1. Start from the CPUs the scheduler lets this process run on, ``len(os.sched_getaffinity(0))``
   (``taskset``, ``docker run --cpuset-cpus``, systemd ``AllowedCPUs=``). Where the platform has
   no ``sched_getaffinity`` (macOS, Windows), ``os.process_cpu_count()`` (Python 3.13) or else
   ``os.cpu_count()`` stands in, because nothing better is available there.
2. Cap it by the cgroup CPU quota, in CPUs = quota / period, rounded up (``docker run --cpus``,
   Kubernetes ``limits.cpu``, systemd ``CPUQuota=``):

   - cgroup v2: ``<root>/cpu.max`` holds ``"QUOTA PERIOD"`` in microseconds, or ``"max PERIOD"``
     for no limit;
   - cgroup v1: ``<root>/cpu/cpu.cfs_quota_us`` and ``<root>/cpu/cpu.cfs_period_us`` (also looked
     up under ``<root>/cpu,cpuacct/``), a quota of ``-1`` meaning no limit.

   Where both hierarchies show a quota, the smaller one wins. A missing, unreadable or malformed
   file means no limit from that file: a CPU count never stops the daemon.
3. At least 1.

``<root>`` is ``/sys/fs/cgroup``, which inside a container (cgroup namespace) is the
container's own cgroup. ``os.cpu_count()`` alone is never the answer on Linux: it counts the
machine's CPUs, not the ones this process may use, and in a container limited to 2 CPUs on a
64-core host it would start 64 workers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup file system is mounted on Linux."""


def _read_text(path: Path) -> str | None:
    """The stripped text of ``path``, or None if it does not exist or cannot be read."""
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_cpus(quota_us: int, period_us: int) -> int | None:
    """CPUs allowed by ``quota_us`` per ``period_us`` (microseconds), rounded up; None: no limit."""
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))


def cgroup_v2_cpu_limit(cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """CPUs allowed by cgroup v2 ``<cgroup_root>/cpu.max``, rounded up.

    Args:
        cgroup_root: the cgroup v2 mount point (a parameter for tests).

    Returns:
        The whole number of CPUs the quota allows (``ceil(quota / period)``, at least 1), or None
        when there is no limit (``max``), no such file, or a malformed one.
    """
    text = _read_text(cgroup_root / "cpu.max")
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        return _quota_cpus(int(fields[0]), int(fields[1]))
    except ValueError:
        return None


def cgroup_v1_cpu_limit(cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, rounded up.

    The files are looked up in ``<cgroup_root>/cpu/`` and then ``<cgroup_root>/cpu,cpuacct/``.

    Args:
        cgroup_root: the cgroup mount point holding the v1 controllers (a parameter for tests).

    Returns:
        The whole number of CPUs the quota allows (at least 1), or None when the quota is ``-1``
        (no limit), the files are missing or malformed.
    """
    for controller in ("cpu", "cpu,cpuacct"):
        folder = cgroup_root / controller
        quota = _read_text(folder / "cpu.cfs_quota_us")
        period = _read_text(folder / "cpu.cfs_period_us")
        if quota is None or period is None:
            continue
        try:
            return _quota_cpus(int(quota), int(period))
        except ValueError:
            return None
    return None


def cgroup_cpu_limit(cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """The tighter of the cgroup v2 and v1 CPU quotas in whole CPUs, or None if neither limits.

    Args:
        cgroup_root: the cgroup mount point (a parameter for tests).
    """
    limits = [
        limit
        for limit in (cgroup_v2_cpu_limit(cgroup_root), cgroup_v1_cpu_limit(cgroup_root))
        if limit is not None
    ]
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """The number of CPUs the scheduler lets this process run on (at least 1).

    ``len(os.sched_getaffinity(0))`` on Linux; elsewhere the best count the platform offers.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python >= 3.13
    count = process_cpu_count() if process_cpu_count is not None else os.cpu_count()
    return max(1, count or 1)


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use: affinity capped by the cgroup CPU quota, at least 1.

    See the module docstring for the rule and its sources.

    Args:
        cgroup_root: the cgroup mount point (a parameter for tests).

    Returns:
        A whole number of CPUs, >= 1. Never raises: unreadable cgroup files mean no quota.
    """
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, limit)
    return max(1, cpus)
