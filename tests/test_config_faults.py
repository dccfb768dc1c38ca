"""Faults of the daemon's own configuration: refused with the file, line and column, never fatal.

A broken config file at start stops the command with exit 3 naming the file and the place; the
same file at SIGHUP is refused while the daemon keeps its running settings and keeps working.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SROIE_DEV
from tests.daemon_harness import FAST_ENV, DaemonProcess, Layout, run_cli
from tests.receipts import receipt_header

BROKEN = {
    "syntax": (b"[detect]\nbox_thresh = = 0.5\n", "line 2, column 14"),
    "encoding": (b"[detect]\nbox_thresh = 0.5  # \xff\xfe\n", "line 2, column 21"),
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env={**FAST_ENV, **(env or {})}, timeout=120)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_config_file_exits_3_naming_file_line_and_column(tmp_path: Path, kind: str) -> None:
    content, place = BROKEN[kind]
    config = tmp_path / "ocr-pipeline.toml"
    config.write_bytes(content)
    layout = Layout(tmp_path)

    for finished in (
        _cli("--config", str(config), "run", str(layout.inbox), str(layout.outbox)),
        _cli("config", "check", str(config)),
        _cli("health", str(layout.outbox), env={"OCR_PIPELINE_CONFIG": str(config)}),
    ):
        assert finished.returncode == 3, finished.stderr[-2000:]
        assert str(config) in finished.stderr and place in finished.stderr, finished.stderr
        assert "Traceback" not in finished.stderr


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_config_at_sighup_is_refused_and_the_daemon_goes_on(
    tmp_path: Path, kind: str
) -> None:
    config = tmp_path / "ocr-pipeline.toml"
    config.write_text("[detect]\nbox_thresh = 0.45\n", encoding="utf-8")
    layout = Layout(tmp_path)
    daemon = DaemonProcess(layout, global_args=["--config", str(config)]).start()
    try:
        config.write_bytes(BROKEN[kind][0])
        daemon.signal(signal.SIGHUP)
        daemon.wait(
            lambda: "reload refused" in daemon.log_tail(), 30, "the refused reload in the log"
        )
        for number in (0, 1):
            (layout.inbox / f"r{number}.png").write_bytes(receipt_header(number))
        daemon.wait(lambda: len(layout.events("done")) == 2, 90, "both files done")
        last_error = daemon.status().get("last_error") or {}
        assert str(config) in str(last_error.get("error")), last_error

        config.write_text("[detect]\nbox_thresh = 0.5\n", encoding="utf-8")  # fixed
        daemon.signal(signal.SIGHUP)
        daemon.wait(lambda: bool(layout.events("reloaded")), 30, "the good reload")
        daemon.wait(
            lambda: daemon.status().get("generation") == 1, 30, "a heartbeat after the reload"
        )
        assert daemon.status().get("last_error") is None  # the refusal is no longer news
    finally:
        assert daemon.stop() == 0
    assert len(layout.events("reloaded")) == 1
    assert sorted(layout.results()) == ["r0.json", "r1.json"]
    for number in (0, 1):
        result = json.loads((layout.outbox / f"r{number}.json").read_text(encoding="utf-8"))
        assert result["text"].strip(), "the running settings still read the receipt"


# ----------------------------------------------------------------- folders that read themselves


@pytest.mark.parametrize(
    ("inbox", "outbox", "env", "expected"),
    [
        ("in", "out", {"OCR_PIPELINE_DAEMON__WORK_DIR": "{base}/in/work"}, "is inside the inbox"),
        (
            "in",
            "out",
            {"OCR_PIPELINE_DAEMON__AUDIT_LOG": "{base}/in/audit.jsonl"},
            "inside the inbox",
        ),
        ("out/in", "out", {}, "is inside outbox"),
        ("in", "out", {"OCR_PIPELINE_DAEMON__ARCHIVE_DIR": "{base}"}, "daemon.archive_dir"),
        ("in", "out", {"OCR_PIPELINE_DAEMON__FAILED_DIR": "{base}/in/failed"}, "inside the inbox"),
        ("in", "out.txt", {}, "exists but is not a folder"),
    ],
)
def test_folders_that_would_feed_the_daemon_its_own_files_are_refused(
    tmp_path: Path, inbox: str, outbox: str, env: dict[str, str], expected: str
) -> None:
    (tmp_path / inbox).mkdir(parents=True)
    (tmp_path / "out.txt").write_text("a file where the outbox should be", encoding="utf-8")
    (tmp_path / inbox / "receipt.png").write_bytes(receipt_header(2))
    filled = {key: value.format(base=tmp_path) for key, value in env.items()}

    finished = _cli("run", str(tmp_path / inbox), str(tmp_path / outbox), env=filled)

    assert finished.returncode == 3, finished.stderr[-2000:]
    assert expected in finished.stderr, finished.stderr
    assert (tmp_path / inbox / "receipt.png").is_file()  # nothing was claimed


def test_copies_dropped_together_are_read_once(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    png = receipt_header(3)
    staging = tmp_path / "staging"
    staging.mkdir()
    for number in range(5):
        (staging / f"copy{number}.png").write_bytes(png)
    daemon = DaemonProcess(layout).start()
    try:
        for path in sorted(staging.iterdir()):
            path.rename(layout.inbox / path.name)  # all complete, all at once
        daemon.wait(
            lambda: len(layout.events("done")) + len(layout.events("duplicate")) == 5,
            90,
            "five terminal records",
        )
    finally:
        assert daemon.stop() == 0
    assert len(layout.events("done")) == 1, "the same bytes were OCRed more than once"
    assert len(layout.events("duplicate")) == 4
    texts = {
        json.loads((layout.outbox / f"copy{n}.json").read_text(encoding="utf-8"))["text"]
        for n in range(5)
    }
    assert len(texts) == 1 and texts.pop().strip()


# ----------------------------------------------------------------- models damaged after start


def test_model_damaged_after_start_holds_files_until_restored(tmp_path: Path) -> None:
    """A truncated recognizer plus a killed worker: no file fails; health says why; resumes."""
    store = tmp_path / "models"
    store.mkdir()
    models_dir = Path(os.environ.get("OCR_PIPELINE_MODELS__DIR", "models")).resolve()
    for model in models_dir.iterdir():
        (store / model.name).symlink_to(model)  # a private store whose files we may damage
    recognizer = store / "ppocrv6-small-rec.onnx"
    recognizer.unlink()
    good_bytes = (models_dir / recognizer.name).read_bytes()
    recognizer.write_bytes(good_bytes)
    layout = Layout(tmp_path)
    env = {"OCR_PIPELINE_MODELS__DIR": str(store)}
    daemon = DaemonProcess(layout, env=env).start()
    try:
        (layout.inbox / "before.png").write_bytes(receipt_header(4))
        daemon.wait(lambda: len(layout.events("done")) == 1, 90, "a file done with good models")

        recognizer.write_bytes(good_bytes[: len(good_bytes) // 2])  # damaged after start
        for pid in daemon.status().get("worker_pids", []):
            os.kill(pid, signal.SIGKILL)  # the replacements load the damaged file
        for number in (5, 6, 7):
            (layout.inbox / f"r{number}.png").write_bytes(receipt_header(number))
        daemon.wait(lambda: bool(daemon.status().get("held")), 90, "the daemon holding files")
        health = _cli("health", str(layout.outbox))
        assert health.returncode == 1, health.stdout
        assert "ppocrv6-small-rec" in health.stdout and "models fetch" in health.stdout
        assert not layout.events("failed"), "a good scan was failed for a damaged model"

        recognizer.write_bytes(good_bytes)  # restored
        daemon.wait(lambda: len(layout.events("done")) == 4, 120, "the held files done")
        daemon.wait(lambda: not daemon.status().get("held"), 30, "the hold lifted")
        assert _cli("health", str(layout.outbox)).returncode == 0
    finally:
        assert daemon.stop() == 0
    assert not layout.events("failed")
    for number in (5, 6, 7):
        result = json.loads((layout.outbox / f"r{number}.json").read_text(encoding="utf-8"))
        assert result["text"].strip()


# ----------------------------------------------------------------- a worker that stops answering


def test_stopped_worker_makes_health_unhealthy_then_its_file_is_retried(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    started = tmp_path / "started"
    started.mkdir()
    pages = [Image.open(SROIE_DEV / "images" / f"{n:03d}.jpg").convert("RGB") for n in range(6)]
    pdf = tmp_path / "six.pdf"
    pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=150)
    env = {
        "OCR_PIPELINE_TEST_STARTED_DIR": str(started),
        "OCR_PIPELINE_DAEMON__WORKER_SILENCE_SECONDS": "3",
        "OCR_PIPELINE_DAEMON__WORKERS": "1",
    }
    daemon = DaemonProcess(layout, env=env).start()
    try:
        pdf.rename(layout.inbox / "six.pdf")
        daemon.wait(lambda: any(started.iterdir()), 60, "the job's start")
        pid = int(next(started.iterdir()).name.removeprefix("started-"))
        os.kill(pid, signal.SIGSTOP)  # as a frozen process, or a debugger, would
        answers: list[subprocess.CompletedProcess[str]] = []

        def unhealthy() -> bool:
            answers.append(_cli("health", str(layout.outbox)))
            return answers[-1].returncode == 1

        # The answer that said unhealthy is the one checked: asked again, health may already
        # be fine (the silent worker is stopped and replaced at twice the silence bound).
        daemon.wait(unhealthy, 60, "health unhealthy for the silent worker")
        health = answers[-1]
        assert f"worker pid {pid}" in health.stdout and "six.pdf" in health.stdout
        daemon.wait(lambda: bool(layout.events("done")), 300, "the file done on a new worker")
    finally:
        assert daemon.stop() == 0
    retried = [r for r in layout.events("retried") if r["source"] == "six.pdf"]
    assert retried and "silent" in retried[0]["message"], retried
    assert not layout.events("failed")
    result = json.loads((layout.outbox / "six.json").read_text(encoding="utf-8"))
    assert len(result["pages"]) == 6
