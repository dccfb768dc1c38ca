"""A page's text flow: its lines and words in reading order with the whitespace of its TXT.

The hOCR and ALTO writers mark up the same text as the TXT file, character for character; what
they need for it is here: each line's words (the recognizer's word boxes, else the line's tokens
split along its box, :func:`~ocr_pipeline.outputs.words.line_words`) and the whitespace the page
text puts between lines, rows and blocks (:func:`page_flow`), plus the small geometry and
language helpers both writers use (axis-aligned bounds inside the page, text angles, Chinese
lines).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ocr_pipeline.outputs.words import Quad, bounds, line_words, reading_angle
from ocr_pipeline.results import Line, Page, Word

SOFTWARE = "ocr-pipeline"
"""The software name written into hOCR and ALTO."""

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class FlowLine:
    """One line of a page in reading order, with the whitespace the TXT puts around its parts."""

    line: Line
    """The line record."""
    before: str
    """Whitespace between the previous line and this one in the page text: ``""`` for the
    first line, ``" "`` on the same row, ``"\\n"`` on a new row, ``"\\n\\n"`` in a new block."""
    words: list[Word]
    """The line's words in reading order, none empty."""
    gaps: list[str]
    """Whitespace of the line's text around its words: ``len(words) + 1`` strings (before the
    first word, between words: ``""`` between adjacent CJK runs, after the last)."""
    new_block: bool
    """Whether this line starts a layout block (the first line of a page does)."""


def clean_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold (control characters) as U+FFFD."""
    return _INVALID_XML.sub("\ufffd", text)


def _gaps(text: str, parts: list[str]) -> list[str] | None:
    """The whitespace around ``parts`` found in order in ``text``, or None if they are not."""
    gaps: list[str] = []
    cursor = 0
    for part in parts:
        position = text.find(part, cursor)
        if position < 0 or text[cursor:position].strip():
            return None
        gaps.append(text[cursor:position])
        cursor = position + len(part)
    if text[cursor:].strip():
        return None
    gaps.append(text[cursor:])
    return gaps


def _split_words(line: Line) -> list[Word]:
    """The line's tokens split along its box in the reading direction (down a vertical line)."""
    return line_words(line.model_copy(update={"words": None}))


def words_with_gaps(line: Line) -> tuple[list[Word], list[str]]:
    """The words of ``line`` and the whitespace of its text around them.

    The recognizer's words when their texts are the line's text's (a spell-corrected line's are
    not), else the line's tokens split along its box.
    """
    words = [word for word in line.words or [] if word.text]
    gaps = _gaps(line.text, [word.text for word in words]) if line.words is not None else None
    if gaps is None:
        words = [word for word in _split_words(line) if word.text]
        gaps = _gaps(line.text, [word.text for word in words])
    if gaps is None:  # cannot happen: the split tokens are the text's
        return [], [line.text]
    return words, gaps


def page_flow(page: Page) -> tuple[list[FlowLine], str]:
    r"""The page's lines in reading order with the page text's whitespace around them.

    Each line's text is looked up in ``page.text`` after the previous one's, and the whitespace
    between them kept. If the page text does not hold the lines so (it keeps a stretch the
    spell-corrector could not place), rows are assumed to hold one line each: ``"\n"`` between
    lines, ``"\n\n"`` between blocks.

    Returns:
        The lines, and the whitespace after the last line (normally ``""``).

    """
    lines = page.lines
    found = _gaps(page.text, [line.text for line in lines])
    flow: list[FlowLine] = []
    for number, line in enumerate(lines):
        new_block = number == 0 or line.block != lines[number - 1].block
        if found is not None:
            before = found[number]
        else:
            before = "" if number == 0 else "\n\n" if new_block else "\n"
        words, gaps = words_with_gaps(line)
        gaps = [clean_text(gap) for gap in gaps]  # whitespace XML cannot hold (\x1c-\x1f)
        flow.append(FlowLine(line, clean_text(before), words, gaps, new_block))
    return flow, found[-1] if found is not None and lines else ""


def clamp_bounds(quad: Quad, width: int, height: int) -> tuple[int, int, int, int]:
    """Axis-aligned bounds ``(x0, y0, x1, y1)`` of ``quad``, kept inside ``0 0 width height``."""
    x0, y0, x1, y1 = bounds(quad)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    return x0, y0, max(x0, x1), max(y0, y1)


def union_bounds(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The smallest box holding every box of ``boxes`` (not empty)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def text_angle(line: Line) -> float:
    """Angle of the line's text (its characters' upright), degrees counter-clockwise, (-180, 180].

    From the line box's first edge: along the reading direction of a horizontal line, and
    along the characters' rows of a vertical line (whose box is upright, not turned).
    """
    return reading_angle(line.box)


def mean_angle(angles: list[float]) -> float:
    """Circular mean of ``angles`` (degrees), in (-180, 180]; 0 for none."""
    if not angles:
        return 0.0
    x = sum(math.cos(math.radians(a)) for a in angles)
    y = sum(math.sin(math.radians(a)) for a in angles)
    mean = math.degrees(math.atan2(y, x))
    return 180.0 if mean <= -180.0 else mean


def is_han(char: str) -> bool:
    """Whether ``char`` is a Chinese (Han) character: the CJK Unified and Compatibility blocks."""
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3134F
    )


def language(text: str) -> str | None:
    """``"zh"`` when at least half of the letters of ``text`` are Chinese characters, else None.

    Other languages are not told apart (the Latin-script receipts may be English or Malay).
    """
    letters = [c for c in text if c.isalpha()]
    han = sum(1 for c in letters if is_han(c))
    return "zh" if letters and han * 2 >= len(letters) else None


def decimal(value: float, places: int = 1) -> str:
    """``value`` rounded to ``places`` decimals, without trailing zeros (``90``, ``-1.5``)."""
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
