"""One-shot batch run: OCR every file of an inbox folder into an outbox folder, then exit.

The inputs are left where they are (moving files to archive/ and failed/ is the daemon's job).
Each success writes ``<stem>.txt`` and ``<stem>.json``; each failure writes ``<name>.error.json``
in the outbox and the run goes on with the other files. Sub-folders are mirrored.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ocr_pipeline import __version__
from ocr_pipeline.audit import get_logger
from ocr_pipeline.documents import DecodeLimits
from ocr_pipeline.engine import Engine
from ocr_pipeline.errors import ConfigError, InputError
from ocr_pipeline.jobs import ocr_file
from ocr_pipeline.results import ErrorReport, utc_now, write_error_report, write_result

IGNORED_PREFIXES = (".", "~$")
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp")


def is_ignored(name: str) -> bool:
    """Hidden and temporary names that are never inputs (``.x``, ``~$x``, ``*.part``, ...)."""
    return name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES)


def check_folders(inbox: Path, outbox: Path) -> None:
    """Refuse folder layouts that cannot work.

    Raises:
        ConfigError: the inbox is not a folder, or the outbox lies inside the inbox (its results
            would be read back as inputs).

    """
    if not inbox.is_dir():
        raise ConfigError(f"inbox {inbox} is not a folder; create it or pass another INBOX")
    if outbox.resolve().is_relative_to(inbox.resolve()):
        raise ConfigError(f"outbox {outbox} is inside inbox {inbox}; choose an outbox outside it")


def discover_inputs(inbox: Path) -> list[Path]:
    """Every non-ignored file under ``inbox`` (recursive, hidden folders skipped), sorted."""
    found: list[Path] = []
    for path in sorted(inbox.rglob("*")):
        relative = path.relative_to(inbox)
        if any(is_ignored(part) for part in relative.parts) or not path.is_file():
            continue
        found.append(path)
    return found


@dataclass
class BatchSummary:
    """What a batch run did."""

    done: list[str] = field(default_factory=list)
    """Relative paths of inputs with results."""
    failed: dict[str, str] = field(default_factory=dict)
    """Relative path -> error message, for inputs that failed."""


def output_stem(relative: Path, used: set[Path]) -> Path:
    """Output path without extension for an input, unique within the run.

    ``sub/scan.jpg`` gives ``sub/scan``; a second input with the same stem (``sub/scan.png``)
    gives ``sub/scan.png`` so no result overwrites another's.
    """
    stem = relative.with_suffix("")
    if stem in used:
        stem = relative
    used.add(stem)
    return stem


def run_batch(inbox: Path, outbox: Path, engine: Engine, limits: DecodeLimits) -> BatchSummary:
    """OCR every input under ``inbox``, writing results and error reports under ``outbox``.

    Raises:
        ConfigError: see :func:`check_folders`.

    """
    check_folders(inbox, outbox)
    log = get_logger(__name__)
    summary = BatchSummary()
    used: set[Path] = set()
    for path in discover_inputs(inbox):
        relative = path.relative_to(inbox)
        stem = output_stem(relative, used)
        started = time.perf_counter()
        try:
            result = ocr_file(path, engine, limits, relative.as_posix())
        except (InputError, OSError) as exc:
            _report_failure(exc, relative, outbox / stem.parent / f"{relative.name}.error.json")
            summary.failed[relative.as_posix()] = str(exc)
            log.error(
                "failed", file=relative.as_posix(), error_type=type(exc).__name__, error=str(exc)
            )
            continue
        write_result(result, outbox / stem.parent, stem.name)
        summary.done.append(relative.as_posix())
        lines = sum(len(p.lines) for p in result.pages)
        log.info(
            "done",
            file=relative.as_posix(),
            pages=len(result.pages),
            lines=lines,
            seconds=round(time.perf_counter() - started, 3),
            timings_ms=result.timings_ms,
        )
    return summary


def _report_failure(exc: BaseException, relative: Path, report_path: Path) -> None:
    frames = traceback.format_tb(exc.__traceback__)[-3:]
    report = ErrorReport(
        source=relative.as_posix(),
        error_type=type(exc).__name__,
        message=str(exc),
        traceback=[frame.strip() for frame in frames],
        failed_at=utc_now(),
        pipeline_version=__version__,
    )
    write_error_report(report, report_path)
