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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.names import bytes_field, decode_name_bytes, display_name, printable

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


class Word(_Record):
    """One word of a line, or one run of CJK characters (CJK has no spaces between words).

    A word is a maximal run of non-space characters, cut where East Asian wide characters (CJK,
    full-width forms) and others meet: "A4复印纸" gives "A4" and "复印纸". Its box comes from the
    CTC time steps that produced its characters (the recognizer's output columns, each a fixed
    width of the line crop), narrowed to the ink of its first and last glyphs, and cut out of
    the line's box across the reading direction (so it has the line's height). After
    spell-correction a replacement takes the place of the characters it replaced.
    """

    text: str = Field(description="The word's text, a part of the line's text (no spaces).")
    box: tuple[Point, Point, Point, Point] = Field(
        description=(
            "Corners clockwise from the text's top-left, pixels of the page as delivered; the "
            "first edge (corner 0 to 1) runs along the reading direction (down a vertical "
            "line, where corner 0 is the line box's top-right)."
        )
    )
    confidence: float = Field(description="Mean confidence of its characters, 0..1.")


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
    words: list[Word] | None = Field(
        None,
        description=(
            "The line's words and CJK character runs in reading order, with boxes; their texts "
            "joined by a space where the line's text has spaces between them (none where a "
            "CJK run meets other characters) give its text, less leading and trailing spaces. "
            "Null when not known."
        ),
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


class PageError(_Record):
    """Why one page of a document could not be read (the other pages were)."""

    type: str = Field(description="Exception class, e.g. CorruptInputError.")
    message: str = Field(description="What went wrong and what to do; names the file and page.")


class PageQualityRecord(_Record):
    """Measured input quality of a page (section ``quality``); null where not measurable."""

    text_height_px: float | None = Field(
        description="Median height (short side) of the line boxes, pixels of the page."
    )
    resolution_dpi: float | None = Field(
        description=(
            "Effective resolution, dots per inch, were the text 10 pt body text (from the text "
            "height; a file's stated dpi is not used)."
        )
    )
    contrast: float | None = Field(
        description="Median grey-level spread in the line boxes (95th - 5th percentile), 0..255."
    )
    sharpness: float | None = Field(
        description=(
            "Median text height divided by the blur of the text's edges (a Gaussian sigma, "
            "pixels); higher is sharper, capped at 99."
        )
    )


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
    dpi: int | None = Field(
        None,
        description=(
            "Resolution a PDF page was rendered at, dots per inch: decode.pdf_dpi, or lower "
            "when that would pass decode.max_pixels (never below decode.min_pdf_dpi); null for "
            "images."
        ),
    )
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            "What was done differently on this page (e.g. rendered at a lower dpi), then input "
            "quality too low for reliable OCR (text height, contrast, sharpness; never a failure)."
        ),
    )
    quality: PageQualityRecord | None = Field(
        None,
        description="Measured input quality (quality.enabled); null when not measured.",
    )
    error: PageError | None = Field(
        None,
        description=(
            "Set when this page could not be decoded, rendered or read: its lines are empty "
            'and its text is "" (an empty page in the TXT), the other pages are as usual.'
        ),
    )


def _source_names(data: dict[str, Any]) -> dict[str, Any]:
    """``name`` and ``relative_path`` in display form, the path's raw bytes when needed.

    A ``relative_path`` that is not valid UTF-8 (surrogate escapes from :func:`os.fsdecode`)
    is replaced by its display form and its bytes go to ``relative_path_bytes``; bytes that no
    longer belong to the path shown (a copy renamed to a valid name) are dropped. Idempotent.
    """
    data = dict(data)
    relative = data.get("relative_path")
    name = data.get("name")
    if isinstance(name, str):
        data["name"] = display_name(name)
    if not isinstance(relative, str):
        return data
    raw = bytes_field(relative)
    if raw is not None:
        data["relative_path"] = display_name(relative)
        data["relative_path_bytes"] = raw
        return data
    recorded = data.get("relative_path_bytes")
    if isinstance(recorded, str):
        try:
            belongs = display_name(decode_name_bytes(recorded)) == relative
        except ValueError:
            belongs = False
        if not belongs:
            data["relative_path_bytes"] = None
    return data


class Source(_Record):
    r"""The input file.

    A name that is not valid UTF-8 (written in GBK, Shift-JIS or Latin-1 bytes) is shown with
    each undecodable byte as \xNN; relative_path_bytes then holds the original bytes.
    """

    name: str = Field(
        description=(
            "File name; bytes that are not valid UTF-8 are shown as \\xNN (two lowercase hex "
            "digits), the original bytes being in relative_path_bytes."
        )
    )
    relative_path: str = Field(
        description=(
            "Path relative to the inbox, '/'-separated; bytes that are not valid UTF-8 are "
            "shown as \\xNN, the original bytes being in relative_path_bytes."
        )
    )
    sha256: str = Field(description="Hex sha256 of the file's bytes.")
    bytes: int = Field(description="File size, bytes.")
    media_type: str = Field(description="Media type chosen from the file name, e.g. image/jpeg.")
    relative_path_bytes: str | None = Field(
        None,
        description=(
            "Present only when the path relative to the inbox is not valid UTF-8: its original "
            "bytes, base64 (standard alphabet, padded), '/'-separated; decode them to find the "
            "original file. The result files bear the same bytes in their names (shortened "
            "with a hash when longer than 255 bytes)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _printable_names(cls, data: Any) -> Any:
        """Names as the file system gave them become display form plus raw bytes."""
        return _source_names(data) if isinstance(data, dict) else data

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Display forms even for a copy made with raw names; no ``relative_path_bytes: null``."""
        data = _source_names(handler(self))
        if data.get("relative_path_bytes") is None:
            data.pop("relative_path_bytes", None)
        return data

    def original_relative_path(self) -> str:
        """The inbox-relative path as the file system holds it (surrogate escapes included).

        Raises:
            ValueError: ``relative_path_bytes`` is not valid base64.

        """
        if self.relative_path_bytes is None:
            return self.relative_path
        return decode_name_bytes(self.relative_path_bytes)

    def renamed(self, relative: str) -> Source:
        """A copy of the source under another inbox-relative path (its name the path's last part).

        ``relative`` may hold surrogate escapes; the copy is validated afresh.
        """
        data = self.model_dump()
        data.update(
            name=relative.rsplit("/", 1)[-1], relative_path=relative, relative_path_bytes=None
        )
        return Source.model_validate(data)


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
    outcome: Literal["done", "partial"] = Field(
        "done",
        description=(
            "partial: at least one page has an error (pages[].error); the others were read."
        ),
    )
    models: dict[str, ModelRef] = Field(
        description=(
            "The models loaded, by role: detector, recognizer, orientation (page quarter "
            "turns), classifier (line 0/180, classify.enabled), upside_down_votes (the line "
            "classifier confirming upside-down pages only, without classify.enabled)."
        )
    )
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
    """Serialise a result as UTF-8 JSON (non-ASCII kept, 2-space indent).

    Every text is valid UTF-8: names the file system gave with undecodable bytes are in display
    form (:class:`Source`), and any other text holding them is too.
    """
    payload = printable(result.model_dump(mode="json", by_alias=True))
    return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


class ErrorReport(_Record):
    r"""Why one input failed: written as ``<name>.error.json`` beside where its result would be.

    Text that is not valid UTF-8 (a file name in GBK or Latin-1 bytes, quoted in the message or
    the traceback) is kept in display form, undecodable bytes shown as ``\xNN``;
    ``source_bytes`` then holds the source path's original bytes (base64).
    """

    schema_version: Literal["1"] = SCHEMA_VERSION
    source: str = Field(description="Path of the input relative to the inbox.")
    error_type: str = Field(description="Exception class, e.g. CorruptInputError.")
    message: str = Field(description="What went wrong and what to do; names the file.")
    traceback: list[str] = Field(description="Last frames of the traceback, innermost last.")
    attempts: int = Field(1, description="How many times the file was tried.")
    failed_at: str = Field(description="RFC 3339 UTC time of the failure.")
    pipeline_version: str
    source_bytes: str | None = Field(
        None,
        description=(
            "Present only when the source path is not valid UTF-8: its original bytes, base64."
        ),
    )
    failed_pages: list[int] = Field(
        default_factory=list,
        description=(
            "For a partial result: the 1-based numbers of the pages that could not be read "
            "(the original was archived and the other pages' results written)."
        ),
    )
    result: str | None = Field(
        None, description="For a partial result: its JSON, relative to the outbox."
    )

    @model_validator(mode="before")
    @classmethod
    def _printable_text(cls, data: Any) -> Any:
        """Every text in display form; the source path's bytes kept when it needs them."""
        if not isinstance(data, dict):
            return data
        source = data.get("source")
        raw = bytes_field(source) if isinstance(source, str) else None
        data = printable(data)
        if raw is not None:
            data["source_bytes"] = raw
        return data


def write_error_report(report: ErrorReport, path: Path) -> None:
    """Write an error report atomically as UTF-8 JSON (text in display form, never raises on it).

    Raises:
        OSError: the report could not be written.

    """
    payload = printable(report.model_dump(mode="json", exclude_none=True))
    atomic_write_bytes(path, (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode())
