"""The Ray executor on a real two-node Ray cluster on this machine, with real receipts.

Each cluster runs in a private network namespace (``unshare -n``, 127.0.0.1 only): Ray picks
the machine's own address even when told 127.0.0.1, and no traffic may go there.
``tests/ray_cluster.py`` starts the cluster (head and one worker node, 1 CPU each), runs the
daemon with ``--executor ray`` against it, applies a fault, and prints a JSON summary; the tests
assert on that summary, the outbox, failed/, the inbox and the audit log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocr_pipeline.audit import read_audit
from ocr_pipeline.executors import Job, JobRecipe
from ocr_pipeline.executors.ray_dispatch import OcrActor, actor_settings, pool_size
from ocr_pipeline.settings import Settings
from tests.conftest import SROIE_DEV
from tests.netns import PRIVATE_NETWORK, private_network_problem

HARNESS = Path(__file__).with_name("ray_cluster.py")
HARNESS_SECONDS = 900
"""Bound on one harness run (cluster start, OCR, fault, shutdown), seconds."""


def _unavailable() -> str | None:
    """Why a Ray cluster cannot run here, or ``None``."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'ocr-pipeline[ray]')"
    return private_network_problem()


@pytest.fixture(scope="module")
def cluster_possible() -> None:
    """Skip, saying why, where no Ray cluster can run (Ray missing, no network namespace)."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)


def _cli() -> list[str]:
    return [sys.executable, "-m", "ocr_pipeline.cli"]


def _folders(base: Path) -> list[str]:
    """INBOX and OUTBOX under ``base``, as command arguments."""
    return [str(base / "inbox"), str(base / "outbox")]


def _receipts(inbox: Path, count: int, first: int = 0) -> list[str]:
    inbox.mkdir(parents=True, exist_ok=True)
    names = []
    for path in sorted((SROIE_DEV / "images").glob("*.jpg"))[first : first + count]:
        shutil.copy(path, inbox / path.name)
        names.append(path.name)
    return names


def _on_cluster(
    outbox: Path, command: list[str], fault: str | None = None, **env: str
) -> dict[str, Any]:
    """Run ``command`` against a fresh two-node cluster in a private network namespace."""
    options = ["--outbox", str(outbox)]
    if fault:
        options += ["--fault", fault, "--after", "2"]
    done = subprocess.run(
        [
            *PRIVATE_NETWORK,
            sys.executable,
            str(HARNESS),
            *options,
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=HARNESS_SECONDS,
        env=dict(os.environ, OCR_PIPELINE_LOG__FORMAT="json", **env),
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, (
        f"harness exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\n"
        f"stderr:\n{done.stderr[-4000:]}"
    )
    summary: dict[str, Any] = json.loads(lines[-1])
    summary["stderr"] = done.stderr
    return summary


def _lines(outbox: Path, name: str) -> list[tuple[str, Any]]:
    result = json.loads((outbox / f"{Path(name).stem}.json").read_text(encoding="utf-8"))
    return [(line["text"], line["box"]) for page in result["pages"] for line in page["lines"]]


def _terminal_states(base: Path, names: list[str]) -> dict[str, list[str]]:
    """Where each file ended: ``done`` (a result), ``failed``, ``inbox`` (given back)."""
    states: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        if (base / "outbox" / f"{Path(name).stem}.json").is_file():
            states[name].append("done")
        if (base / "failed" / name).is_file():
            states[name].append("failed")
        if (base / "inbox" / name).is_file():
            states[name].append("inbox")
    return states


def _each_done_exactly_once(base: Path, names: list[str]) -> list[dict[str, Any]]:
    """Assert every file has a result and one ``done`` record; return the audit log."""
    states = _terminal_states(base, names)
    assert all(found == ["done"] for found in states.values()), states
    audit = read_audit(base / "logs" / "audit.jsonl")
    done = [record["source"] for record in audit if record.get("event") == "done"]
    assert sorted(done) == sorted(names), "each file done exactly once"
    return audit


@pytest.mark.daemon
@pytest.mark.usefixtures("cluster_possible")
def test_ray_run_gives_the_local_executors_results(tmp_path: Path) -> None:
    """20 receipts on two 1-CPU nodes: the same text and boxes as the local executor's."""
    local, clustered = tmp_path / "local", tmp_path / "ray"
    names = _receipts(local / "inbox", 20)
    _receipts(clustered / "inbox", 20)
    threads = dict(os.environ, OCR_PIPELINE_RUNTIME__INTRA_OP_THREADS="1")
    run_local = subprocess.run(
        [*_cli(), "run", *_folders(local), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=HARNESS_SECONDS,
        env=threads,
        check=False,
    )
    assert run_local.returncode == 0, run_local.stderr[-3000:]
    command = [*_cli(), "run", *_folders(clustered)]
    summary = _on_cluster(clustered / "outbox", command)
    assert summary["returncode"] == 0, summary["stderr"][-4000:]
    for name in names:
        assert _lines(clustered / "outbox", name) == _lines(local / "outbox", name), name
    workers = {
        record.get("worker_pid")
        for record in read_audit(clustered / "logs" / "audit.jsonl")
        if record.get("event") == "done"
    }
    assert len(workers) == 2, f"both actors (one per node) took jobs: {workers}"


@pytest.mark.daemon
@pytest.mark.usefixtures("cluster_possible")
@pytest.mark.parametrize("fault", ["kill-actor", "remove-node"])
def test_a_lost_actor_or_node_costs_a_retry_not_a_file(tmp_path: Path, fault: str) -> None:
    """Mid-run, an actor's process is killed or the worker node removed: one state per file."""
    names = _receipts(tmp_path / "inbox", 8)
    command = [*_cli(), "run", *_folders(tmp_path)]
    summary = _on_cluster(tmp_path / "outbox", command, fault)
    assert summary.get("fault") == fault, summary
    assert summary["returncode"] == 0, summary["stderr"][-4000:]
    audit = _each_done_exactly_once(tmp_path, names)
    retried = [record for record in audit if record.get("event") == "retried"]
    assert retried, "the audit log shows the job that was running on the lost actor, retried"
    assert all("died" in record["message"] for record in retried), retried


@pytest.mark.daemon
@pytest.mark.usefixtures("cluster_possible")
def test_the_default_address_starts_a_private_cluster_for_the_run(tmp_path: Path) -> None:
    """``--executor ray`` alone: a cluster inside the daemon, gone when the run ends."""
    names = _receipts(tmp_path / "inbox", 3)
    done = subprocess.run(
        [*PRIVATE_NETWORK, *_cli(), "run", *_folders(tmp_path), "--executor", "ray"],
        capture_output=True,
        text=True,
        timeout=HARNESS_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert all(found == ["done"] for found in _terminal_states(tmp_path, names).values())
    assert "Ray actors ready" in done.stderr


@pytest.mark.daemon
@pytest.mark.usefixtures("cluster_possible")
def test_a_job_past_the_timeout_fails_its_file_and_its_actor_is_replaced(tmp_path: Path) -> None:
    """``daemon.job_timeout`` holds on Ray too: the file goes to failed/ with a timeout report."""
    names = _receipts(tmp_path / "inbox", 2)
    command = [*_cli(), "run", *_folders(tmp_path)]
    summary = _on_cluster(tmp_path / "outbox", command, OCR_PIPELINE_DAEMON__JOB_TIMEOUT="0.3")
    assert summary["returncode"] == 1, summary["stderr"][-4000:]
    states = _terminal_states(tmp_path, names)
    assert all(found == ["failed"] for found in states.values()), states
    for name in names:
        report = json.loads((tmp_path / "failed" / f"{name}.error.json").read_text("utf-8"))
        assert report["error_type"] == "JobTimeoutError", report
        assert "daemon.job_timeout" in report["message"], report


@pytest.mark.daemon
@pytest.mark.usefixtures("cluster_possible")
def test_a_lost_cluster_keeps_the_files_claimed_until_it_is_back(tmp_path: Path) -> None:
    """The whole cluster stops mid-run: health says so, nothing fails, all done once it is back."""
    names = _receipts(tmp_path / "inbox", 8)
    command = [*_cli(), "run", *_folders(tmp_path)]
    summary = _on_cluster(tmp_path / "outbox", command, "lose-cluster")
    assert summary.get("fault") == "lose-cluster", summary
    assert "lost the Ray cluster" in summary.get("trouble", ""), summary
    assert summary["returncode"] == 0, summary["stderr"][-4000:]
    audit = _each_done_exactly_once(tmp_path, names)
    assert not [r for r in audit if r.get("event") in ("retried", "failed")], (
        "a lost cluster is not the files' fault: no try is counted"
    )
    assert "Ray cluster lost; files stay claimed" in summary["stderr"]


@pytest.mark.daemon
@pytest.mark.usefixtures("cluster_possible")
def test_watch_on_ray_picks_up_files_and_drains_on_sigterm(tmp_path: Path) -> None:
    """``watch --executor ray``: dropped files are OCRed; SIGTERM drains; nothing is lost."""
    names = _receipts(tmp_path / "inbox", 6)
    command = [*_cli(), "watch", *_folders(tmp_path)]
    summary = _on_cluster(tmp_path / "outbox", command, "sigterm")
    assert summary.get("fault") == "sigterm", summary
    assert summary["returncode"] == 0, summary["stderr"][-4000:]
    states = _terminal_states(tmp_path, names)
    assert all(len(found) == 1 for found in states.values()), states
    assert sum(found == ["done"] for found in states.values()) >= 2, states


def test_ray_executor_without_ray_stops_at_start_naming_the_install(tmp_path: Path) -> None:
    """With Ray not importable, ``--executor ray`` exits at start, before claiming anything."""
    names = _receipts(tmp_path / "inbox", 1)
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from ocr_pipeline.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "run", *_folders(tmp_path), "--executor", "ray"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "pip install 'ocr-pipeline[ray]'" in done.stderr, done.stderr[-2000:]
    assert (tmp_path / "inbox" / names[0]).is_file(), "the file stays in the inbox"


def test_an_actor_reads_the_bytes_it_is_sent_not_the_daemons_path(
    tmp_path: Path, settings: Settings
) -> None:
    """A worker node has no shared folder: the actor OCRs the bytes, saved in its own folder."""
    receipt = SROIE_DEV / "images" / "001.jpg"
    actor = OcrActor(actor_settings(settings), 0)
    job = Job(path=tmp_path / "gone" / "001.jpg", relative="sub/001.jpg", sha256="0" * 64)
    recipe = JobRecipe(job=job, settings=actor_settings(settings), generation=0)
    outcome = actor.run(job.path.name, receipt.read_bytes(), recipe)
    assert outcome.result.source.relative_path == "sub/001.jpg"
    assert "TOTAL" in outcome.result.text.upper()
    assert outcome.result.source.bytes == receipt.stat().st_size
    assert list(actor._folder.iterdir()) == [], "the saved bytes are removed after the job"


def test_the_pool_fills_the_cluster_and_actors_take_their_cpus_in_threads(
    settings: Settings,
) -> None:
    assert pool_size(settings.ray, 2.0) == 2
    assert pool_size(settings.ray.model_copy(update={"cpus_per_actor": 2}), 5.0) == 2
    assert pool_size(settings.ray.model_copy(update={"actors": 3}), 2.0) == 3
    assert pool_size(settings.ray, 0.0) == 1
    threads = settings.model_copy(
        update={"runtime": settings.runtime.model_copy(update={"intra_op_threads": 0})}
    )
    assert actor_settings(threads).runtime.intra_op_threads == settings.ray.cpus_per_actor
