"""The command line: help with examples everywhere, ``config show`` and ``config check``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ocr_pipeline.cli import build_parser, main
from ocr_pipeline.config_reference import render_reference_markdown
from ocr_pipeline.resources import default_config_file
from tests.conftest import REPO
from tests.daemon_harness import run_cli
from tests.receipts import receipt_header


def _all_parsers(
    parser: argparse.ArgumentParser, path: str = ""
) -> dict[str, argparse.ArgumentParser]:
    found = {path or "ocr-pipeline": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_all_parsers(sub, f"{path} {name}".strip()))
    return found


def test_every_command_has_help_with_examples() -> None:
    parsers = _all_parsers(build_parser())
    assert {"run", "watch", "health", "lexicon build", "models fetch", "config show"} <= set(
        parsers
    )
    for name, parser in parsers.items():
        text = parser.format_help()
        assert "examples:" in text and "ocr-pipeline" in text.split("examples:")[1], name


def test_config_docs_match_the_settings_model() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert docs == render_reference_markdown(), (
        "regenerate: python -m ocr_pipeline.config_reference --markdown > docs/configuration.md"
    )


def test_config_show_names_each_values_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "my.toml"
    config.write_text("[detect]\nbox_thresh = 0.5\n", encoding="utf-8")
    monkeypatch.setenv("OCR_PIPELINE_DAEMON__WORKERS", "3")
    assert main(["--config", str(config), "--log-level", "warning", "config", "show"]) == 0
    shown = dict(
        line.split(" = ", 1) for line in capsys.readouterr().out.splitlines() if " = " in line
    )
    assert shown["detect.box_thresh"] == f"0.5  # file {config}"
    assert shown["daemon.workers"] == "3  # env"
    assert shown["log.level"] == '"warning"  # flag'
    assert shown["detect.thresh"].endswith("# default")


def test_config_check_exit_codes(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[daemon]\nworkers = 2\n", encoding="utf-8")
    bad.write_text("[daemon]\nworkers = -1\n", encoding="utf-8")
    assert main(["config", "check", str(good)]) == 0
    assert main(["config", "check", str(bad)]) == 3
    assert main(["config", "check", str(default_config_file())]) == 0


def test_config_show_without_a_file_reports_defaults_as_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OCR_PIPELINE_CONFIG", raising=False)
    monkeypatch.delenv("OCR_PIPELINE_MODELS__DIR", raising=False)
    assert main(["config", "show"]) == 0
    shown = dict(
        line.split(" = ", 1) for line in capsys.readouterr().out.splitlines() if " = " in line
    )
    assert shown["detect.thresh"].endswith("# default")
    assert shown["models.dir"].endswith("# default")
    assert "ocr-pipeline" in shown["models.dir"]
    assert shown["correct.confusables"].endswith('confusables.toml"  # default')


def test_run_without_an_inbox_is_a_usage_error(tmp_path: Path) -> None:
    finished = run_cli(["run"], unset=["OCR_PIPELINE_INBOX"], cwd=tmp_path, timeout=60)
    assert finished.returncode == 2, finished.stderr
    assert "no INBOX given" in finished.stderr and "usage:" in finished.stderr


def test_run_summary_counts_reused_results_apart(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    header = receipt_header(0)
    (inbox / "a.png").write_bytes(header)
    (inbox / "copy-of-a.png").write_bytes(header)
    env = {
        "OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0",
        "OCR_PIPELINE_DAEMON__WORKERS": "1",
        "OCR_PIPELINE_DETECT__LIMIT_TYPE": "max",
        "OCR_PIPELINE_DETECT__LIMIT_SIDE": "640",
    }
    finished = run_cli(["run", inbox, tmp_path / "out"], env=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "1 of 2 files OCRed" in finished.stdout, finished.stdout
    assert "1 reused an earlier result" in finished.stdout, finished.stdout
