"""The inbox daemon under faults: a real ``ocr-pipeline watch`` process on temporary folders.

Each test asserts the invariant of ARCHITECTURE.md on the folders and the audit log: every input
ends in exactly one terminal state (result + archived original, or failed original + report),
nothing is lost and nothing is processed into two results.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from ocr_pipeline.cli import main
from tests.conftest import SROIE_DEV
from tests.daemon_harness import (
    BASE_IMAGES,
    FAST_ENV,
    DaemonProcess,
    Layout,
    png_variant,
    receipt_crops,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.daemon


@pytest.fixture(scope="module")
def crops() -> list[bytes]:
    return receipt_crops()


@pytest.fixture(scope="module")
def expected_texts(crops: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """Text of each base crop from the one-shot ``run`` with the daemon tests' settings."""
    layout = Layout(tmp_path_factory.mktemp("oneshot"))
    for number, png in enumerate(crops):
        (layout.inbox / f"base-{number}.png").write_bytes(png)
    completed = run_cli(["run", layout.inbox, layout.outbox], env=FAST_ENV)
    assert completed.returncode == 0, completed.stderr[-3000:]
    texts = {}
    for number in range(BASE_IMAGES):
        result = json.loads((layout.outbox / f"base-{number}.json").read_text(encoding="utf-8"))
        texts[number] = result["text"]
        assert len(result["text"]) > 20, "each crop holds several lines of text"
    return texts


SETTLE_SECONDS = float(FAST_ENV["OCR_PIPELINE_DAEMON__SETTLE_SECONDS"])
TERMINAL_EVENTS = ("done", "partial", "duplicate", "failed")


def _write_slowly(files: dict[Path, bytes], chunks: int, pause: float) -> dict[Path, float]:
    """Write files through open handles, ``chunks`` rounds apart by ``pause`` (slow copies).

    All the files are written at once, a chunk each per round, so pauses longer than the
    settle time cost ``chunks x pause`` in all, not per file.

    Returns:
        Each file's Unix time just after its handle was closed (the copy complete).

    """
    closed: dict[Path, float] = {}
    handles = {path: path.open("wb") for path in files}
    try:
        for round_ in range(chunks):
            for path, handle in handles.items():
                data = files[path]
                step = -(-len(data) // chunks)
                handle.write(data[round_ * step : (round_ + 1) * step])
                handle.flush()
            time.sleep(pause)  # the copy's point: unchanged for longer than the settle time
    finally:
        for path, handle in handles.items():
            handle.close()
            closed[path] = time.time()
    return closed


def _assert_exactly_once(layout: Layout, names: list[str]) -> None:
    """Every name has one result and one archived original; nothing is anywhere else."""
    assert layout.files(layout.inbox) == []
    assert layout.work_files() == []
    assert layout.files(layout.failed) == []
    assert layout.files(layout.archive) == sorted(names)
    stems = sorted(name.rsplit(".", 1)[0] + ".json" for name in names)
    assert layout.results() == stems, "one result per input, none under a second name"
    terminal = collections.Counter(
        (r["source"], r["event"]) for r in layout.audit() if r["event"] in TERMINAL_EVENTS
    )
    for name in names:
        records = {event: terminal[name, event] for event in TERMINAL_EVENTS}
        assert sum(records.values()) == 1, (name, records)
        assert records["done"] + records["duplicate"] == 1, (name, records)


def test_400_files_slow_copies_and_bulk_drop_each_reach_one_terminal_state(
    tmp_path: Path, crops: list[bytes], expected_texts: dict[int, str]
) -> None:
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout).start()
    try:
        names: list[str] = []
        slow = {
            f"slow/s{i:03d}.png": png_variant(crops[i % BASE_IMAGES], f"s{i}") for i in range(200)
        }
        bulk = {f"b{i:03d}.png": png_variant(crops[i % BASE_IMAGES], f"b{i}") for i in range(200)}
        (layout.inbox / "slow").mkdir()

        closed: dict[Path, float] = {}

        def copy_slowly() -> None:
            files = {layout.inbox / name: data for name, data in slow.items()}
            closed.update(_write_slowly(files, chunks=3, pause=SETTLE_SECONDS + 0.2))

        writer = threading.Thread(target=copy_slowly)
        writer.start()
        staging = tmp_path / "staging"
        staging.mkdir()
        for name, data in bulk.items():
            (staging / name).write_bytes(data)
        for name in bulk:  # "dropped at once": renamed in, complete, within milliseconds
            os.rename(staging / name, layout.inbox / name)
        writer.join()
        names = [*slow, *bulk]
        wait_until(lambda: layout.terminal_count() >= 400, 600, "400 terminal states")
        wait_until(lambda: not layout.work_files(), 30, "an empty work folder")
        _assert_exactly_once(layout, names)
        if daemon.status().get("observer") == "native":  # polling claims by settle time alone
            claimed: dict[str, float] = {}
            for record in layout.events("claimed"):
                when = datetime.datetime.fromisoformat(record["time"]).timestamp()
                claimed.setdefault(record["source"], when)
            early = [n for n in slow if claimed[n] < closed[layout.inbox / n] - 0.01]
            assert early == [], f"claimed before the slow copy closed: {early[:5]}"
        for name in names:
            number = int(name.split("/")[-1][1:4]) % BASE_IMAGES
            result = json.loads((layout.outbox / name.replace(".png", ".json")).read_text("utf-8"))
            assert result["text"] == expected_texts[number], name
            assert result["source"]["relative_path"] == name
        wait_until(lambda: daemon.status()["jobs"]["done"] == 400, 10, "the heartbeat's count")
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()


def test_startup_files_polling_bad_inputs_duplicates_and_reload(
    tmp_path: Path, crops: list[bytes], expected_texts: dict[int, str]
) -> None:
    layout = Layout(tmp_path)
    for number in range(3):
        (layout.inbox / f"early-{number}.png").write_bytes(crops[number])
    images = SROIE_DEV / "images"
    (layout.inbox / "empty.jpg").write_bytes(b"")
    data = (images / "002.jpg").read_bytes()
    (layout.inbox / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (layout.inbox / "letter.docx").write_bytes(b"PK\x03\x04 not a scan")
    Image.new("L", (4000, 3000), 255).save(layout.inbox / "huge.png")
    # Events off: a polling observer, and a rescan interval longer than the test.
    env = {
        "OCR_PIPELINE_DAEMON__OBSERVER": "polling",
        "OCR_PIPELINE_DAEMON__POLL_SECONDS": "0.5",
        "OCR_PIPELINE_DAEMON__RESCAN_SECONDS": "3600",
        "OCR_PIPELINE_DECODE__MAX_PIXELS": "10000000",
        "OCR_PIPELINE_DAEMON__MAX_JOBS_PER_WORKER": "2",
    }
    config = tmp_path / "config.toml"
    config.write_text("[correct]\nlexicons = []\n", encoding="utf-8")
    daemon = DaemonProcess(layout, env=env, global_args=["--config", str(config)]).start()
    try:
        wait_until(lambda: layout.terminal_count() >= 7, 120, "the start-up files")
        (layout.inbox / "late.png").write_bytes(crops[3])
        (layout.inbox / "again.png").write_bytes(crops[0])  # same bytes as early-0.png
        wait_until(lambda: layout.terminal_count() >= 9, 60, "files dropped while polling")
        reports = {
            p.name.removesuffix(".error.json"): json.loads(p.read_text(encoding="utf-8"))
            for p in layout.failed.glob("*.error.json")
        }
        assert {k: v["error_type"] for k, v in reports.items()} == {
            "empty.jpg": "CorruptInputError",
            "truncated.jpg": "CorruptInputError",
            "letter.docx": "UnsupportedFormatError",
            "huge.png": "InputTooLargeError",
        }
        for name, report in reports.items():
            assert name in report["message"] and (layout.failed / name).is_file()
        assert "supported:" in reports["letter.docx"]["message"]
        late = json.loads((layout.outbox / "late.json").read_text(encoding="utf-8"))
        assert late["text"] == expected_texts[3]
        again = json.loads((layout.outbox / "again.json").read_text(encoding="utf-8"))
        assert again["text"] == expected_texts[0]
        assert again["source"]["name"] == "again.png"
        duplicate = layout.events("duplicate")
        assert [r["source"] for r in duplicate] == ["again.png"]

        # Crop 3 misreads "Cashier" (as "Cashler": an uncertain l); a lexicon added by SIGHUP
        # fixes it.
        misread = re.search(r"\bCash(?!ier\b)[a-z]+\b", late["text"])
        assert misread is not None, late["text"]
        lexicon = tmp_path / "words.txt"
        lexicon.write_text("CASHIER\t5\n", encoding="utf-8")
        config.write_text(f"[correct]\nlexicons = [{json.dumps(str(lexicon))}]\n", "utf-8")
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: bool(layout.events("reloaded")), 30, "the reload record")
        (layout.inbox / "after-reload.png").write_bytes(png_variant(crops[3], "reload"))
        wait_until(
            lambda: any(r["source"] == "after-reload.png" for r in layout.events("done")),
            60,
            "a job after reload (its audit record follows its result files)",
        )
        assert daemon.status()["generation"] == 1
        reread = json.loads((layout.outbox / "after-reload.json").read_text(encoding="utf-8"))
        assert "Cashier" in reread["text"] and misread[0] not in reread["text"]
        fixed = [ln for ln in reread["pages"][0]["lines"] if ln["corrections"]]
        assert [(c["from"], c["to"]) for ln in fixed for c in ln["corrections"]] == [
            (misread[0], "Cashier")
        ]
        done = next(r for r in layout.events("done") if r["source"] == "after-reload.png")
        assert done["corrections"] == 1 and done["generation"] == 1
        worker_pids = {r["worker_pid"] for r in layout.events("done")}
        assert len(worker_pids) >= 3, "workers are recycled after two jobs each"
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()


def test_killed_worker_is_replaced_and_poison_file_fails_after_two_tries(
    tmp_path: Path, crops: list[bytes], expected_texts: dict[int, str]
) -> None:
    layout = Layout(tmp_path)
    started = tmp_path / "started"
    started.mkdir()
    env = {
        "OCR_PIPELINE_TEST_STARTED_DIR": str(started),
        "OCR_PIPELINE_TEST_CRASH_MARKER": "__crash__",
        "OCR_PIPELINE_DAEMON__WORKERS": "1",
    }
    daemon = DaemonProcess(layout, env=env).start()
    try:
        (layout.inbox / "victim.png").write_bytes(crops[5])
        wait_until(lambda: any(started.iterdir()), 60, "the job to start in a worker")
        marker = next(started.iterdir())
        worker_pid = int(marker.name.removeprefix("started-"))
        os.kill(worker_pid, signal.SIGKILL)
        # The audit record "done" is written after the results: wait for it, not for the JSON.
        wait_until(
            lambda: any(r["source"] == "victim.png" for r in layout.events("done")),
            120,
            "the retried job's done record",
        )
        victim = json.loads((layout.outbox / "victim.json").read_text(encoding="utf-8"))
        assert victim["text"] == expected_texts[5]
        retried = [r for r in layout.events("retried") if r["source"] == "victim.png"]
        assert [r["error_type"] for r in retried] == ["WorkerLostError"]
        done = next(r for r in layout.events("done") if r["source"] == "victim.png")
        assert done["attempt"] == 2 and done["worker_pid"] != worker_pid

        (layout.inbox / "poison__crash__.png").write_bytes(crops[6])
        (layout.inbox / "after.png").write_bytes(crops[7])
        wait_until(
            lambda: (
                (layout.failed / "poison__crash__.png.error.json").is_file()
                and (layout.outbox / "after.json").is_file()
            ),
            120,
            "the poison file in failed/ and the next file done",
        )
        report = json.loads(
            (layout.failed / "poison__crash__.png.error.json").read_text(encoding="utf-8")
        )
        assert report["error_type"] == "WorkerCrashedError" and report["attempts"] == 2
        assert "poison__crash__.png" in report["message"]
        wait_until(lambda: daemon.status()["workers_alive"] == 1, 30, "one worker")

        # An idle worker killed (the OOM killer's choice): pebble then marks its whole pool
        # broken; the daemon must replace the pool and go on.
        idle_worker = daemon.status()["worker_pids"][0]
        os.kill(idle_worker, signal.SIGKILL)
        (layout.inbox / "after-idle-kill.png").write_bytes(crops[1])
        wait_until(
            lambda: (layout.outbox / "after-idle-kill.json").is_file(), 120, "a job after it"
        )
        assert not (layout.failed / "after-idle-kill.png").exists()
        assert idle_worker not in daemon.status()["worker_pids"]
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()


def test_kill_9_of_the_daemon_mid_batch_then_restart_loses_nothing(
    tmp_path: Path, crops: list[bytes]
) -> None:
    layout = Layout(tmp_path)
    names = [f"k{i:02d}.png" for i in range(30)]
    daemon = DaemonProcess(layout).start()
    try:
        for number, name in enumerate(names):
            (layout.inbox / name).write_bytes(png_variant(crops[number % BASE_IMAGES], name))
        wait_until(lambda: len(layout.events("done")) >= 5, 120, "a few results")
        daemon.kill_all()
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()
    assert layout.terminal_count() < 30, "killed mid-batch"
    restarted = DaemonProcess(layout).start()
    try:
        wait_until(lambda: layout.terminal_count() >= 30, 300, "every file after restart")
        wait_until(lambda: not layout.work_files(), 30, "an empty work folder")
        _assert_exactly_once(layout, names)
        assert restarted.stop() == 0
    finally:
        if restarted.proc and restarted.proc.poll() is None:
            restarted.kill_all()


def test_sigterm_drains_within_the_grace_period_and_leaves_no_partial_output(
    tmp_path: Path, crops: list[bytes]
) -> None:
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout).start()
    assert main(["health", str(layout.outbox)]) == 0
    try:
        names = [f"t{i:02d}.png" for i in range(40)]
        for number, name in enumerate(names):
            (layout.inbox / name).write_bytes(png_variant(crops[number % BASE_IMAGES], name))
        wait_until(lambda: len(layout.events("done")) >= 2, 120, "the batch to be under way")
        stopped_at = time.monotonic()
        code = daemon.stop(timeout=30)
        elapsed = time.monotonic() - stopped_at
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()
    assert code == 0
    assert elapsed < float(FAST_ENV["OCR_PIPELINE_DAEMON__GRACE_SECONDS"]) + 5, elapsed
    assert layout.work_files() == [], "unfinished claims went back to the inbox"
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == []
    finished = layout.files(layout.archive)
    waiting = layout.files(layout.inbox)
    assert sorted(finished + waiting) == names, "each file terminal or claimable, once"
    for name in finished:
        json.loads((layout.outbox / name.replace(".png", ".json")).read_text(encoding="utf-8"))
    assert layout.results() == sorted(n.replace(".png", ".json") for n in finished)
    assert daemon.status()["state"] == "stopped"
    assert main(["health", str(layout.outbox)]) == 1


def test_two_daemons_on_one_inbox_process_each_file_exactly_once(
    tmp_path: Path, crops: list[bytes]
) -> None:
    layout = Layout(tmp_path)
    one = DaemonProcess(layout, instance="one", env={"OCR_PIPELINE_DAEMON__WORKERS": "1"})
    two = DaemonProcess(layout, instance="two", env={"OCR_PIPELINE_DAEMON__WORKERS": "1"})
    one.start()
    two.start()
    try:
        names = [f"d{i:02d}.png" for i in range(40)]
        for number, name in enumerate(names):
            (layout.inbox / name).write_bytes(png_variant(crops[number % BASE_IMAGES], name))
        wait_until(lambda: layout.terminal_count() >= 40, 300, "40 terminal states")
        _assert_exactly_once(layout, names)
        claims = collections.Counter(r["source"] for r in layout.events("claimed"))
        assert set(claims.values()) == {1}, "no file claimed twice"
        by_instance = collections.Counter(r["instance"] for r in layout.events("done"))
        assert set(by_instance) == {"one", "two"}, by_instance
        assert one.stop() == 0 and two.stop() == 0
    finally:
        for daemon in (one, two):
            if daemon.proc and daemon.proc.poll() is None:
                daemon.kill_all()


def test_a_second_daemon_on_the_same_work_folder_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout).start()
    try:
        second = run_cli(["watch", layout.inbox, layout.outbox], env=FAST_ENV, timeout=60)
        assert second.returncode == 3
        message = second.stderr
        assert "in use by another daemon" in message and "OCR_PIPELINE_DAEMON__INSTANCE" in message
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_keep_policy_leaves_originals_and_does_not_redo_them_metrics_served(
    tmp_path: Path, crops: list[bytes]
) -> None:
    layout = Layout(tmp_path)
    (layout.inbox / "kept.png").write_bytes(crops[1])
    port = _free_port()
    env = {
        "OCR_PIPELINE_DAEMON__ON_SUCCESS": "keep",
        "OCR_PIPELINE_DAEMON__RESCAN_SECONDS": "0.5",
        "OCR_PIPELINE_DAEMON__METRICS_PORT": str(port),
        "OCR_PIPELINE_DAEMON__METRICS_HOST": "127.0.0.1",
    }
    daemon = DaemonProcess(layout, env=env).start()
    try:
        wait_until(lambda: daemon.status()["jobs"]["done"] == 1, 60, "the result")
        assert (layout.outbox / "kept.json").is_file()
        jobs_before = daemon.status()["jobs"]
        rescans = daemon.status()["rescans"]
        wait_until(lambda: daemon.status()["rescans"] >= rescans + 3, 30, "three more rescans")
        assert daemon.status()["jobs"] == jobs_before, "a kept original is not redone"
        assert (layout.inbox / "kept.png").read_bytes() == crops[1]
        assert len(layout.events("claimed")) == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            exposition = response.read().decode()
        assert 'ocr_pipeline_jobs_total{outcome="done"} 1.0' in exposition
        assert 'ocr_pipeline_stage_seconds_count{stage="detect"} 1.0' in exposition
        assert "ocr_pipeline_workers_alive 2.0" in exposition
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()


def test_a_job_over_its_timeout_fails_and_the_daemon_goes_on(
    tmp_path: Path, crops: list[bytes]
) -> None:
    layout = Layout(tmp_path)
    (layout.inbox / "slow.png").write_bytes(crops[2])
    env = {"OCR_PIPELINE_DAEMON__JOB_TIMEOUT": "0.05", "OCR_PIPELINE_DAEMON__WORKERS": "1"}
    daemon = DaemonProcess(layout, env=env).start()
    try:
        report_path = layout.failed / "slow.png.error.json"
        wait_until(report_path.is_file, 60, "the timeout report")
        report = json.loads(report_path.read_text(encoding="utf-8"))
        assert report["error_type"] == "JobTimeoutError"
        assert "slow.png" in report["message"] and "daemon.job_timeout" in report["message"]
        wait_until(lambda: daemon.status().get("workers_alive") == 1, 30, "a replacement worker")
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()


def test_a_file_closed_or_renamed_in_is_claimed_without_a_settle_wait(
    tmp_path: Path, crops: list[bytes]
) -> None:
    """settle_seconds and the rescan interval are an hour: only the close-write event, or the
    rename, can settle these files."""
    layout = Layout(tmp_path)
    env = {
        "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "3600",
        "OCR_PIPELINE_DAEMON__SETTLE_AFTER_CLOSE_SECONDS": "0",
        "OCR_PIPELINE_DAEMON__RESCAN_SECONDS": "3600",
        "OCR_PIPELINE_DAEMON__OBSERVER": "native",
    }
    daemon = DaemonProcess(layout, env=env).start()
    try:
        with (layout.inbox / "written.png").open("wb") as handle:
            handle.write(crops[0])
        daemon.wait(lambda: (layout.outbox / "written.json").is_file(), 120, "after its close")
        staging = tmp_path / "staging"
        staging.mkdir()
        (staging / "upload.png").write_bytes(crops[1])
        os.rename(staging / "upload.png", layout.inbox / "renamed.png")
        daemon.wait(lambda: (layout.outbox / "renamed.json").is_file(), 120, "after its rename")
        _assert_exactly_once(layout, ["renamed.png", "written.png"])
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill_all()
