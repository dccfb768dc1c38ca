"""Run ``ocr-pipeline`` against a real two-node Ray cluster, with an optional fault, then stop.

Run by ``tests/test_ray_executor.py`` inside a private network namespace (``unshare -n``, where
127.0.0.1 is the only address: Ray otherwise picks the machine's own address). It starts a head
node and one worker node, each with 1 CPU (``ray.cluster_utils.Cluster``), runs the given
``ocr-pipeline`` command with ``--executor ray --ray-address`` of that cluster and, with
``--fault``, once ``--after`` files are done and jobs are in flight:

* ``kill-actor``: SIGKILLs one actor process (a pid from the daemon's status file);
* ``remove-node``: removes the worker node (its raylet and its actors end);
* ``sigterm``: sends SIGTERM to the daemon (``watch``), which drains;
* ``lose-cluster``: the cluster is a ``ray start --head`` node instead (2 CPUs); it is stopped
  (``ray stop --force``), the daemon's status file is read until it reports the executor's
  trouble, then the head is started again on the same port and the daemon goes on.

It prints one JSON line: the command's exit code and what the fault did.

    python tests/ray_cluster.py [--fault KIND --after N] -- ocr-pipeline run INBOX OUTBOX ...
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.cluster_utils import Cluster

DEADLINE_SECONDS = 600.0
"""Longest the command may run before it is killed (the test then fails), seconds."""
HEAD_PORT = 6390
"""GCS port of the ``ray start --head`` node of the lose-cluster fault (inside the namespace)."""

Step = Callable[[dict[str, Any], dict[str, Any], subprocess.Popen[bytes]], None]
"""Called every 0.1 s with the daemon's status, the report so far and the daemon process."""


def read_status(outbox: Path) -> dict[str, Any]:
    try:
        status = json.loads((outbox / ".ocr-pipeline" / "status.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def done_count(status: dict[str, Any]) -> int:
    jobs = status.get("jobs")
    return int(jobs.get("done", 0)) if isinstance(jobs, dict) else 0


def due(status: dict[str, Any], report: dict[str, Any], after: int) -> bool:
    """True once, when ``after`` files are done and jobs are in flight: the fault's moment."""
    if "fault" in report or done_count(status) < after or not status.get("in_flight"):
        return False
    report["done_before_fault"] = done_count(status)
    return True


def drive(command: list[str], address: str, outbox: Path, step: Step, **env: str) -> dict[str, Any]:
    """Run the daemon against ``address``, calling ``step`` until it exits (or the deadline)."""
    report: dict[str, Any] = {"address": address}
    environment = dict(os.environ, OCR_PIPELINE_DAEMON__STATUS_SECONDS="0.2", **env)
    daemon = subprocess.Popen(
        [*command, "--executor", "ray", "--ray-address", address], env=environment
    )
    started = time.monotonic()
    while daemon.poll() is None and time.monotonic() - started < DEADLINE_SECONDS:
        step(read_status(outbox), report, daemon)
        time.sleep(0.1)  # polling the status file the daemon rewrites; bounded by the deadline
    if daemon.poll() is None:
        daemon.kill()
        report["killed_after_deadline"] = True
    report["returncode"] = daemon.wait()
    return report


def on_two_nodes(command: list[str], outbox: Path, fault: str | None, after: int) -> dict[str, Any]:
    """A head and a worker node (``Cluster``, 1 CPU each), and one of the node faults."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker_node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()

    def step(status: dict[str, Any], report: dict[str, Any], daemon: Any) -> None:
        if not fault or not due(status, report, after):
            return
        report["fault"] = fault
        if fault == "kill-actor":
            pids = status.get("worker_pids") or []
            assert pids, status
            os.kill(int(pids[-1]), signal.SIGKILL)
            report["killed_pid"] = int(pids[-1])
        elif fault == "remove-node":
            cluster.remove_node(worker_node, allow_graceful=False)
        elif fault == "sigterm":
            daemon.send_signal(signal.SIGTERM)

    try:
        return drive(command, cluster.address, outbox, step)
    finally:
        cluster.shutdown()


TOKEN_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
"""Ray's token authentication (the default of a ``ray start`` cluster from Ray 2.59 when a token
exists), with the token in the environment of the nodes and of the daemon alike."""


def ray_cli(*arguments: str) -> None:
    """Run the ``ray`` command of this environment (``ray start``, ``ray stop``)."""
    ray = Path(sys.executable).with_name("ray")
    env = dict(os.environ, **TOKEN_AUTH)
    subprocess.run([str(ray), *arguments], check=True, capture_output=True, timeout=120, env=env)


def lose_cluster(command: list[str], outbox: Path, after: int) -> dict[str, Any]:
    """Stop the whole cluster mid-run, wait for the daemon to report it, start it again.

    The cluster uses token authentication, as a ``ray start`` cluster does by default.
    """
    head = ["start", "--head", f"--port={HEAD_PORT}", "--num-cpus=2", "--disable-usage-stats"]
    ray_cli(*head)

    def step(status: dict[str, Any], report: dict[str, Any], daemon: Any) -> None:
        if due(status, report, after):
            report["fault"] = "lose-cluster"
            ray_cli("stop", "--force")
        elif "fault" in report and "trouble" not in report and status.get("executor_trouble"):
            report["trouble"] = status["executor_trouble"]
            ray_cli(*head)

    try:
        address = f"127.0.0.1:{HEAD_PORT}"
        reconnect = {"OCR_PIPELINE_RAY__RECONNECT_MAX_SECONDS": "2"}
        return drive(command, address, outbox, step, **reconnect, **TOKEN_AUTH)
    finally:
        ray_cli("stop", "--force")


def main() -> int:
    parser = argparse.ArgumentParser()
    faults = ["kill-actor", "remove-node", "sigterm", "lose-cluster"]
    parser.add_argument("--fault", choices=faults)
    parser.add_argument("--after", type=int, default=2, help="files done before the fault")
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"]
    if args.fault == "lose-cluster":
        report = lose_cluster(command, args.outbox, args.after)
    else:
        report = on_two_nodes(command, args.outbox, args.fault, args.after)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
