"""Hostile files and a hostile disk: each fault stays with its file, and the daemon goes on.

In-process tests run the daemon with the real engine on a serial executor; the crash, full-disk
and permission tests run the real command in its own process. After each case every input has
exactly one terminal audit record and the work folder holds nothing a restart would retry.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from ocr_pipeline.audit import read_audit
from ocr_pipeline.daemon.terminal import KILL_AT_ENV
from ocr_pipeline.executors import JobOutcome, JobRecipe
from ocr_pipeline.executors.worker import Worker
from tests.conftest import SROIE_DEV
from tests.daemon_harness import FAST_ENV, DaemonProcess, Layout, run_cli
from tests.receipts import daemon_settings, matches_truth, receipt_header, run_serial

TERMINAL = {"done", "failed", "duplicate"}


def _terminal_records(base: Path) -> dict[str, list[str]]:
    """Inbox-relative source -> its terminal events, in order."""
    records: dict[str, list[str]] = {}
    for record in read_audit(base / "logs" / "audit.jsonl"):
        if record["event"] in TERMINAL:
            records.setdefault(str(record["source"]), []).append(str(record["event"]))
    return records


def _work_entries(inbox: Path) -> list[Path]:
    """Everything in the work folders but their locks (claims a restart would retry)."""
    work = inbox / ".ocr-pipeline" / "work"
    return [p for p in work.rglob("*") if p.name != ".lock" and not p.is_dir()]


def _report(base: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (base / "failed" / f"{name}.error.json").read_text("utf-8")
    )
    return data


def _rchar() -> int:
    """Bytes this process has read so far (``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


# ----------------------------------------------------------------- links, special files, sizes


def test_symlink_goes_to_failed_with_the_policy_and_its_target_is_never_read(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(receipt_header(1))  # a readable receipt: reading it would OCR it
    secret.chmod(0o600)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "link.png").symlink_to(secret)
    (inbox / "dangling.png").symlink_to("../nowhere/gone.png")
    (inbox / "good.png").write_bytes(receipt_header(2))

    summary, _ = run_serial(daemon_settings(tmp_path))

    assert summary.done == ["good.png"]
    assert sorted(summary.failed) == ["dangling.png", "link.png"]
    for name in ("link.png", "dangling.png"):
        report = _report(tmp_path, name)
        assert report["error_type"] == "SymlinkRefusedError"
        assert "daemon.follow_symlinks" in str(report["message"])
        assert (tmp_path / "failed" / name).is_symlink()  # the link itself, not a copy
    assert not (tmp_path / "outbox" / "link.json").exists()
    assert _terminal_records(tmp_path) == {
        "good.png": ["done"],
        "link.png": ["failed"],
        "dangling.png": ["failed"],
    }
    assert _work_entries(inbox) == []


def test_followed_symlink_is_read_only_on_the_inbox_file_system(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system at /dev/shm to link to")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    near = tmp_path / "near.png"
    near.write_bytes(receipt_header(3))
    far = shm / f"ocr-pipeline-test-{os.getpid()}.png"
    far.write_bytes(receipt_header(4))
    try:
        (inbox / "near.png").symlink_to(near)
        (inbox / "far.png").symlink_to(far)

        summary, _ = run_serial(daemon_settings(tmp_path, follow_symlinks=True))
    finally:
        far.unlink(missing_ok=True)

    assert summary.done == ["near.png"]
    text = json.loads((tmp_path / "outbox" / "near.json").read_text("utf-8"))["text"]
    assert matches_truth(text, 3), text
    report = _report(tmp_path, "far.png")
    assert report["error_type"] == "SymlinkRefusedError"
    assert "another file system" in str(report["message"])


def test_fifo_and_sparse_giant_are_refused_without_being_read(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.mkfifo(inbox / "pipe.jpg")  # opening it for reading would block the daemon forever
    with (inbox / "huge.pdf").open("wb") as handle:
        handle.truncate(50 * 1024**3)  # 50 GB, sparse: reading it whole takes over a minute
    (inbox / "good.png").write_bytes(receipt_header(5))
    read_before = _rchar()

    summary, _ = run_serial(daemon_settings(tmp_path))

    assert _rchar() - read_before < 200 * 1024**2  # the models and the receipt, not 50 GB
    assert summary.done == ["good.png"]
    assert _report(tmp_path, "pipe.jpg")["error_type"] == "UnreadableInputError"
    huge = _report(tmp_path, "huge.pdf")
    assert huge["error_type"] == "InputTooLargeError"
    assert "decode.max_bytes" in str(huge["message"])
    assert (tmp_path / "failed" / "huge.pdf").stat().st_size == 50 * 1024**3  # kept, not lost
    assert set(_terminal_records(tmp_path)) == {"pipe.jpg", "huge.pdf", "good.png"}
    assert _work_entries(inbox) == []


def test_unreadable_file_goes_to_failed_with_what_to_do(tmp_path: Path) -> None:
    """Run the real command; as root, without the capabilities that let root read anything."""
    layout = Layout(tmp_path)
    unreadable = layout.inbox / "locked.png"
    unreadable.write_bytes(receipt_header(6))
    (layout.inbox / "good.png").write_bytes(receipt_header(7))
    unreadable.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: root reads any file")
        os.chown(unreadable, 65534, 65534)  # owned by nobody: root without DAC caps cannot read
        dropped = "-dac_override,-dac_read_search"
        prefix = [setpriv, "--bounding-set", dropped, "--inh-caps", dropped, "--"]
    env = {**FAST_ENV, "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0"}

    finished = run_cli(["run", layout.inbox, layout.outbox], env=env, prefix=prefix)

    assert finished.returncode == 1, finished.stderr[-3000:]
    report = _report(tmp_path, "locked.png")
    assert report["error_type"] == "UnreadableInputError"
    assert "read permission" in str(report["message"])
    assert _terminal_records(tmp_path) == {"locked.png": ["failed"], "good.png": ["done"]}
    assert _work_entries(layout.inbox) == []


# ----------------------------------------------------------------- writers, bugs, crashes


def test_file_changed_after_its_claim_is_released_then_read_whole(tmp_path: Path) -> None:
    """A writer still writing through its open descriptor after the claim's rename."""
    png = receipt_header(8)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "slow.png").write_bytes(png[: len(png) // 3])
    worker = Worker()
    tries: list[int] = []

    def writer_finishes_during_the_first_try(recipe: JobRecipe) -> JobOutcome:
        tries.append(recipe.job.path.stat().st_size)
        try:
            return worker.run(recipe)
        finally:
            if len(tries) == 1:
                recipe.job.path.write_bytes(png)  # the rest arrives while the job fails

    summary, _ = run_serial(daemon_settings(tmp_path), writer_finishes_during_the_first_try)

    assert tries == [len(png) // 3, len(png)]
    assert summary.done == ["slow.png"] and not summary.failed
    events = [r["event"] for r in read_audit(tmp_path / "logs" / "audit.jsonl") if r.get("source")]
    assert events == ["claimed", "released", "claimed", "done"]
    text = json.loads((tmp_path / "outbox" / "slow.json").read_text("utf-8"))["text"]
    assert matches_truth(text, 8), text


def test_an_unexpected_error_stays_with_its_file(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a-bad.png").write_bytes(receipt_header(9))
    (inbox / "b-good.png").write_bytes(receipt_header(10))
    worker = Worker()

    def broken_outcome_for_one(recipe: JobRecipe) -> JobOutcome:
        outcome = worker.run(recipe)
        if "bad" in recipe.job.relative:
            return JobOutcome(result=None, worker_pid=0, generation=0)  # type: ignore[arg-type]
        return outcome

    summary, _ = run_serial(daemon_settings(tmp_path), broken_outcome_for_one)

    assert summary.done == ["b-good.png"]
    report = _report(tmp_path, "a-bad.png")
    assert report["error_type"] == "InternalError"
    assert report["traceback"], "the report carries the traceback"
    assert (tmp_path / "failed" / "a-bad.png").read_bytes() == receipt_header(9)
    assert _terminal_records(tmp_path) == {"a-bad.png": ["failed"], "b-good.png": ["done"]}


@pytest.mark.parametrize(
    ("kill_at", "records_before"),
    [("disposed", {}), ("recorded", {"receipt.png": ["done"]})],
)
def test_kill_around_the_terminal_record_leaves_exactly_one_after_restart(
    tmp_path: Path, kill_at: str, records_before: dict[str, list[str]]
) -> None:
    """Killed after archiving and before the record, or after the record and before the claim
    folder is removed: the restart completes the record, or finds it written, once."""
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout, env={KILL_AT_ENV: kill_at}).start()
    (layout.inbox / "receipt.png").write_bytes(receipt_header(11))
    assert daemon.proc is not None
    daemon.proc.wait(timeout=120)  # it kills itself at that point
    with contextlib.suppress(ProcessLookupError):
        daemon.kill_all()  # its workers
    assert layout.files(layout.archive) == ["receipt.png"]
    assert _terminal_records(tmp_path) == records_before

    again = DaemonProcess(layout).start()
    work = layout.inbox / ".ocr-pipeline" / "work"
    try:
        again.wait(
            lambda: bool(_terminal_records(tmp_path)) and not any(work.glob("*/*/.claim.json")),
            60,
            "the record completed and the claim folder gone",
        )
    finally:
        assert again.stop() == 0
    assert _terminal_records(tmp_path) == {"receipt.png": ["done"]}
    done = layout.events("done")[0]
    assert done["result"] == "receipt.json" and done["target"].endswith("archive/receipt.png")
    assert layout.files(layout.archive) == ["receipt.png"]  # not OCRed or archived twice
    assert _work_entries(layout.inbox) == []
    text = json.loads((layout.outbox / "receipt.json").read_text("utf-8"))["text"]
    assert matches_truth(text, 11), text


# Put on the daemon's PYTHONPATH as ``sitecustomize``: in every process of that daemon, a job
# runs the test hooks of ``ocr_pipeline.executors.local`` (its ``started-<pid>`` marker), writes
# ``held-<pid>`` beside it, then never ends. A kill after ``held-*`` always lands mid-job,
# however fast the job would be; without the hook in force, ``held-*`` never comes.
HOLD_JOBS_SITECUSTOMIZE = """
import os
import threading
from pathlib import Path

if os.environ.get("OCR_PIPELINE_TEST_HOLD_JOBS"):
    from ocr_pipeline.executors import local

    _test_hooks = local._test_hooks

    def _hold_after_the_test_hooks(job):
        _test_hooks(job)
        folder = os.environ[local.STARTED_DIR_ENV]
        Path(folder, f"held-{os.getpid()}").write_text(job.relative, encoding="utf-8")
        threading.Event().wait()

    local._test_hooks = _hold_after_the_test_hooks
"""


def test_daemon_killed_twice_mid_job_does_not_fail_a_good_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    started = tmp_path / "started"
    started.mkdir()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOLD_JOBS_SITECUSTOMIZE, encoding="utf-8")
    image = cv2.imread(str(SROIE_DEV / "images" / "012.jpg"))
    ok, png = cv2.imencode(".png", image)
    assert ok
    (layout.inbox / "whole.png").write_bytes(png.tobytes())
    env = {"OCR_PIPELINE_TEST_STARTED_DIR": str(started), "OCR_PIPELINE_DAEMON__MAX_ATTEMPTS": "2"}
    held = {
        **env,
        "OCR_PIPELINE_TEST_HOLD_JOBS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
    }
    work = layout.inbox / ".ocr-pipeline" / "work"
    for kill in range(2):
        daemon = DaemonProcess(layout, env=held).start()
        daemon.wait(lambda: any(started.glob("held-*")), 60, f"the job held before kill {kill + 1}")
        # The job is running and cannot end: the claim records this start, nothing is terminal.
        [record] = [json.loads(p.read_text("utf-8")) for p in work.glob("*/*/.claim.json")]
        assert (record["started"], record["attempts"]) == (kill + 1, 0), record
        assert _terminal_records(tmp_path) == {}
        daemon.kill_all()
        for marker in started.iterdir():
            marker.unlink()

    daemon = DaemonProcess(layout, env=env).start()
    try:
        daemon.wait(lambda: bool(_terminal_records(tmp_path)), 120, "a terminal record")
    finally:
        daemon.stop()
    assert _terminal_records(tmp_path) == {"whole.png": ["done"]}
    assert layout.events("done")[0]["attempt"] == 3


# ----------------------------------------------------------------- a full disk


@pytest.fixture
def full_outbox_folder(tmp_path: Path) -> Iterator[Path]:
    """``outbox/sub`` on a 256 KiB tmpfs, filled to the last byte by ``filler``."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "outbox" / "sub"
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(descriptor, b"\0" * 4096):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(descriptor)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_full_outbox_is_retried_when_space_returns_and_health_says_stuck(
    tmp_path: Path, full_outbox_folder: Path
) -> None:
    layout = Layout(tmp_path)
    env = {"OCR_PIPELINE_DAEMON__RETRY_MAX_SECONDS": "2"}
    daemon = DaemonProcess(layout, env=env).start()
    try:
        (layout.inbox / "sub").mkdir()
        for number in (12, 13):
            (layout.inbox / "sub" / f"r{number}.png").write_bytes(receipt_header(number))
        daemon.wait(lambda: daemon.status().get("stuck") == 2, 120, "two files stuck")
        health = run_cli(["health", layout.outbox], timeout=60)
        assert health.returncode == 1 and "stuck" in health.stdout, health.stdout
        assert not layout.events("done")

        (full_outbox_folder / "filler").unlink()  # space returns

        daemon.wait(lambda: len(layout.events("done")) == 2, 120, "both done once space returned")
        daemon.wait(lambda: daemon.status().get("stuck") == 0, 30, "nothing stuck")
    finally:
        assert daemon.stop() == 0
    assert _terminal_records(tmp_path) == {"sub/r12.png": ["done"], "sub/r13.png": ["done"]}
    for number in (12, 13):
        text = json.loads((full_outbox_folder / f"r{number}.json").read_text("utf-8"))["text"]
        assert matches_truth(text, number), text
    assert _work_entries(layout.inbox) == []


# ----------------------------------------------------------------- the inbox itself


def test_replaced_inbox_is_watched_again_and_its_lock_taken(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    env = {"OCR_PIPELINE_DAEMON__RESCAN_SECONDS": "600"}  # events only, no rescue by a rescan
    daemon = DaemonProcess(layout, env=env).start()
    try:
        layout.inbox.rename(tmp_path / "inbox-before")
        layout.inbox.mkdir()
        (layout.inbox / "after.png").write_bytes(receipt_header(14))
        daemon.wait(lambda: bool(layout.events("done")), 60, "the new inbox's file done")

        second = run_cli(["watch", layout.inbox, layout.outbox], env=FAST_ENV, timeout=120)
        assert second.returncode == 3, second.stderr[-2000:]
        assert "in use by another daemon" in second.stderr
    finally:
        assert daemon.stop() == 0
    assert "inbox replaced" in daemon.log_tail()
    assert '"signal": "SIGTERM"' in daemon.log_tail()  # the stop is logged, with its signal
    assert "queue_events() called" not in daemon.log_tail()  # no watchdog noise at the stop
    assert _terminal_records(tmp_path) == {"after.png": ["done"]}
    text = json.loads((layout.outbox / "after.json").read_text("utf-8"))["text"]
    assert matches_truth(text, 14), text


def test_an_idle_watching_daemon_sleeps(tmp_path: Path) -> None:
    """The loop waits for events, timers or a signal: idle, it uses a small share of a CPU.

    A loop that skips its wait spins at about one full CPU (measured 5.4 s of CPU in 6 s).
    """
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout).start()
    try:
        assert daemon.proc is not None
        stat = Path(f"/proc/{daemon.proc.pid}/stat")
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_seconds() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

        before, started = cpu_seconds(), time.monotonic()
        daemon.wait(lambda: time.monotonic() - started >= 4, 10, "four idle seconds")
        used = cpu_seconds() - before
    finally:
        assert daemon.stop() == 0
    assert used < 0.5 * (time.monotonic() - started), f"{used:.2f} s of CPU while idle"
