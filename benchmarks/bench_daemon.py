"""The daemon end to end: sustained throughput, drop-to-result latency, worker memory over time.

A real ``ocr-pipeline watch`` process (default accuracy settings; settle time 0.5 s, none after
a close-write event or a rename) runs on temporary folders; the 50 sroie-dev receipts are
dropped with distinct trailing bytes after the JPEG end-of-image marker (decoders ignore them;
the daemon would otherwise reuse results of equal sha256). Times come from the audit log's
``done`` records.

1. Throughput, per worker count: all N files renamed into the inbox at once; pages per second
   from the drop to the last result; latency p50/p95 of that run includes queueing.
2. Latency at moderate load: files dropped one by one at half the measured throughput;
   drop-to-result p50/p95.
3. Memory: with 2 workers, K jobs fed with at most 20 waiting; each worker's RSS (from
   status.json) after the first 10 jobs and after K, and the relative change (flat: within 10%).
4. Latency on an idle daemon (default workers and threads): once its workers are idle (their
   CPU time stops growing: loaded and warmed up), single receipts are written into the inbox
   one at a time (open, write, close: the close-write path), each waiting for its result;
   drop-to-result p50/p95 against the engine's own time for the same file in this process with
   all cores (``ocr_pipeline.read`` with a loaded engine), measured right after each drop
   (paired: both see the same machine load). The target: latency p95 at most 1.5 x engine p95.

    .venv/bin/python -m benchmarks.bench_daemon [--workers 1 2] [--rss-jobs 1000] [--idle 20]

``--workers`` with no value skips phases 1 and 2, ``--paced 0`` phase 2, ``--rss-jobs 0`` phase 3,
``--idle 0`` phase 4; ``--daemon-threads N`` sets the daemons' ``runtime.intra_op_threads`` (to
compare with the automatic count).

Run it as a module from the repository root: the daemon is driven by the tests' harness
(``tests/daemon_harness.py``), imported as ``tests.daemon_harness`` like the tests do, without
editing ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from tests.conftest import SROIE_DEV
    from tests.daemon_harness import DaemonProcess, Layout, jpeg_variant, wait_until
except ModuleNotFoundError as error:  # run as a file, or from elsewhere: no ``tests`` package
    if error.name != "tests":
        raise
    raise SystemExit(
        "run from the repository root: .venv/bin/python -m benchmarks.bench_daemon ..."
    ) from error

REPO = Path(__file__).resolve().parents[1]
DEV_IMAGES = SROIE_DEV / "images"
ENV = {
    "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0.5",
    "OCR_PIPELINE_DAEMON__SETTLE_AFTER_CLOSE_SECONDS": "0",  # issue 20's default: ready at once
    "OCR_PIPELINE_DAEMON__STATUS_SECONDS": "1",
    "OCR_PIPELINE_LOG__LEVEL": "warning",
}
"""The daemon's settings here: the defaults (accuracy included) but for these, not the tests'."""
START_SECONDS = 120
STOP_SECONDS = 30
POLL_SECONDS = 0.1


def start_daemon(
    base: Path, workers: int | None, threads: int | None = None
) -> tuple[Layout, DaemonProcess]:
    """``ocr-pipeline watch`` on ``base/inbox`` and ``base/outbox`` with ``workers`` workers.

    ``None`` leaves ``daemon.workers`` (one per CPU) or ``runtime.intra_op_threads`` (auto) at
    its default; ``threads`` is the daemon's alone, not this process's.
    """
    layout = Layout(base)
    env = {} if workers is None else {"OCR_PIPELINE_DAEMON__WORKERS": str(workers)}
    if threads is not None:
        env["OCR_PIPELINE_RUNTIME__INTRA_OP_THREADS"] = str(threads)
    daemon = DaemonProcess(layout, base_env=ENV, env=env, poll_seconds=POLL_SECONDS)
    return layout, daemon.start(timeout=START_SECONDS)


def variant(source: Path, tag: int) -> bytes:
    """The JPEG's bytes with a tag of ``tag`` after the end-of-image marker."""
    return jpeg_variant(source.read_bytes(), f"ocr-pipeline-bench-{tag}")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile, ``share`` in 0..1."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def throughput_run(
    base: Path, workers: int, files: int, paced: int, threads: int | None = None
) -> dict[str, Any]:
    """Phases 1 and 2 for one worker count (``threads``: the daemon's intra-op threads)."""
    images = sorted(DEV_IMAGES.glob("*.jpg"))
    layout, daemon = start_daemon(base, workers, threads)
    try:
        staging = base / "staging"
        staging.mkdir()
        names = [f"bulk-{i:04d}.jpg" for i in range(files)]
        for i, name in enumerate(names):
            (staging / name).write_bytes(variant(images[i % len(images)], i))
        dropped = time.time()
        for name in names:
            os.rename(staging / name, layout.inbox / name)
        daemon.wait(lambda: len(layout.done_times()) >= files, 3600, "bulk results")
        done = layout.done_times()
        elapsed = max(done.values()) - dropped
        bulk_latency = [done[name] - dropped for name in names]
        pages_per_second = files / elapsed

        interval = 2.0 / pages_per_second
        drops: dict[str, float] = {}
        for i in range(paced):
            name = f"paced-{i:04d}.jpg"
            (staging / name).write_bytes(variant(images[i % len(images)], 10_000 + i))
            drops[name] = time.time()
            os.rename(staging / name, layout.inbox / name)
            time.sleep(interval)
        daemon.wait(lambda: len(layout.done_times()) >= files + paced, 3600, "paced results")
        done = layout.done_times()
        paced_latency = [done[name] - drops[name] for name in drops]
    finally:
        daemon.stop(timeout=STOP_SECONDS, force=True)  # SIGKILL of the group past it
    return {
        "workers": workers,
        "intra_op_threads": threads if threads is not None else "default",
        "files": files,
        "seconds": round(elapsed, 2),
        "pages_per_second": round(pages_per_second, 3),
        "bulk_latency_p50_s": round(percentile(bulk_latency, 0.5), 2),
        "bulk_latency_p95_s": round(percentile(bulk_latency, 0.95), 2),
        "paced_files": paced,
        "paced_interval_s": round(interval, 2),
        "latency_p50_s": round(percentile(paced_latency, 0.5), 2) if paced else None,
        "latency_p95_s": round(percentile(paced_latency, 0.95), 2) if paced else None,
    }


RSS_BASELINE_JOBS = 100
"""Jobs before the RSS baseline of the flatness check: every dev receipt (50) seen twice, so the
inference arenas have grown to the largest page; growth after that is what a leak looks like."""


def rss_run(base: Path, jobs: int, threads: int | None = None) -> dict[str, Any]:
    """Phase 3: worker RSS at checkpoints over ``jobs`` jobs (2 workers).

    Flat means within 10% from the :data:`RSS_BASELINE_JOBS` checkpoint to the end; the change
    from the 10th job (arenas still growing to the largest page) is reported beside it.
    """
    images = sorted(DEV_IMAGES.glob("*.jpg"))
    layout, daemon = start_daemon(base, 2, threads)
    staging = base / "staging"
    staging.mkdir()
    marks = sorted({m for m in (10, RSS_BASELINE_JOBS, jobs // 4, jobs // 2, jobs) if m <= jobs})
    seen: dict[int, dict[str, int]] = {}

    def done() -> int:
        jobs_done: int = daemon.status().get("jobs", {}).get("done", 0)
        return jobs_done

    def checkpoint(mark: int) -> None:
        daemon.wait(lambda: done() >= mark, 3600, f"{mark} results")
        seen[mark] = dict(daemon.status()["worker_rss_bytes"])

    try:
        for i in range(jobs):
            name = f"rss-{i:05d}.jpg"
            (staging / name).write_bytes(variant(images[i % len(images)], 20_000 + i))
            os.rename(staging / name, layout.inbox / name)
            if i + 1 in marks and i + 1 < jobs:
                checkpoint(i + 1)
            daemon.wait(lambda: len(list(layout.inbox.glob("*.jpg"))) < 20, 3600, "progress")
        checkpoint(jobs)
    finally:
        daemon.stop(timeout=STOP_SECONDS, force=True)  # SIGKILL of the group past it
    baseline_mark = RSS_BASELINE_JOBS if RSS_BASELINE_JOBS in seen else marks[0]
    workers = []
    for pid, first in seen[marks[0]].items():
        by_mark = {mark: seen[mark].get(pid) for mark in marks}
        end, baseline = by_mark[jobs], by_mark[baseline_mark]
        workers.append(
            {
                "pid": int(pid),
                "rss_mib_by_jobs": {
                    str(mark): round(rss / 2**20, 1) if rss else None
                    for mark, rss in by_mark.items()
                },
                "change_from_10": round((end - first) / first, 4) if end else None,
                "change": round((end - baseline) / baseline, 4) if end and baseline else None,
            }
        )
    flat = bool(workers) and all(
        w["change"] is not None and abs(w["change"]) <= 0.10 for w in workers
    )
    return {
        "jobs": jobs,
        "baseline_jobs": baseline_mark,
        "workers": workers,
        "flat_within_10_percent": flat,
    }


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of process ``pid`` so far, clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def wait_workers_idle(daemon: DaemonProcess, timeout: float = START_SECONDS) -> list[int]:
    """Wait until the daemon's workers use no CPU for 0.5 s (models loaded, warm-up done).

    Returns:
        The worker pids.

    Raises:
        AssertionError: not idle within ``timeout`` seconds, or the daemon exited.

    """
    seen: dict[int, int] = {}

    def idle() -> bool:
        pids = [int(pid) for pid in daemon.status().get("worker_pids", [])]
        ticks = {pid: cpu_ticks(pid) for pid in pids}
        quiet = bool(pids) and all(seen.get(pid, -99) >= ticks[pid] - 1 for pid in pids)
        seen.clear()
        seen.update(ticks)
        return quiet

    wait_until(idle, timeout, "idle workers", interval=0.5, abort=daemon.exited)
    return sorted(seen)


def idle_run(base: Path, count: int, threads: int | None = None) -> dict[str, Any]:
    """Phase 4: ``count`` receipts one at a time into an idle daemon, paired with engine time.

    ``threads`` sets the daemon's ``runtime.intra_op_threads`` (``None``: its default), to
    compare thread counts; the engine here always has every CPU.
    """
    from ocr_pipeline import read
    from ocr_pipeline.engine import Engine
    from ocr_pipeline.settings import load_settings

    images = sorted(DEV_IMAGES.glob("*.jpg"))
    settings = load_settings()  # runtime.intra_op_threads 0: every CPU, for one process
    engine = Engine.from_settings(settings)
    for warm in images[-2:]:  # the engine's first runs are slow; the daemon's workers warm up
        read(warm, settings, engine)
    staging = base / "staging"
    staging.mkdir(parents=True)
    layout, daemon = start_daemon(base, None, threads)
    latency: list[float] = []
    engine_seconds: list[float] = []
    worker_seconds: list[float] = []
    """The worker's own time per file (the result's ``timings_ms.total``)."""
    load_before = os.getloadavg()
    try:
        wait_workers_idle(daemon)
        for i in range(count):
            name = f"idle-{i:04d}.jpg"
            data = variant(images[i % len(images)], 30_000 + i)
            (staging / name).write_bytes(data)
            dropped = time.time()
            with (layout.inbox / name).open("wb") as handle:  # a writer: IN_CLOSE_WRITE
                handle.write(data)
            daemon.wait(lambda name=name: name in layout.done_times(), 600, f"{name}'s result")
            latency.append(layout.done_times()[name] - dropped)
            result = json.loads((layout.outbox / f"{name[:-4]}.json").read_text(encoding="utf-8"))
            worker_seconds.append(result["timings_ms"]["total"] / 1000)
            started = time.perf_counter()
            read(staging / name, settings, engine)
            engine_seconds.append(time.perf_counter() - started)
    finally:
        daemon.stop(timeout=STOP_SECONDS, force=True)  # SIGKILL of the group past it
    load_after = os.getloadavg()
    paired = sorted(lat / eng for lat, eng in zip(latency, engine_seconds, strict=True))
    return {
        "files": count,
        "daemon_intra_op_threads": threads if threads is not None else "default",
        "drop": "written into the inbox (open, write, close)",
        "latency_s": [round(v, 3) for v in latency],
        "engine_s": [round(v, 3) for v in engine_seconds],
        "worker_s": [round(v, 3) for v in worker_seconds],
        "worker_p50_s": round(percentile(worker_seconds, 0.5), 3),
        "overhead_p50_s": round(
            percentile([lat - w for lat, w in zip(latency, worker_seconds, strict=True)], 0.5), 3
        ),
        "first_latency_s": round(latency[0], 3),
        "latency_p50_s": round(percentile(latency, 0.5), 3),
        "latency_p95_s": round(percentile(latency, 0.95), 3),
        "engine_p50_s": round(percentile(engine_seconds, 0.5), 3),
        "engine_p95_s": round(percentile(engine_seconds, 0.95), 3),
        "ratio_p95": round(percentile(latency, 0.95) / percentile(engine_seconds, 0.95), 3),
        "paired_ratio_median": round(percentile(paired, 0.5), 3),
        "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }


def main() -> None:
    """Run the phases, print tables, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--files", type=int, default=50, help="files in the bulk drop")
    parser.add_argument("--paced", type=int, default=12, help="files dropped one by one")
    parser.add_argument("--rss-jobs", type=int, default=1000, help="0 skips the memory phase")
    parser.add_argument("--idle", type=int, default=20, help="receipts into an idle daemon")
    parser.add_argument(
        "--daemon-threads", type=int, help="the daemons' runtime.intra_op_threads (default: auto)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/daemon.json")
    parser.add_argument("--keep-temp", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ocr-bench-daemon-"))
    report: dict[str, Any] = {"cpu_count": os.cpu_count(), "runs": []}
    try:
        for workers in args.workers:
            run = throughput_run(
                scratch / f"w{workers}", workers, args.files, args.paced, args.daemon_threads
            )
            report["runs"].append(run)
        if report["runs"]:
            print("| workers | pages/s | bulk p50 s | bulk p95 s | latency p50 s | latency p95 s |")
            print("| --- | --- | --- | --- | --- | --- |")
        for run in report["runs"]:
            print(
                f"| {run['workers']} | {run['pages_per_second']:.3f} | "
                f"{run['bulk_latency_p50_s']} | {run['bulk_latency_p95_s']} | "
                f"{run['latency_p50_s']} | {run['latency_p95_s']} |"
            )
        if args.rss_jobs:
            report["rss"] = rss_run(scratch / "rss", args.rss_jobs, args.daemon_threads)
            rss = report["rss"]
            marks = list(rss["workers"][0]["rss_mib_by_jobs"]) if rss["workers"] else []
            print(f"\nworker RSS (MiB) over {args.rss_jobs} jobs (2 workers), by jobs done:")
            print("| worker | " + " | ".join(marks) + f" | change from {rss['baseline_jobs']} |")
            print("| --- " * (len(marks) + 2) + "|")
            for worker in rss["workers"]:
                change = worker["change"]
                shown = f"{change:+.1%}" if change is not None else "replaced"
                values = " | ".join(str(v) for v in worker["rss_mib_by_jobs"].values())
                print(f"| {worker['pid']} | {values} | {shown} |")
            print(f"flat within 10%: {report['rss']['flat_within_10_percent']}")
        if args.idle:
            idle = report["idle"] = idle_run(scratch / "idle", args.idle, args.daemon_threads)
            print(f"\nidle daemon, {args.idle} receipts one at a time (drop to result):")
            print("| | p50 s | p95 s |")
            print("| --- | --- | --- |")
            print(f"| daemon latency | {idle['latency_p50_s']} | {idle['latency_p95_s']} |")
            print(f"| engine, one process | {idle['engine_p50_s']} | {idle['engine_p95_s']} |")
            print(
                f"p95 ratio {idle['ratio_p95']} (target <= 1.5); paired median ratio "
                f"{idle['paired_ratio_median']}; first file {idle['first_latency_s']} s; "
                f"worker p50 {idle['worker_p50_s']} s, drop-to-result minus worker time p50 "
                f"{idle['overhead_p50_s']} s; "
                f"load average {idle['load_average_1m_before_after']}"
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    finally:
        if not args.keep_temp:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
