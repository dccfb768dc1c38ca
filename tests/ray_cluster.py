"""Run ``ocr-pipeline`` against a real two-node Ray cluster, with an optional fault, then stop.

Run by ``tests/test_ray_executor.py`` inside a private network namespace (``unshare -n``, where
127.0.0.1 is the only address: Ray otherwise picks the machine's own address). It starts a head
node and one worker node, each with 1 CPU (``ray.cluster_utils.Cluster``), runs the given
``ocr-pipeline`` command with ``--executor ray --ray-address`` of that cluster and, with
``--fault``, once ``--after`` files are done and jobs are in flight:

* ``kill-actor``: SIGKILLs one actor process (a pid from the daemon's status file);
* ``remove-node``: removes the worker node (its raylet and its actors end);
* ``sigterm``: sends SIGTERM to the daemon (``watch``), which drains.

It prints one JSON line: the command's exit code and what the fault did.

    python tests/ray_cluster.py [--fault KIND --after N] -- ocr-pipeline run INBOX OUTBOX ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ray.cluster_utils import Cluster

DEADLINE_SECONDS = 600.0
"""Longest the command may run before it is killed (the test then fails), seconds."""


def read_status(outbox: Path) -> dict[str, object]:
    try:
        status = json.loads((outbox / ".ocr-pipeline" / "status.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def done_count(status: dict[str, object]) -> int:
    jobs = status.get("jobs")
    return int(jobs.get("done", 0)) if isinstance(jobs, dict) else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", choices=["kill-actor", "remove-node", "sigterm"])
    parser.add_argument("--after", type=int, default=2, help="files done before the fault")
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"]

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker_node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    report: dict[str, object] = {"address": cluster.address}
    env = dict(os.environ, OCR_PIPELINE_DAEMON__STATUS_SECONDS="0.2")
    daemon = subprocess.Popen(
        [*command, "--executor", "ray", "--ray-address", cluster.address], env=env
    )
    started = time.monotonic()
    try:
        while daemon.poll() is None and time.monotonic() - started < DEADLINE_SECONDS:
            status = read_status(args.outbox)
            ready = done_count(status) >= args.after and status.get("in_flight")
            if args.fault and "fault" not in report and ready:
                report["fault"] = args.fault
                report["done_before_fault"] = done_count(status)
                if args.fault == "kill-actor":
                    pids = status.get("worker_pids") or []
                    assert isinstance(pids, list) and pids, status
                    os.kill(int(pids[-1]), signal.SIGKILL)
                    report["killed_pid"] = int(pids[-1])
                elif args.fault == "remove-node":
                    cluster.remove_node(worker_node, allow_graceful=False)
                elif args.fault == "sigterm":
                    daemon.send_signal(signal.SIGTERM)
            time.sleep(0.1)
        if daemon.poll() is None:
            daemon.kill()
            report["killed_after_deadline"] = True
        report["returncode"] = daemon.wait()
    finally:
        cluster.shutdown()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
