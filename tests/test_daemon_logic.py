"""The daemon's decisions without processes: the pure policy, then the daemon on a serial executor.

The serial executor runs the real engine in this process; faults (a worker that dies, a job
past its timeout, an executor that breaks) are injected by wrapping the real worker, the way
OCRmyPDF's tests plug in a crashing Tesseract.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_pipeline.audit import read_audit
from ocr_pipeline.claims import claim_file
from ocr_pipeline.cli import _cli_overrides, build_parser
from ocr_pipeline.daemon.policy import (
    Action,
    BeforeStart,
    Decision,
    JobEnd,
    after_job,
    before_start,
)
from ocr_pipeline.errors import ExecutorBrokenError, JobTimeoutError, WorkerLostError
from ocr_pipeline.executors import JobOutcome, JobRecipe
from ocr_pipeline.executors.worker import Worker
from ocr_pipeline.settings import Settings
from tests.receipts import Run, daemon_settings, matches_truth, receipt_header, run_serial

# ----------------------------------------------------------------- the pure policy


@pytest.mark.parametrize(
    ("attempts", "has_result", "expected"),
    [
        (0, False, BeforeStart.start),
        (1, False, BeforeStart.start),
        (2, False, BeforeStart.poison),  # two counted tries (worker died) saved, then a crash
        (2, True, BeforeStart.duplicate),  # a result of the same bytes wins over the count
        (0, True, BeforeStart.duplicate),
    ],
)
def test_before_start(attempts: int, has_result: bool, expected: BeforeStart) -> None:
    assert before_start(attempts, max_attempts=2, has_result=has_result) is expected


@pytest.mark.parametrize(
    ("end", "attempts", "draining", "expected"),
    [
        (JobEnd.succeeded, 1, False, Decision(Action.done, 1)),
        (JobEnd.succeeded, 1, True, Decision(Action.done, 1)),  # finished within the grace
        (JobEnd.raised, 0, False, Decision(Action.fail, 0)),
        (JobEnd.timed_out, 0, False, Decision(Action.fail, 1)),  # counted
        (JobEnd.worker_lost, 0, False, Decision(Action.retry, 1)),
        (JobEnd.worker_lost, 1, False, Decision(Action.poison, 2)),
        (JobEnd.worker_lost, 0, True, Decision(Action.release, 0)),  # killed by the drain
        (JobEnd.executor_broken, 0, False, Decision(Action.requeue, 0)),  # not the file's fault
        (JobEnd.executor_broken, 1, True, Decision(Action.release, 1)),
        (JobEnd.changed, 0, False, Decision(Action.release, 0)),  # writer still writing
        (JobEnd.stopped, 0, True, Decision(Action.release, 0)),  # stopped between pages
        (JobEnd.setup_failed, 1, False, Decision(Action.hold, 1)),  # models: daemon's fault
        (JobEnd.setup_failed, 1, True, Decision(Action.release, 1)),
        (JobEnd.cancelled, 1, True, Decision(Action.release, 1)),
        (JobEnd.cancelled, 0, True, Decision(Action.release, 0)),
    ],
)
def test_after_job(end: JobEnd, attempts: int, draining: bool, expected: Decision) -> None:
    assert after_job(end, attempts, max_attempts=2, draining=draining) == expected


# ----------------------------------------------------------------- the daemon, serially


def _drop(base: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = base / "inbox" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _audit(base: Path) -> list[dict[str, object]]:
    return read_audit(base / "logs" / "audit.jsonl")


def _events(base: Path, source: str) -> list[str]:
    return [str(r["event"]) for r in _audit(base) if r.get("source") == source]


def _faulty(fault: Callable[[JobRecipe], None]) -> Run:
    """A real worker that first lets ``fault`` raise for the recipes it chooses."""
    worker = Worker()

    def run(recipe: JobRecipe) -> JobOutcome:
        fault(recipe)
        return worker.run(recipe)

    return run


def test_real_ocr_then_duplicate_reuses_the_result(tmp_path: Path) -> None:
    png = receipt_header(0)
    _drop(tmp_path, {"a.png": png, "sub/copy.png": png, "b.png": b"not an image at all"})
    summary, _ = run_serial(daemon_settings(tmp_path))

    assert summary.done == ["a.png"] or summary.done == ["sub/copy.png"]
    assert len(summary.duplicates) == 1
    assert list(summary.failed) == ["b.png"]
    first = json.loads((tmp_path / "outbox" / "a.json").read_text(encoding="utf-8"))
    copy = json.loads((tmp_path / "outbox" / "sub" / "copy.json").read_text(encoding="utf-8"))
    assert copy["text"] == first["text"] and copy["source"]["relative_path"] == "sub/copy.png"
    assert matches_truth(first["text"], 0), first["text"]  # the header was really read
    assert (tmp_path / "outbox" / "a.txt").read_text(encoding="utf-8") == first["text"] + "\n"
    assert sorted(p.name for p in (tmp_path / "archive").rglob("*.png")) == ["a.png", "copy.png"]
    report = json.loads((tmp_path / "failed" / "b.png.error.json").read_text(encoding="utf-8"))
    assert report["error_type"] == "CorruptInputError" and "b.png" in report["message"]
    assert (tmp_path / "failed" / "b.png").read_bytes() == b"not an image at all"
    assert _events(tmp_path, "b.png") == ["claimed", "failed"]


def test_worker_lost_twice_is_poison_and_other_files_go_on(tmp_path: Path) -> None:
    _drop(tmp_path, {"poison.png": receipt_header(1), "good.png": receipt_header(2)})

    def die_on_poison(recipe: JobRecipe) -> None:
        if recipe.job.relative == "poison.png":
            raise WorkerLostError("worker died (exit code -9)", -9)

    summary, _ = run_serial(daemon_settings(tmp_path, max_attempts=2), _faulty(die_on_poison))

    assert summary.done == ["good.png"]
    assert list(summary.failed) == ["poison.png"]
    assert _events(tmp_path, "poison.png") == ["claimed", "retried", "failed"]
    report = json.loads((tmp_path / "failed" / "poison.png.error.json").read_text("utf-8"))
    assert report["error_type"] == "WorkerCrashedError" and report["attempts"] == 2
    assert "exit code -9" in report["message"] and "poison.png" in report["message"]
    assert (tmp_path / "failed" / "poison.png").read_bytes() == receipt_header(1)


def test_worker_lost_once_is_retried_and_succeeds(tmp_path: Path) -> None:
    _drop(tmp_path, {"flaky.png": receipt_header(3)})
    deaths: list[str] = []

    def die_once(recipe: JobRecipe) -> None:
        if not deaths:
            deaths.append(recipe.job.relative)
            raise WorkerLostError("worker died (exit code -11)", -11)

    summary, _ = run_serial(daemon_settings(tmp_path), _faulty(die_once))

    assert summary.done == ["flaky.png"] and deaths == ["flaky.png"]
    done = [r for r in _audit(tmp_path) if r["event"] == "done"]
    assert done[0]["attempt"] == 2


def test_timeout_fails_the_file_with_the_setting_to_raise(tmp_path: Path) -> None:
    _drop(tmp_path, {"slow.png": receipt_header(4)})

    def too_slow(recipe: JobRecipe) -> None:
        raise JobTimeoutError("the job ran past its timeout")

    summary, _ = run_serial(daemon_settings(tmp_path, job_timeout=5), _faulty(too_slow))

    message = summary.failed["slow.png"]
    assert "longer than 5 s" in message and "daemon.job_timeout" in message
    assert _events(tmp_path, "slow.png") == ["claimed", "failed"]


def test_broken_executor_is_restarted_and_the_try_not_counted(tmp_path: Path) -> None:
    _drop(tmp_path, {"a.png": receipt_header(5)})
    broken: list[bool] = []

    def break_once(recipe: JobRecipe) -> None:
        if not broken:
            broken.append(True)
            raise ExecutorBrokenError("the worker pool broke")

    summary, executors = run_serial(daemon_settings(tmp_path, max_attempts=1), _faulty(break_once))

    assert summary.done == ["a.png"]  # with max_attempts 1, a counted try would have failed it
    assert executors[0].restarts == 1
    done = [r for r in _audit(tmp_path) if r["event"] == "done"]
    assert done[0]["attempt"] == 2  # the second job started; only the first was lost


def test_daemon_killed_twice_mid_job_is_not_the_files_fault(tmp_path: Path) -> None:
    settings = daemon_settings(tmp_path, max_attempts=2, instance="t1")
    _drop(tmp_path, {"survivor.png": receipt_header(6)})
    work = tmp_path / "inbox" / ".ocr-pipeline" / "work" / "t1"
    work.mkdir(parents=True)
    claim = claim_file(tmp_path / "inbox", Path("survivor.png"), work)
    assert claim is not None
    claim.started = 2  # two jobs started, no end: the daemon itself was killed both times
    claim.save()

    summary, _ = run_serial(settings)

    assert summary.done == ["survivor.png"]
    assert _events(tmp_path, "survivor.png") == ["retried", "done"]
    done = [r for r in _audit(tmp_path) if r["event"] == "done"]
    assert done[0]["attempt"] == 3  # the third job started for it
    text = json.loads((tmp_path / "outbox" / "survivor.json").read_text("utf-8"))["text"]
    assert matches_truth(text, 6), text


def test_recovered_claim_with_its_counted_tries_used_up_is_poison(tmp_path: Path) -> None:
    settings = daemon_settings(tmp_path, max_attempts=2, instance="t1")
    _drop(tmp_path, {"killer.png": receipt_header(6)})
    work = tmp_path / "inbox" / ".ocr-pipeline" / "work" / "t1"
    work.mkdir(parents=True)
    claim = claim_file(tmp_path / "inbox", Path("killer.png"), work)
    assert claim is not None
    claim.attempts = 2  # its worker died twice; the daemon died before failing it
    claim.started = 2
    claim.save()
    ran: list[str] = []

    def never(recipe: JobRecipe) -> JobOutcome:
        ran.append(recipe.job.relative)
        raise AssertionError("a poison claim must not be started")

    summary, _ = run_serial(settings, never)

    assert ran == []
    assert "each of 2 tries" in summary.failed["killer.png"]
    assert _events(tmp_path, "killer.png") == ["retried", "failed"]
    assert list(work.iterdir()) == [work / ".lock"] or not any(work.iterdir())


def test_outputs_setting_chooses_the_files(tmp_path: Path) -> None:
    _drop(tmp_path, {"only-json.png": receipt_header(7)})
    settings = daemon_settings(tmp_path).model_copy(update={"outputs": ["json"]})
    summary, _ = run_serial(settings)
    assert summary.done == ["only-json.png"]
    written = sorted(p.name for p in (tmp_path / "outbox").iterdir() if p.is_file())
    assert written == ["only-json.json"]
    text = json.loads((tmp_path / "outbox" / "only-json.json").read_text("utf-8"))["text"]
    assert matches_truth(text, 7), text


def test_searchable_pdf_is_rendered_by_the_worker_and_written_by_the_daemon(
    tmp_path: Path,
) -> None:
    png = receipt_header(8)
    _drop(tmp_path, {"scan.png": png, "later/copy.png": png})
    outcomes: list[JobOutcome] = []
    worker = Worker()

    def run(recipe: JobRecipe) -> JobOutcome:
        outcomes.append(worker.run(recipe))
        return outcomes[-1]

    settings = daemon_settings(tmp_path).model_copy(update={"outputs": ["pdf", "json"]})
    summary, _ = run_serial(settings, run)

    assert len(outcomes) == 1 and len(summary.duplicates) == 1  # one OCR, one reuse
    (stem,) = summary.done
    rendered = outcomes[0].rendered
    assert list(rendered) == ["pdf"] and rendered["pdf"].startswith(b"%PDF-")
    written = tmp_path / "outbox" / Path(stem).with_suffix(".pdf")
    assert written.read_bytes() == rendered["pdf"]  # the worker's bytes, not rendered again
    duplicate = tmp_path / "outbox" / Path(summary.duplicates[0]).with_suffix(".pdf")
    assert duplicate.read_bytes().startswith(b"%PDF-")  # a reused result renders at write time


def test_output_flag_replaces_outputs_and_keeps_the_record() -> None:
    args = build_parser().parse_args(["run", "in", "out", "--output", "txt"])
    assert Settings(**_cli_overrides(args)).outputs == ["json", "txt"]
    args = build_parser().parse_args(["watch", "--output", "json"])
    assert Settings(**_cli_overrides(args)).outputs == ["json"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--output", "docx"])
