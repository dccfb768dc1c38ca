"""The searchable PDF: each page's scan at its physical size, with an invisible text layer.

Built with two well-kept libraries, not hand-written PDF syntax: fpdf2 draws the pages (the scan
and the text layer) and embeds a subset of the font; pikepdf (qpdf) overlays the text layer on
the pages of an input that is a PDF already. The font is made with fontTools for the characters
of the document (:mod:`ocr_pipeline.outputs.glyphless`). docs/pdf.md has the measurements behind
each choice.

Pages:

- An image input (JPEG, PNG, TIFF, ...) gives one PDF page per page of the result. A JPEG whose
  EXIF orientation is a plain turn (or none) is embedded as its own bytes (``DCTDecode``: no
  recompression, no loss, the smallest file), drawn turned as EXIF says; any other page is
  embedded as delivered (EXIF applied, transparency composited, as the engine read it): a
  bilevel page (black and white only) losslessly as CCITT Group 4, greyscale and colour pages as
  JPEG at :data:`JPEG_QUALITY`. The page's size in points is its size in pixels at the image's
  dpi (:func:`image_dpi`).
- A PDF input is kept as it is (its vectors, fonts and images), and each page of the result that
  has text gets the text layer as an overlay (a form XObject placed on the page's crop box with
  ``/Rotate`` accounted for, by qpdf's ``placeFormXObject``). Pages whose OCR failed (a page
  error), pages without text, and pages that already carry text of their own (at least half as
  many characters as were read from them: a digital page, or a scan with an OCR layer) are left
  as they are. Only a file qpdf cannot open or change (PDFium could read it) has its pages
  rendered again, as the engine saw them, and embedded as images.

The text layer (PDF 32000-1:2008, section 9), row by row of the page text in reading order, in
text render mode 3 ("neither fill nor stroke", 9.3.6) with the glyphless font: one run per
word, centred on its line's box, the font size the line's height over the font's 1.25-em box
(a block's lines of about the same height share its median), stretched to the word's width by
horizontal scaling ``Tz`` (9.3.4) and turned to the row's angle (a ``cm`` rotation, 8.3.4; a
row within :data:`SNAP_DEGREES` of a quarter turn is drawn level, word by word along its
slant, for poppler's sake: :func:`_draw_row`). Words the line's text joins without a space (a
CJK run and the digits after it) touch, so no space is invented between them; each group of
words the text separates gets a space character after it, so an extractor puts the space back
(not after a line ending in CJK). Each gap between a row's words wider than
:data:`BRIDGE_GAP` em holds a filler glyph whose ``/ToUnicode`` is two spaces, so poppler's
default layout analysis (``pdftotext``, Evince) reads the row as one line instead of cutting
a receipt's labels and amounts into columns.

Upright pages: the engine's own quarter turn (``Page.rotation`` minus the decoder's EXIF or
``/Rotate`` turn) is applied to the page: image pages are drawn turned (the page is upright in
its own coordinates), PDF pages get it added to their ``/Rotate``.

Units: boxes are pixels of the page as delivered; PDF coordinates are points (1/72 inch); a
page's resolution is dots (pixels) per inch.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2 as pdfium
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image

from ocr_pipeline.documents import DecodeLimits, open_document
from ocr_pipeline.errors import InputError
from ocr_pipeline.outputs.flow import page_flow
from ocr_pipeline.outputs.glyphless import (
    ASCENT,
    DESCENT,
    EM_BOX,
    FAMILY,
    UNITS_PER_EM,
    advance,
    glyphless_font,
)
from ocr_pipeline.outputs.words import char_weight, line_words
from ocr_pipeline.results import DocumentResult, Line, Page, Word

POINTS_PER_INCH = 72.0
"""PDF user space units per inch (PDF 32000-1, 8.3.2.3)."""
DEFAULT_DPI = 300.0
"""Resolution assumed for an image that states none, or an implausible one, dots per inch."""
SOFTWARE_DPI = (72.0, 96.0)
"""Resolutions image software writes when it knows none, dots per inch: believed only while the
page they give is at most :data:`MAX_BELIEVED_INCHES` on its long side."""
MAX_BELIEVED_INCHES = 17.0
"""Longest page side a stated 72 or 96 dpi may give, inches (A3 and tabloid are 16.5 and 17)."""
DPI_RANGE = (50.0, 4800.0)
"""Stated resolutions outside this range, dots per inch, are not believed."""
JPEG_QUALITY = 85
"""Pillow JPEG quality of pages that are re-encoded (not bilevel, not a JPEG kept as it is)."""
EXISTING_TEXT_RATIO = 0.5
"""A PDF page whose own text has at least this many non-space characters per character read
by OCR already is searchable: it gets no second text layer."""
ASCENT_FRACTION = ASCENT / (ASCENT - DESCENT)
"""Where the baseline sits in a line's box, as a fraction of its height from the top edge."""
FILLER = "\ufdd0"
"""The gap filler's character: a noncharacter (never text) whose glyph maps to two spaces."""
BRIDGE_GAP = 0.35
"""A gap between two words of a row wider than this many ems gets a filler: poppler starts a
new block at a gap wider than 0.3 em (``minColSpacing1``)."""
GAP_MARGIN = 0.15
"""Distance between a filler and the words beside it, ems: more than poppler's 0.1 em word
break (``minWordBreakSpace``), so the filler stays a word of its own."""
ROW_DRIFT = 0.3
"""Most a word's baseline may sit off the baseline of its row's first word, ems (poppler puts
a word more than 0.5 em off on another line, ``maxIntraLineDelta``)."""
ROW_DEGREES = 5.0
"""Lines of a row running within this many degrees of each other are drawn as one row."""
SIZE_RATIO = 1.6
"""A line whose height is within this ratio of its block's median line height is drawn at
that median (poppler keeps lines in a block only while their font sizes are within 5%)."""
SNAP_DEGREES = 15.0
"""Lines within this many degrees of a quarter turn are drawn in pieces at that quarter turn."""
SNAP_OFFSET = 0.25
"""Most the ends of a piece of a slanted line drawn level may sit off the line's slanted
baseline, ems: a longer run is cut into pieces."""

_EXIF_ORIENTATION_TAG = 0x0112
# EXIF Orientation -> clockwise degrees to show the stored image upright; mirrored ones absent.
_EXIF_TURNS = {1: 0, 3: 180, 6: 90, 8: 270}
_LETTER = (612.0, 792.0)


class PdfWriter:
    """A searchable PDF: the page images (or the PDF's own pages) with an invisible text layer."""

    name = "pdf"
    suffix = ".pdf"
    media_type = "application/pdf"
    reads_original = True
    """Renders from the original file's pages: the daemon renders it in the worker."""

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The PDF's bytes.

        Args:
            result: the document's OCR result (boxes in pixels of each page as delivered).
            original: the input file the result was read from (its pages are embedded).

        Returns:
            A PDF with one page per page of the result, in order.

        Raises:
            OSError: ``original`` is missing or cannot be read, or its pages no longer decode
                (it is not the file the result was read from); the daemon treats it as a
                failure to write the outputs.

        """
        data = original.read_bytes()
        try:
            if result.source.media_type == "application/pdf":
                return _pdf_with_text(result, data)
            return _images_with_text(result, data)
        except InputError as exc:
            raise OSError(f"{original}: the pages cannot be read again for the PDF: {exc}") from exc


# --- geometry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    """Maps pixels of a page image to points of an upright PDF page (y down from the top).

    The image is ``width`` x ``height`` pixels at ``sx`` x ``sy`` points per pixel, turned
    ``turn`` degrees clockwise (0/90/180/270) onto the PDF page.
    """

    width: int
    height: int
    sx: float
    sy: float
    turn: int

    @property
    def size(self) -> tuple[float, float]:
        """The PDF page's ``(width, height)``, points."""
        width, height = self.width * self.sx, self.height * self.sy
        return (height, width) if self.turn in (90, 270) else (width, height)

    def point(self, x: float, y: float) -> tuple[float, float]:
        """Point ``(x, y)`` of the image, pixels, on the PDF page, points."""
        px, py = x * self.sx, y * self.sy
        width, height = self.width * self.sx, self.height * self.sy
        if self.turn == 90:
            return height - py, px
        if self.turn == 180:
            return width - px, height - py
        if self.turn == 270:
            return py, width - px
        return px, py


def image_dpi(stated: object, width: int, height: int) -> tuple[float, float]:
    """The resolution to give an image page its physical size, ``(x, y)`` dots per inch.

    The image's own (Pillow ``info["dpi"]``: JFIF density, TIFF and PNG resolution) when it
    states one in :data:`DPI_RANGE`; a stated 72 or 96 (what software writes when it knows
    none) only while the page it gives is at most :data:`MAX_BELIEVED_INCHES` long; else
    :data:`DEFAULT_DPI` (a 2480 x 3508 A4 scan at 300 dpi is 8.3 x 11.7 in).

    Args:
        stated: the Pillow frame's ``info.get("dpi")``: ``(x, y)`` or ``None``.
        width: the frame's width, pixels (as stored).
        height: the frame's height, pixels.

    """
    try:
        x, y = (float(v) for v in stated)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return DEFAULT_DPI, DEFAULT_DPI
    low, high = DPI_RANGE
    if not (low <= x <= high and low <= y <= high):
        return DEFAULT_DPI, DEFAULT_DPI
    if (x in SOFTWARE_DPI or y in SOFTWARE_DPI) and max(width / x, height / y) > (
        MAX_BELIEVED_INCHES
    ):
        return DEFAULT_DPI, DEFAULT_DPI
    return x, y


def _tokens(line: Line) -> list[list[Word]]:
    """The line's words grouped into the runs its text separates by spaces, in reading order.

    The recognizer's words (``line.words``) are matched against ``line.text``: words the text
    joins without a space (a CJK run and the digits after it) share a group. When they do not
    spell the text (the text was corrected after they were made), the text's own tokens
    spread over the line box are used instead, so the text layer always holds ``line.text``.
    """
    words = line_words(line)
    if line.words is None:
        return [[word] for word in words]
    text = line.text
    groups: list[list[Word]] = []
    position = 0
    for word in words:
        if not word.text:
            continue
        found = text.find(word.text, position)
        if found < 0 or text[position:found].strip():
            groups = []
            break
        if groups and found == position:
            groups[-1].append(word)
        else:
            groups.append([word])
        position = found + len(word.text)
    if groups and not text[position:].strip():
        return groups
    return [[word] for word in line_words(line.model_copy(update={"words": None}))]


def _natural_width(text: str, size: float) -> float:
    """Width of ``text`` in the glyphless font at ``size`` points, unscaled, points."""
    return sum(advance(c) for c in text) * size / UNITS_PER_EM


@dataclass(frozen=True)
class _Frame:
    """A line's box on the PDF page, points (y down from the top).

    ``(x0, y0)`` is the box's first corner (the text's top-left), ``(ux, uy)`` the unit vector
    along the reading direction (corner 0 to 1), ``height`` the box's extent across it (corner 0
    to 3), measured along the normal ``(-uy, ux)``, which points from the text's head to its foot.
    """

    x0: float
    y0: float
    ux: float
    uy: float
    height: float

    def along(self, x: float, y: float) -> float:
        """Offset of page point ``(x, y)`` along the reading direction from the origin, points."""
        return (x - self.x0) * self.ux + (y - self.y0) * self.uy

    def across(self, x: float, y: float) -> float:
        """Offset of page point ``(x, y)`` across the reading direction (down), points."""
        return -(x - self.x0) * self.uy + (y - self.y0) * self.ux

    @property
    def angle(self) -> float:
        """Angle of the reading direction, degrees counter-clockwise from the page's x axis."""
        return math.degrees(math.atan2(-self.uy, self.ux))


def _frame(line: Line, place: _Placement) -> _Frame | None:
    """The frame of ``line``'s box on the page; ``None`` for a box without height."""
    x0, y0 = place.point(*line.box[0])
    x1, y1 = place.point(*line.box[1])
    x3, y3 = place.point(*line.box[3])
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = ((x1 - x0) / length, (y1 - y0) / length) if length > 1e-6 else (1.0, 0.0)
    height = abs(-(x3 - x0) * uy + (y3 - y0) * ux)
    return _Frame(x0, y0, ux, uy, height) if height >= 1e-3 else None


@dataclass(frozen=True)
class _Run:
    """Text drawn as one piece: ``text`` between offsets ``start`` and ``stop`` along a row.

    Offsets are points along the row's reading direction from its frame's origin; ``baseline``
    is the text's baseline, points across the row's frame (down from its origin), and ``size``
    the font size, points. ``space`` is drawn after the text, outside that extent (a word
    separator).
    """

    text: str
    start: float
    stop: float
    baseline: float
    size: float
    space: bool = False


def _runs(
    line: Line, along: Callable[[Word], tuple[float, float]], baseline: float, size: float
) -> list[_Run]:
    """The runs of a line: one per word, touching within a group the text writes unspaced.

    A group of words without spaces between them (a CJK run and the digits after it) is drawn
    as touching segments, each from its word's start to the next word's start, so no extractor
    sees a gap there. The last run of every group gets a space after it, the line's last too
    (extractors that follow the content order, pypdf or pdfminer, would join it to the next
    line's first word, as would poppler when the next line starts right after it), unless the
    line ends in a wide (CJK) character.
    """
    runs: list[_Run] = []
    for token in _tokens(line):
        extents = [along(word) for word in token]
        starts = [start for start, _ in extents]
        end = max(extents[-1][1], starts[-1])
        cuts = [*starts, end]
        if len(token) > 1 and all(b > a for a, b in itertools.pairwise(cuts)):
            pieces = [(word.text, cuts[i], cuts[i + 1]) for i, word in enumerate(token)]
        else:
            pieces = [("".join(word.text for word in token), starts[0], end)]
        for index, (text, start, stop) in enumerate(pieces):
            runs.append(_Run(text, start, stop, baseline, size, index == len(pieces) - 1))
    if runs and char_weight(runs[-1].text[-1]) == 2:
        # A line ending in CJK: no space after it (CJK lines run on without one).
        runs[-1] = dataclasses.replace(runs[-1], space=False)
    return runs


def _bridged(runs: list[_Run]) -> list[_Run]:
    """``runs`` with a :data:`FILLER` run in each gap wider than :data:`BRIDGE_GAP` em.

    The filler keeps :data:`GAP_MARGIN` em off the runs on either side, so poppler reads it as
    a word of its own (it starts a new word after a gap of 0.1 em) that it keeps in the row's
    block (it pulls in words within 0.3 em); see :func:`_draw_row`.
    """
    bridged: list[_Run] = []
    for run in runs:
        if bridged:
            last = bridged[-1]
            size = min(last.size, run.size)
            if run.start - last.stop > BRIDGE_GAP * size:
                start = last.stop + GAP_MARGIN * size
                stop = run.start - GAP_MARGIN * size
                bridged.append(_Run(FILLER, start, stop, last.baseline, last.size))
        bridged.append(run)
    return bridged


def _chunks(run: _Run, longest: float) -> list[_Run]:
    """``run`` cut between characters into pieces at most ``longest`` points long.

    Each piece holds at least one character; each character takes a share of the run's extent
    proportional to its advance.
    """
    total = sum(advance(c) for c in run.text)
    if run.stop - run.start <= longest or len(run.text) < 2 or total <= 0:
        return [run]
    scale = (run.stop - run.start) / total
    pieces: list[_Run] = []
    begin, position, text = run.start, run.start, ""
    for char in run.text:
        width = advance(char) * scale
        if text and position + width - begin > longest:
            pieces.append(dataclasses.replace(run, text=text, start=begin, stop=position))
            begin, text = position, ""
        text += char
        position += width
    pieces.append(dataclasses.replace(run, text=text, start=begin, space=run.space))
    return pieces


def _line_heights(page: Page, place: _Placement) -> list[float]:
    """The height each line of ``page`` is drawn at, points: its own, or its block's usual one.

    A line whose box height is within :data:`SIZE_RATIO` of the median height of its layout
    block's lines gets that median: poppler keeps lines in one block only while their font
    sizes are within 5% of each other, and reads a block's lines top to bottom. Other lines
    (a heading) keep their own height.
    """
    heights = []
    for line in page.lines:
        frame = _frame(line, place)
        heights.append(frame.height if frame is not None else 0.0)
    by_block: dict[int, list[float]] = {}
    for line, height in zip(page.lines, heights, strict=True):
        if height > 0:
            by_block.setdefault(line.block, []).append(height)
    medians = {block: float(np.median(values)) for block, values in by_block.items()}
    drawn = []
    for line, height in zip(page.lines, heights, strict=True):
        usual = medians.get(line.block, height)
        near = height > 0 and max(height / usual, usual / height) <= SIZE_RATIO
        drawn.append(usual if near else height)
    return drawn


def _rows(page: Page) -> list[list[int]]:
    """Indices of the page's lines grouped into the rows of its text (joined by a space)."""
    flow, _ = page_flow(page)
    rows: list[list[int]] = []
    for index, item in enumerate(flow):
        if rows and item.before == " ":
            rows[-1].append(index)
        else:
            rows.append([index])
    return rows


def _draw_text_layer(pdf: FPDF, page: Page, place: _Placement) -> None:
    """Draw the page's text invisibly, row by row of its text, in reading order.

    A row's lines are drawn together (:func:`_draw_row`, all at the first one's height) while
    each one sits beside the one before it (:func:`_beside`). A line of the row that does not
    (the layout joined lines whose boxes overlap one above the other) starts a new group; a
    vertical line is drawn on its own.
    """
    heights = _line_heights(page, place)
    for row in _rows(page):
        group: list[tuple[Line, float]] = []
        head: _Frame | None = None
        previous: tuple[Line, _Frame] | None = None
        for index in row:
            line = page.lines[index]
            frame = _frame(line, place)
            if frame is None:
                continue
            if line.vertical:
                if head is not None:
                    _draw_row(pdf, head, group, place)
                _draw_row(pdf, frame, [(line, heights[index])], place)
                head, group, previous = None, [], None
                continue
            if head is None or previous is None or not _beside(*previous, line, frame, place):
                if head is not None:
                    _draw_row(pdf, head, group, place)
                head, group = frame, []
            group.append((line, group[0][1] if group else heights[index]))
            previous = (line, frame)
        if head is not None and group:
            _draw_row(pdf, head, group, place)


def _beside(first: Line, frame_a: _Frame, second: Line, frame_b: _Frame, place: _Placement) -> bool:
    """Whether ``second`` continues the row of ``first`` on the page (``frame_*``: theirs).

    It runs the same way (within :data:`ROW_DEGREES`), its box overlaps the height of the
    first's (measured across the first's reading direction, so a skewed row still counts),
    and it starts after the first ends, less a fifth of an em (poppler lets words overlap that
    much on a line).
    """
    if not _parallel(frame_a, frame_b):
        return False
    centre_a = sum(frame_a.across(*place.point(*c)) for c in first.box) / 4
    centre_b = sum(frame_a.across(*place.point(*c)) for c in second.box) / 4
    end_a = max(frame_a.along(*place.point(*c)) for c in first.box)
    start_b = min(frame_a.along(*place.point(*c)) for c in second.box)
    overlap = abs(centre_b - centre_a) <= 0.5 * (frame_a.height + frame_b.height)
    em = min(frame_a.height, frame_b.height) / EM_BOX
    return overlap and start_b >= end_a - 0.2 * em


def _parallel(a: _Frame, b: _Frame) -> bool:
    """Whether two lines' frames run the same way (within :data:`ROW_DEGREES`)."""
    turn = (a.angle - b.angle + 180.0) % 360.0 - 180.0
    return abs(turn) <= ROW_DEGREES


def _draw_row(
    pdf: FPDF, frame: _Frame, members: list[tuple[Line, float]], place: _Placement
) -> None:
    """Draw one row of text (lines the page text joins by a space) invisibly, in ``frame``.

    ``frame`` is the row's first line's; ``members`` are the row's lines with the height to
    draw them at, points. Each line's text box is centred on its own box, that high (font size
    the height over :data:`~ocr_pipeline.outputs.glyphless.EM_BOX`), its baseline
    :data:`ASCENT_FRACTION` of it below the box's top (less when that would put characters off
    the page, where poppler drops them); each word is stretched to its word's width by
    horizontal scaling ``Tz``.

    So that poppler's default reading order (pdftotext, Evince's copy) gives the row as one
    line, as the TXT has it: every gap wider than :data:`BRIDGE_GAP` em between its words holds
    a filler (:func:`_bridged`, a glyph whose ``/ToUnicode`` is two spaces; poppler skips a
    lone space), so no gap splits the row into columns; a line ending in a hyphen gets a
    filler after it (poppler joins it to the next line and drops the hyphen); and no piece's
    baseline sits more than :data:`ROW_DRIFT` em off the first piece's (poppler puts a word
    more than half an em off the baseline of a line's first word on another line).

    A row within :data:`SNAP_DEGREES` of a quarter turn (a slightly skewed scan) is drawn
    level at that quarter turn, each word centred on the row's slanted baseline where it lies
    (within that drift): poppler starts a new word wherever the baseline has moved by more
    than half a point since the word's first character, so a word drawn slanted came out cut
    in pieces. A run so long that its ends would sit more than :data:`SNAP_OFFSET` em off the
    slanted baseline is cut into pieces that do not. Steeper rows are drawn turned to their
    angle.
    """
    width, page_height = place.size

    def along(word: Word) -> tuple[float, float]:
        offsets = [frame.along(*place.point(*corner)) for corner in word.box]
        return min(offsets), max(offsets)

    def inside(first: float, last: float, offset: float) -> bool:
        ends = (
            (
                frame.x0 + s * frame.ux - offset * frame.uy,
                frame.y0 + s * frame.uy + offset * frame.ux,
            )
            for s in (first, last)
        )
        return all(0.5 <= x <= width - 0.5 and 0.5 <= y <= page_height - 0.5 for x, y in ends)

    runs: list[_Run] = []
    for line, height in members:
        centre = sum(frame.across(*place.point(*corner)) for corner in line.box) / 4
        baseline = centre + (ASCENT_FRACTION - 0.5) * height
        line_runs = _runs(line, along, baseline, height / EM_BOX)
        if not line_runs:
            continue
        first = min(r.start for r in line_runs)
        last = max(r.stop for r in line_runs)
        moved = next(
            (
                baseline - f * height
                for f in (0.0, 0.2, 0.4, 0.6, 0.8)
                if inside(first, last, baseline - f * height)
            ),
            baseline,
        )
        if moved != baseline:
            line_runs = [dataclasses.replace(r, baseline=moved) for r in line_runs]
        runs.extend(line_runs)
    if not runs:
        return
    runs = _bridged(runs)
    last_run = runs[-1]
    if last_run.text.endswith("-"):
        start = last_run.stop + GAP_MARGIN * last_run.size
        stop = start + 0.5 * last_run.size
        if inside(start, stop, last_run.baseline):
            runs.append(_Run(FILLER, start, stop, last_run.baseline, last_run.size))
    angle = frame.angle
    quarter = 90.0 * round(angle / 90.0)
    reference = quarter if abs(angle - quarter) <= SNAP_DEGREES else angle
    slant = math.radians(angle - reference)
    cos_d, sin_d = math.cos(slant), math.sin(slant)
    drift = ROW_DRIFT * min(r.size for r in runs)
    turned = pdf.rotation(reference, frame.x0, frame.y0) if abs(reference) > 0.01 else nullcontext()
    anchor: float | None = None
    with turned:
        for run in runs:
            longest = 2 * SNAP_OFFSET * run.size / abs(sin_d) if abs(sin_d) > 1e-9 else math.inf
            for piece in _chunks(run, longest) if run.text != FILLER else [run]:
                # Both ends on the slanted baseline, in the frame turned by ``reference``.
                ax = piece.start * cos_d + piece.baseline * sin_d
                bx = piece.stop * cos_d + piece.baseline * sin_d
                middle = (piece.start + piece.stop) / 2
                y = -middle * sin_d + piece.baseline * cos_d
                anchor = y if anchor is None else anchor
                y = min(max(y, anchor - drift), anchor + drift)
                natural = _natural_width(piece.text, piece.size)
                span = bx - ax
                pdf.set_font_size(piece.size)
                pdf.set_stretching(100.0 * span / natural if span > 0 else 100.0)
                pdf.text(frame.x0 + ax, frame.y0 + y, piece.text + (" " if piece.space else ""))


def _page_chars(page: Page) -> set[str]:
    return {c for line in page.lines for c in line.text}


@contextmanager
def _text_pdf(result: DocumentResult) -> Iterator[FPDF]:
    """An empty fpdf2 document, points, no margins, with the glyphless font for ``result``.

    The font's file lives in a temporary folder until the document has been output (fpdf2
    reads a font from a file, lazily). It holds the filler glyph too (:func:`_spaced_fillers`).
    """
    pdf = FPDF(unit="pt")
    pdf.set_margin(0)
    pdf.set_auto_page_break(False)
    pdf.set_creator("ocr-pipeline")
    pdf.set_title(result.source.name)
    chars = set().union(*(_page_chars(p) for p in result.pages)) | {" ", FILLER}
    with tempfile.TemporaryDirectory(prefix="ocr-pipeline-font-") as folder:
        font = Path(folder) / "glyphless.ttf"
        font.write_bytes(glyphless_font(chars))
        pdf.add_font(FAMILY, fname=font)
        pdf.set_font(FAMILY, size=10)
        pdf.text_mode = TextMode.INVISIBLE
        yield pdf


def _spaced_fillers(document: pikepdf.Pdf) -> None:
    """Map the :data:`FILLER` glyph to two spaces in each font's ``/ToUnicode`` (in place).

    fpdf2 maps each glyph to its character; the filler is a noncharacter (never text), so its
    entry ``<code> <FDD0>`` becomes ``<code> <00200020>``: a one-to-many mapping, as for a
    ligature (PDF 32000-1, 9.10.3). Poppler drops a glyph that maps to one space but keeps one
    that maps to two as a word of blanks.
    """
    pattern = re.compile(rb"<([0-9A-Fa-f]{4})> <" + f"{ord(FILLER):04X}".encode() + rb">")
    done: set[tuple[int, int]] = set()
    for page in document.pages:
        resources = page.obj.get("/Resources")
        fonts = resources.get("/Font") if isinstance(resources, pikepdf.Dictionary) else None
        if not isinstance(fonts, pikepdf.Dictionary):
            continue
        for _, font in fonts.items():
            unicode_map = font.get("/ToUnicode")
            if not isinstance(unicode_map, pikepdf.Stream) or unicode_map.objgen in done:
                continue
            done.add(unicode_map.objgen)
            data = unicode_map.read_bytes()
            changed = pattern.sub(rb"<\1> <00200020>", data)
            if changed != data:
                unicode_map.write(changed)


def _finished(pdf: FPDF) -> bytes:
    """The bytes of an fpdf2 document with its fillers mapped to spaces."""
    with pikepdf.open(io.BytesIO(bytes(pdf.output()))) as document:
        _spaced_fillers(document)
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()


# --- image inputs ---------------------------------------------------------------------------


def _images_with_text(result: DocumentResult, data: bytes) -> bytes:
    """The PDF of an image input: each page's image, then its text layer."""
    with ExitStack() as stack:
        pdf = stack.enter_context(_text_pdf(result))
        image = stack.enter_context(Image.open(io.BytesIO(data)))
        orientation = int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
        keep_jpeg = (
            image.format == "JPEG"
            and image.mode in ("L", "RGB", "CMYK")
            and orientation in _EXIF_TURNS
            and len(result.pages) == 1
        )
        if keep_jpeg:
            stored = (image.width, image.height)
            dpi = image.info.get("dpi")
            _jpeg_page(pdf, result.pages[0], data, stored, dpi, _EXIF_TURNS[orientation])
        else:
            _decoded_pages(pdf, result, data, image)
        return _finished(pdf)


def _jpeg_page(
    pdf: FPDF,
    page: Page,
    data: bytes,
    stored: tuple[int, int],
    stated_dpi: object,
    exif_turn: int,
) -> None:
    """One page of a JPEG kept as its bytes, drawn turned by EXIF and the engine's turn."""
    width, height = stored
    dpi_x, dpi_y = image_dpi(stated_dpi, width, height)
    sx, sy = POINTS_PER_INCH / dpi_x, POINTS_PER_INCH / dpi_y
    turn = page.rotation % 360
    image_place = _Placement(width, height, sx, sy, turn)
    delivered = (height, width) if exif_turn in (90, 270) else (width, height)
    dsx, dsy = (sy, sx) if exif_turn in (90, 270) else (sx, sy)
    engine_turn = (page.rotation - exif_turn) % 360
    text_place = _scaled(page, _Placement(*delivered, dsx, dsy, engine_turn))
    pdf.add_page(format=image_place.size)
    _draw_image(pdf, io.BytesIO(data), image_place)
    _draw_text_layer(pdf, page, text_place)


def _scaled(page: Page, place: _Placement) -> _Placement:
    """``place`` for the page record's pixel size (equal to the image's, unless it differs)."""
    if (
        page.width <= 0
        or page.height <= 0
        or (page.width, page.height)
        == (
            place.width,
            place.height,
        )
    ):
        return place
    sx = place.sx * place.width / page.width
    sy = place.sy * place.height / page.height
    return _Placement(page.width, page.height, sx, sy, place.turn)


def _draw_image(pdf: FPDF, image: io.BytesIO | Image.Image, place: _Placement) -> None:
    """Draw an image filling ``place``'s rectangle, turned by ``place.turn``."""
    x, y = place.point(0, 0)
    width, height = place.width * place.sx, place.height * place.sy
    turned = pdf.rotation(-place.turn, x, y) if place.turn else nullcontext()
    with turned:
        pdf.image(image, x=x, y=y, w=width, h=height)


def _decoded_pages(pdf: FPDF, result: DocumentResult, data: bytes, image: Image.Image) -> None:
    """Every page as the engine saw it (decoded again), re-encoded, with its text layer."""
    with open_document(data, result.source.name, _limits_for(result, data)) as document:
        for index, page in enumerate(result.pages):
            try:
                decoded = document.page(index)
            except InputError:
                if page.error is None:
                    raise
                _blank_page(pdf, page)
                continue
            height, width = decoded.image.shape[:2]
            try:
                image.seek(index)
                stated = image.info.get("dpi")
            except (EOFError, OSError, ValueError):
                stated = None
            dpi_x, dpi_y = image_dpi(stated, image.width, image.height)
            if decoded.rotation in (90, 270):
                dpi_x, dpi_y = dpi_y, dpi_x
            engine_turn = (page.rotation - decoded.rotation) % 360
            place = _Placement(
                width, height, POINTS_PER_INCH / dpi_x, POINTS_PER_INCH / dpi_y, engine_turn
            )
            pdf.add_page(format=place.size)
            _draw_image(pdf, _encode(decoded.image), place)
            del decoded
            _draw_text_layer(pdf, page, _scaled(page, place))


def _blank_page(pdf: FPDF, page: Page) -> None:
    """A page that could not be decoded: blank, the size it would have had at the default dpi."""
    if page.width > 0 and page.height > 0:
        scale = POINTS_PER_INCH / DEFAULT_DPI
        pdf.add_page(format=(page.width * scale, page.height * scale))
    else:
        pdf.add_page(format=_LETTER)


def _encode(bgr: np.ndarray) -> io.BytesIO | Image.Image:
    """A delivered page ``(H, W, 3)`` uint8 BGR as fpdf2 should embed it.

    Bilevel (grey, only 0 and 255): a mode ``1`` image, which fpdf2 encodes as CCITT Group 4
    (lossless) when Pillow has libtiff, else Flate. Greyscale and colour: JPEG bytes at
    :data:`JPEG_QUALITY` (one channel for grey), which fpdf2 embeds as they are.
    """
    blue, green, red = bgr[:, :, 0], bgr[:, :, 1], bgr[:, :, 2]
    grey = np.array_equal(blue, green) and np.array_equal(green, red)
    if grey and bool(((blue == 0) | (blue == 255)).all()):
        return Image.fromarray(blue).convert("1", dither=Image.Dither.NONE)
    picture = Image.fromarray(blue if grey else np.ascontiguousarray(bgr[:, :, ::-1]))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    out.seek(0)
    return out


# --- PDF inputs -----------------------------------------------------------------------------


def _pdf_with_text(result: DocumentResult, data: bytes) -> bytes:
    """The input PDF with a text layer over each page the result read (see the module doc).

    A PDF qpdf cannot open or change (PDFium could read it): its rendered pages become images.
    """
    try:
        return _overlaid_pdf(result, data)
    except pikepdf.PdfError:
        return _rendered_pdf(result, data)


def _overlaid_pdf(result: DocumentResult, data: bytes) -> bytes:
    """The input PDF itself, each page the result read overlaid with its text layer.

    Raises:
        pikepdf.PdfError: qpdf cannot open, change or write the file.

    """
    with pikepdf.open(io.BytesIO(data)) as source, _text_pdf(result) as pdf:
        existing = _existing_text(data, len(result.pages))
        layered: list[int] = []
        for index, page in enumerate(result.pages):
            if page.error is not None or not page.lines or page.dpi is None:
                continue
            read = sum(len(line.text.replace(" ", "")) for line in page.lines)
            if existing[index] >= EXISTING_TEXT_RATIO * read:
                continue
            target = source.pages[index]
            rotate = target.rotation % 360
            box = _visible_box(target)
            width, height = box.width, box.height
            if rotate in (90, 270):
                width, height = height, width
            scale = POINTS_PER_INCH / page.dpi
            place = _Placement(page.width, page.height, scale, scale, 0)
            pdf.add_page(format=(width, height))
            _draw_text_layer(pdf, page, place)
            layered.append(index)
        if not layered:
            return data
        with pikepdf.open(io.BytesIO(bytes(pdf.output()))) as layer:
            _spaced_fillers(layer)
            for number, index in enumerate(layered):
                target = source.pages[index]
                target.add_overlay(layer.pages[number], _visible_box(target))
                page = result.pages[index]
                engine_turn = (page.rotation - target.rotation) % 360
                if engine_turn:
                    target.rotate(engine_turn, relative=True)
            out = io.BytesIO()
            source.save(out)
            return out.getvalue()


def _visible_box(page: pikepdf.Page) -> pikepdf.Rectangle:
    """The part of the page a viewer shows: its crop box within its media box, points."""
    media = pikepdf.Rectangle(page.mediabox)
    crop = pikepdf.Rectangle(page.cropbox)
    box = crop & media
    return box if box.width > 0 and box.height > 0 else media


def _existing_text(data: bytes, count: int) -> list[int]:
    """Non-space characters of each page's own text (PDFium's extraction); 0 when unreadable."""
    counts = [0] * count
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return counts
    try:
        for index in range(min(count, len(document))):
            try:
                page = document[index]
                text = page.get_textpage().get_text_range()
            except pdfium.PdfiumError:
                continue
            counts[index] = sum(1 for c in text if not c.isspace())
    finally:
        document.close()
    return counts


def _rendered_pdf(result: DocumentResult, data: bytes) -> bytes:
    """A PDF pikepdf cannot open: each page rendered (as OCR saw it) with its text layer."""
    with _text_pdf(result) as pdf:
        with open_document(data, result.source.name, _limits_for(result, data)) as document:
            for index, page in enumerate(result.pages):
                try:
                    decoded = document.page(index)
                except InputError:
                    _blank_page(pdf, page)
                    continue
                height, width = decoded.image.shape[:2]
                scale = POINTS_PER_INCH / (decoded.dpi or DEFAULT_DPI)
                engine_turn = (page.rotation - decoded.rotation) % 360
                place = _Placement(width, height, scale, scale, engine_turn)
                pdf.add_page(format=place.size)
                _draw_image(pdf, _encode(decoded.image), place)
                del decoded
                _draw_text_layer(pdf, page, _scaled(page, place))
        return _finished(pdf)


def _limits_for(result: DocumentResult, data: bytes) -> DecodeLimits:
    """Decoding limits that let the pages the result was read from decode again.

    The daemon's own limits may have been raised above the defaults; the PDF dpi is the
    highest the result's pages were rendered at.
    """
    pixels = max((p.width * p.height for p in result.pages), default=0)
    dpis = [p.dpi for p in result.pages if p.dpi]
    return DecodeLimits(
        max_bytes=max(len(data), 1),
        max_pixels=max(pixels, DecodeLimits.max_pixels),
        max_pages=max(len(result.pages), 1),
        max_total_pixels=max(pixels * len(result.pages), DecodeLimits.max_total_pixels),
        pdf_dpi=max(dpis, default=DecodeLimits.pdf_dpi),
        min_pdf_dpi=min([*dpis, DecodeLimits.min_pdf_dpi]),
    )
