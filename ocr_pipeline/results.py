"""The result contract (JSON ``schema_version`` "1") and the error report.

``ocr-pipeline schema`` prints the JSON Schema generated from :class:`DocumentResult`. The files
made from a result (JSON, TXT, ...) are written by :mod:`ocr_pipeline.writers`; everything goes
through :func:`ocr_pipeline.atomic.atomic_write_bytes`, so a reader never sees half a file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ocr_pipeline.atomic import atomic_write_bytes

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


def result_json(result: DocumentResult) -> bytes:
    """Serialise a result as UTF-8 JSON (non-ASCII kept, 2-space indent)."""
    payload = result.model_dump(mode="json", by_alias=True)
    return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


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
