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

    .venv/bin/python benchmarks/bench_daemon.py [--workers 1 2] [--rss-jobs 1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEV_IMAGES = REPO.parent / "shared" / "data" / "sroie-dev" / "images"
ENV = {
    "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0.5",
    "OCR_PIPELINE_DAEMON__STATUS_SECONDS": "1",
    "OCR_PIPELINE_LOG__LEVEL": "warning",
}


class Daemon:
    """``ocr-pipeline watch`` on ``base/inbox`` and ``base/outbox`` in its own process group."""

    def __init__(self, base: Path, workers: int) -> None:
        self.base = base
        self.inbox = base / "inbox"
        self.outbox = base / "outbox"
        self.inbox.mkdir(parents=True)
        self.audit = base / "logs" / "audit.jsonl"
        self.status_file = self.outbox / ".ocr-pipeline" / "status.json"
        env = {**os.environ, **ENV, "OCR_PIPELINE_DAEMON__WORKERS": str(workers)}
        command = [sys.executable, "-m", "ocr_pipeline.cli", "watch", str(self.inbox)]
        self.log = (base / "daemon.log").open("wb")
        self.proc = subprocess.Popen(
            [*command, str(self.outbox)],
            env=env,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        self.wait(lambda: self.status().get("state") == "running", 120, "start")

    def status(self) -> dict[str, Any]:
        """The daemon's heartbeat (empty until written)."""
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data

    def done_times(self) -> dict[str, float]:
        """Source -> Unix time of its ``done`` record."""
        times = {}
        if self.audit.is_file():
            for line in self.audit.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record["event"] == "done":
                    stamp = datetime.datetime.fromisoformat(record["time"])
                    times[record["source"]] = stamp.timestamp()
        return times

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Poll ``predicate`` every 0.1 s; raise if the daemon exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon: no {what} (see {self.base / 'daemon.log'})")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of the process group after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def variant(source: Path, tag: int) -> bytes:
    """The JPEG's bytes with ``tag`` appended after the end-of-image marker."""
    return source.read_bytes() + f"ocr-pipeline-bench-{tag}".encode()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile, ``share`` in 0..1."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def throughput_run(base: Path, workers: int, files: int, paced: int) -> dict[str, Any]:
    """Phases 1 and 2 for one worker count."""
    images = sorted(DEV_IMAGES.glob("*.jpg"))
    daemon = Daemon(base, workers)
    try:
        staging = base / "staging"
        staging.mkdir()
        names = [f"bulk-{i:04d}.jpg" for i in range(files)]
        for i, name in enumerate(names):
            (staging / name).write_bytes(variant(images[i % len(images)], i))
        dropped = time.time()
        for name in names:
            os.rename(staging / name, daemon.inbox / name)
        daemon.wait(lambda: len(daemon.done_times()) >= files, 3600, "bulk results")
        done = daemon.done_times()
        elapsed = max(done.values()) - dropped
        bulk_latency = [done[name] - dropped for name in names]
        pages_per_second = files / elapsed

        interval = 2.0 / pages_per_second
        drops: dict[str, float] = {}
        for i in range(paced):
            name = f"paced-{i:04d}.jpg"
            (staging / name).write_bytes(variant(images[i % len(images)], 10_000 + i))
            drops[name] = time.time()
            os.rename(staging / name, daemon.inbox / name)
            time.sleep(interval)
        daemon.wait(lambda: len(daemon.done_times()) >= files + paced, 3600, "paced results")
        done = daemon.done_times()
        paced_latency = [done[name] - drops[name] for name in drops]
    finally:
        daemon.stop()
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
    daemon = Daemon(base, 2)
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
            os.rename(staging / name, daemon.inbox / name)
            if i == 9:  # the first ten: then the baseline
                daemon.wait(lambda: done() >= 10, 3600, "ten results")
                early = dict(daemon.status()["worker_rss_bytes"])
            daemon.wait(lambda: len(list(daemon.inbox.glob("*.jpg"))) < 20, 3600, "progress")
        daemon.wait(lambda: done() >= jobs, 3600, "all results")
        late = dict(daemon.status()["worker_rss_bytes"])
    finally:
        daemon.stop()
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
