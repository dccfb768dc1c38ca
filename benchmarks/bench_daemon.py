"""The daemon end to end: sustained throughput, drop-to-result latency, worker memory over time.

A real ``ocr-pipeline watch`` process (default accuracy settings; settle time 0.5 s) runs on
temporary folders; the 50 sroie-dev receipts are dropped with distinct trailing bytes after the
JPEG end-of-image marker (decoders ignore them; the daemon would otherwise reuse results of equal
sha256). Times come from the audit log's ``done`` records.

1. Throughput, per worker count: all N files renamed into the inbox at once; pages per second
   from the drop to the last result; latency p50/p95 of that run includes queueing.
2. Latency at moderate load: files dropped one by one at half the measured throughput;
   drop-to-result p50/p95.
3. Memory: with 2 workers, K jobs fed with at most 20 waiting; each worker's RSS (from
   status.json) after the first 10 jobs and after K, and the relative change (flat: within 10%).

    .venv/bin/python -m benchmarks.bench_daemon [--workers 1 2] [--rss-jobs 1000]

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
    from tests.daemon_harness import DaemonProcess, Layout, jpeg_variant
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
    "OCR_PIPELINE_DAEMON__STATUS_SECONDS": "1",
    "OCR_PIPELINE_LOG__LEVEL": "warning",
}
"""The daemon's settings here: the defaults (accuracy included) but for these, not the tests'."""
START_SECONDS = 120
STOP_SECONDS = 30
POLL_SECONDS = 0.1


def start_daemon(base: Path, workers: int) -> tuple[Layout, DaemonProcess]:
    """``ocr-pipeline watch`` on ``base/inbox`` and ``base/outbox`` with ``workers`` workers."""
    layout = Layout(base)
    daemon = DaemonProcess(
        layout,
        base_env=ENV,
        env={"OCR_PIPELINE_DAEMON__WORKERS": str(workers)},
        poll_seconds=POLL_SECONDS,
    )
    return layout, daemon.start(timeout=START_SECONDS)


def variant(source: Path, tag: int) -> bytes:
    """The JPEG's bytes with a tag of ``tag`` after the end-of-image marker."""
    return jpeg_variant(source.read_bytes(), f"ocr-pipeline-bench-{tag}")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile, ``share`` in 0..1."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def throughput_run(base: Path, workers: int, files: int, paced: int) -> dict[str, Any]:
    """Phases 1 and 2 for one worker count."""
    images = sorted(DEV_IMAGES.glob("*.jpg"))
    layout, daemon = start_daemon(base, workers)
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
        "files": files,
        "seconds": round(elapsed, 2),
        "pages_per_second": round(pages_per_second, 3),
        "bulk_latency_p50_s": round(percentile(bulk_latency, 0.5), 2),
        "bulk_latency_p95_s": round(percentile(bulk_latency, 0.95), 2),
        "paced_files": paced,
        "paced_interval_s": round(interval, 2),
        "latency_p50_s": round(percentile(paced_latency, 0.5), 2),
        "latency_p95_s": round(percentile(paced_latency, 0.95), 2),
    }


def rss_run(base: Path, jobs: int) -> dict[str, Any]:
    """Phase 3: worker RSS after 10 jobs and after ``jobs`` jobs (2 workers)."""
    images = sorted(DEV_IMAGES.glob("*.jpg"))
    layout, daemon = start_daemon(base, 2)
    staging = base / "staging"
    staging.mkdir()
    early: dict[str, int] = {}

    def done() -> int:
        jobs_done: int = daemon.status().get("jobs", {}).get("done", 0)
        return jobs_done

    try:
        for i in range(jobs):
            name = f"rss-{i:05d}.jpg"
            (staging / name).write_bytes(variant(images[i % len(images)], 20_000 + i))
            os.rename(staging / name, layout.inbox / name)
            if i == 9:  # the first ten: then the baseline
                daemon.wait(lambda: done() >= 10, 3600, "ten results")
                early = dict(daemon.status()["worker_rss_bytes"])
            daemon.wait(lambda: len(list(layout.inbox.glob("*.jpg"))) < 20, 3600, "progress")
        daemon.wait(lambda: done() >= jobs, 3600, "all results")
        late = dict(daemon.status()["worker_rss_bytes"])
    finally:
        daemon.stop(timeout=STOP_SECONDS, force=True)  # SIGKILL of the group past it
    workers = []
    for pid, start in early.items():
        end = late.get(pid)
        workers.append(
            {
                "pid": int(pid),
                "rss_after_10_mib": round(start / 2**20, 1),
                "rss_after_all_mib": round(end / 2**20, 1) if end else None,
                "change": round((end - start) / start, 4) if end else None,
            }
        )
    flat = bool(workers) and all(
        w["change"] is not None and abs(w["change"]) <= 0.10 for w in workers
    )
    return {"jobs": jobs, "workers": workers, "flat_within_10_percent": flat}


def main() -> None:
    """Run the phases, print tables, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files", type=int, default=50, help="files in the bulk drop")
    parser.add_argument("--paced", type=int, default=12, help="files dropped one by one")
    parser.add_argument("--rss-jobs", type=int, default=1000, help="0 skips the memory phase")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/daemon.json")
    parser.add_argument("--keep-temp", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ocr-bench-daemon-"))
    report: dict[str, Any] = {"cpu_count": os.cpu_count(), "runs": []}
    try:
        for workers in args.workers:
            run = throughput_run(scratch / f"w{workers}", workers, args.files, args.paced)
            report["runs"].append(run)
        print("| workers | pages/s | bulk p50 s | bulk p95 s | latency p50 s | latency p95 s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for run in report["runs"]:
            print(
                f"| {run['workers']} | {run['pages_per_second']:.3f} | "
                f"{run['bulk_latency_p50_s']} | {run['bulk_latency_p95_s']} | "
                f"{run['latency_p50_s']} | {run['latency_p95_s']} |"
            )
        if args.rss_jobs:
            report["rss"] = rss_run(scratch / "rss", args.rss_jobs)
            print(f"\nworker RSS over {args.rss_jobs} jobs (2 workers):")
            print("| worker | after 10 jobs MiB | after all MiB | change |")
            print("| --- | --- | --- | --- |")
            for worker in report["rss"]["workers"]:
                change = worker["change"]
                shown = f"{change:+.1%}" if change is not None else "replaced"
                print(
                    f"| {worker['pid']} | {worker['rss_after_10_mib']} | "
                    f"{worker['rss_after_all_mib']} | {shown} |"
                )
            print(f"flat within 10%: {report['rss']['flat_within_10_percent']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    finally:
        if not args.keep_temp:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
