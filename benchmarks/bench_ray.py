"""The Ray executor against the local one on the same CPUs, and its scaling from 1 to 2 nodes.

``ocr-pipeline run`` OCRs the first N sroie-dev receipts three ways, alternated per round:

* ``local``: the local executor with its defaults (one worker per CPU);
* ``ray-2-nodes``: ``--executor ray`` on a Ray cluster of two nodes on this machine (head and
  one worker node, 1 CPU each: one actor per node);
* ``ray-1-node``: the same with the head node alone (1 CPU, one actor).

Pages per second are steady-state figures from the audit log: after the first result of each
worker (loading and warming up the models are not counted), ``(N - k) / (t_last - t_k)`` where
``t_k`` is the time of the k-th ``done`` record and k the number of workers or actors. The
clusters run in a private network namespace where 127.0.0.1 is the only address (Ray otherwise
picks the machine's own address); the script re-runs itself inside one (``unshare -n``, root).

    .venv/bin/python -m benchmarks.bench_ray [--files 30] [--rounds 2]

It prints a table and writes ``benchmarks/results/ray.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEV_IMAGES = REPO.parent / "shared" / "data" / "sroie-dev" / "images"
RESULTS = REPO / "benchmarks" / "results" / "ray.json"
NAMESPACE_FLAG = "OCR_PIPELINE_BENCH_PRIVATE_NET"
RUN_SECONDS = 1800


def in_private_namespace() -> None:
    """Run this script again inside ``unshare -n`` with the loopback up, unless already there."""
    if os.environ.get(NAMESPACE_FLAG):
        return
    from tests.netns import PRIVATE_NETWORK

    command = [
        *PRIVATE_NETWORK,
        sys.executable,
        "-m",
        "benchmarks.bench_ray",
        *sys.argv[1:],
    ]
    env = dict(os.environ, **{NAMESPACE_FLAG: "1"})
    raise SystemExit(subprocess.run(command, cwd=REPO, env=env, check=False).returncode)


def steady_rate(audit: Path, workers: int) -> float:
    """Pages per second after each worker's first result (one page per receipt)."""
    times = sorted(
        datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
        for record in map(json.loads, audit.read_text(encoding="utf-8").splitlines())
        if record.get("event") == "done"
    )
    after = len(times) - workers
    return after / (times[-1] - times[workers - 1])


def run_once(base: Path, names: list[Path], executor: list[str]) -> tuple[float, float]:
    """OCR ``names`` with ``ocr-pipeline run`` and ``executor``; (steady pages/s, wall s)."""
    shutil.rmtree(base, ignore_errors=True)
    inbox = base / "inbox"
    inbox.mkdir(parents=True)
    for path in names:
        shutil.copy(path, inbox / path.name)
    env = dict(os.environ, OCR_PIPELINE_LOG__LEVEL="warning")
    command = [sys.executable, "-m", "ocr_pipeline.cli", "run", str(inbox), str(base / "outbox")]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *executor], env=env, timeout=RUN_SECONDS, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(executor) or 'local'} failed:\n{done.stderr[-3000:]}")
    workers = 1 if "1-node" in str(base) else 2
    return steady_rate(base / "logs" / "audit.jsonl", workers), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    in_private_namespace()
    from ray.cluster_utils import Cluster

    names = sorted(DEV_IMAGES.glob("*.jpg"))[: args.files]
    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    two = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    two.add_node(num_cpus=1)
    two.wait_for_nodes()
    rates: dict[str, list[float]] = {"local": [], "ray-2-nodes": [], "ray-1-node": []}
    walls: dict[str, list[float]] = {key: [] for key in rates}
    try:
        for number in range(args.rounds):
            for key in rates:
                if key == "local":
                    executor: list[str] = []
                    rate, wall = run_once(scratch / key, names, executor)
                elif key == "ray-2-nodes":
                    executor = ["--executor", "ray", "--ray-address", two.address]
                    rate, wall = run_once(scratch / key, names, executor)
                else:
                    one = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
                    try:
                        executor = ["--executor", "ray", "--ray-address", one.address]
                        rate, wall = run_once(scratch / key, names, executor)
                    finally:
                        one.shutdown()
                rates[key].append(rate)
                walls[key].append(wall)
                print(f"round {number + 1}: {key}: {rate:.3f} pages/s, wall {wall:.1f} s")
    finally:
        two.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    median = {key: round(statistics.median(values), 3) for key, values in rates.items()}
    ratios = [r / local for r, local in zip(rates["ray-2-nodes"], rates["local"], strict=True)]
    scaling = [
        both / single
        for both, single in zip(rates["ray-2-nodes"], rates["ray-1-node"], strict=True)
    ]
    report: dict[str, Any] = {
        "command": ".venv/bin/python -m benchmarks.bench_ray",
        "files": args.files,
        "rounds": args.rounds,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "pages_per_second": median,
        "pages_per_second_by_round": rates,
        "wall_seconds_by_round": walls,
        "ray_over_local": round(statistics.median(ratios), 3),
        "ray_over_local_by_round": [round(r, 3) for r in ratios],
        "scaling_1_to_2_nodes": round(statistics.median(scaling), 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\n{args.files} receipts, {args.rounds} rounds, steady-state pages per second:")
    print("| executor | pages/s (median) |")
    print("| --- | --- |")
    for key, value in median.items():
        print(f"| {key} | {value:.3f} |")
    print(f"Ray (2 nodes x 1 CPU) over local (2 CPUs): {report['ray_over_local']:.3f}")
    print(f"scaling from 1 to 2 nodes: {report['scaling_1_to_2_nodes']:.3f}x")
    print(f"written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
