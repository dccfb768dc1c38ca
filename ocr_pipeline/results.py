"""The result contract (JSON ``schema_version`` "1") and its atomic writers.

``ocr-pipeline schema`` prints the JSON Schema generated from :class:`DocumentResult`. Readers
never see half a file: outputs go to a temporary name in the destination folder, are fsynced,
then renamed over the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal["1"] = "1"

Point = tuple[int, int]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class Correction(_Record):
    """One change the corrector made to a line's raw text."""

    start: int = Field(description="Start offset in raw_text, characters.")
    end: int = Field(description="End offset (exclusive) in raw_text, characters.")
    from_: str = Field(alias="from", description="The text that was replaced.")
    to: str = Field(description="The replacement.")
    rule: str = Field(description="Which rule made the change (lexicon, confusable, ...).")
    score: float = Field(description="The rule's confidence in the change, 0..1.")


class Line(_Record):
    """One recognised text line."""

    text: str = Field(description="Final text of the line (after correction).")
    raw_text: str = Field(description="What the recognizer read, before any correction.")
    confidence: float = Field(description="Mean character confidence, 0..1.")
    box: tuple[Point, Point, Point, Point] = Field(
        description="Corners clockwise from top-left, pixels of the page as delivered."
    )
    char_confidences: list[float] = Field(description="Per character of raw_text, 0..1.")
    corrections: list[Correction] = Field(default_factory=list, description="Changes made.")
    block: int = Field(0, description="Index of the line's block in the page's blocks.")
    vertical: bool = Field(
        False, description="A vertical text line (read top to bottom; its crop was turned)."
    )


class Block(_Record):
    """Lines read together: a paragraph or run of lines in one column, or table-like rows."""

    kind: Literal["text", "table"] = Field(
        description="text, or table when at least two of its rows hold several boxes."
    )
    box: tuple[Point, Point, Point, Point] = Field(
        description="Axis-aligned bounds of its lines, clockwise from top-left, page pixels."
    )
    lines: list[int] = Field(description="Indices into the page's lines, in reading order.")


class Page(_Record):
    """One page of the input and its lines in reading order."""

    index: int = Field(description="0-based page index in the document.")
    width: int = Field(description="Page width as delivered, pixels.")
    height: int = Field(description="Page height as delivered, pixels.")
    rotation: int = Field(
        0,
        description=(
            "Total clockwise quarter turn (0/90/180/270) from the page as stored in the file to "
            "the upright page that was read: the decoder's (EXIF Orientation, PDF /Rotate) plus "
            "the orientation stage's, modulo 360. Boxes stay in the pixels of the page as "
            "delivered (after EXIF / /Rotate, before the engine's own turn); each box's first "
            "corner is the text's top-left, which on a turned page need not be the image's."
        ),
    )
    skew: float = Field(
        0.0, description="Skew removed before detection (orientation stage), degrees."
    )
    lines: list[Line] = Field(description="Lines in reading order.")
    blocks: list[Block] = Field(
        default_factory=list, description="Blocks (paragraphs, columns' runs, tables) in order."
    )
    text: str = Field(
        description="Lines in reading order: same row by a space, rows by \\n, blocks by \\n\\n."
    )


class Source(_Record):
    """The input file."""

    name: str = Field(description="File name.")
    relative_path: str = Field(description="Path relative to the inbox.")
    sha256: str = Field(description="Hex sha256 of the file's bytes.")
    bytes: int = Field(description="File size, bytes.")
    media_type: str = Field(description="Media type chosen from the file name, e.g. image/jpeg.")


class ModelRef(_Record):
    """A model that produced the result."""

    name: str
    sha256: str


class DocumentResult(_Record):
    """The OCR result of one input file: the JSON written to ``outbox/<stem>.json``."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    source: Source
    pages: list[Page]
    text: str = Field(description="All pages' text; pages joined by a form feed (\\f).")
    models: dict[str, ModelRef] = Field(description="detector, recognizer, classifier.")
    timings_ms: dict[str, float] = Field(description="Per stage, summed over pages, and total.")
    created_at: str = Field(description="RFC 3339 UTC time the result was made.")
    pipeline_version: str


def utc_now() -> str:
    """Current time as RFC 3339 UTC with a ``Z`` suffix, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def result_schema() -> dict[str, Any]:
    """JSON Schema of :class:`DocumentResult` (by alias, as serialised)."""
    return DocumentResult.model_json_schema(by_alias=True)


def _process_umask() -> int:
    """The process's umask, read without changing it (``/proc`` on Linux), else via ``os.umask``."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Mode of result files: what ``open()`` would create (0644 under the usual umask 022).
_NEW_FILE_MODE = 0o666 & ~_process_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over ``path``;
    the folder is fsynced so the rename survives a crash.

    Raises:
        OSError: the folder is not writable or the disk is full (the temporary file is removed).

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _NEW_FILE_MODE)  # mkstemp makes 0600; results are for other users too
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def result_json(result: DocumentResult) -> bytes:
    """Serialise a result as UTF-8 JSON (non-ASCII kept, 2-space indent)."""
    payload = result.model_dump(mode="json", by_alias=True)
    return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_result(result: DocumentResult, outbox: Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.txt`` then ``<stem>.json`` atomically into ``outbox``.

    The JSON comes last so a program that waits for it finds the TXT already there.

    Returns:
        The JSON and TXT paths.

    """
    json_path = outbox / f"{stem}.json"
    txt_path = outbox / f"{stem}.txt"
    atomic_write_bytes(txt_path, (result.text + "\n").encode("utf-8"))
    atomic_write_bytes(json_path, result_json(result))
    return json_path, txt_path


class ErrorReport(_Record):
    """Why one input failed: written as ``<name>.error.json`` beside where its result would be."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    source: str = Field(description="Path of the input relative to the inbox.")
    error_type: str = Field(description="Exception class, e.g. CorruptInputError.")
    message: str = Field(description="What went wrong and what to do; names the file.")
    traceback: list[str] = Field(description="Last frames of the traceback, innermost last.")
    attempts: int = Field(1, description="How many times the file was tried.")
    failed_at: str = Field(description="RFC 3339 UTC time of the failure.")
    pipeline_version: str


def write_error_report(report: ErrorReport, path: Path) -> None:
    """Write an error report atomically as UTF-8 JSON."""
    payload = report.model_dump(mode="json")
    atomic_write_bytes(path, (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode())
