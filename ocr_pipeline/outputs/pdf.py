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

The text layer (PDF 32000-1:2008, section 9), line by line in reading order, in text render
mode 3 ("neither fill nor stroke", 9.3.6) with the glyphless font: one run per word, its
baseline 0.8 of the line's height below the line's top edge and the font size the line's
height, stretched to the word's width by horizontal scaling ``Tz`` (9.3.4) and turned to the
line's angle (a ``cm`` rotation, 8.3.4; a line within :data:`SNAP_DEGREES` of a quarter turn
is drawn level, word by word along its slant, for poppler's sake: :func:`_draw_line`). Words
the line's text joins without a space (a CJK run and the digits after it) touch, so no space is
invented between them; each group of words the text separates gets a space character after it,
so an extractor puts the space back (not after a line ending in CJK).

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
from ocr_pipeline.outputs.glyphless import (
    ASCENT,
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
ASCENT_FRACTION = ASCENT / UNITS_PER_EM
"""Where the baseline sits in a line's box, as a fraction of its height from the top edge."""
SNAP_DEGREES = 15.0
"""Lines within this many degrees of a quarter turn are drawn in pieces at that quarter turn."""
SNAP_OFFSET = 0.25
"""Most the ends of a piece of a slanted line drawn level may sit off the line's slanted
baseline, as a fraction of the line's height: a longer run is cut into pieces."""

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
class _Run:
    """Text drawn as one piece: ``text`` between offsets ``start`` and ``stop`` along a line.

    Offsets are points along the line's reading direction from its box's first corner;
    ``space`` is drawn after the text, outside that extent (a word separator).
    """

    text: str
    start: float
    stop: float
    space: bool = False


def _runs(line: Line, along: Callable[[Word], tuple[float, float]]) -> list[_Run]:
    """The runs of a line: one per word, touching within a group the text writes unspaced.

    A group of words without spaces between them (a CJK run and the digits after it) is drawn
    as touching segments, each from its word's start to the next word's start, so no extractor
    sees a gap there. The last run of every group gets a space after it, the line's last too
    (extractors that follow the content order, pypdf or pdfminer, would join it to the next
    line's first word, as would poppler when the next line starts right after it), unless the
    line ends in a wide (CJK) character.
    """
    runs: list[_Run] = []
    tokens = _tokens(line)
    for token in tokens:
        extents = [along(word) for word in token]
        starts = [start for start, _ in extents]
        end = max(extents[-1][1], starts[-1])
        cuts = [*starts, end]
        if len(token) > 1 and all(b > a for a, b in itertools.pairwise(cuts)):
            pieces = [(word.text, cuts[i], cuts[i + 1]) for i, word in enumerate(token)]
        else:
            pieces = [("".join(word.text for word in token), starts[0], end)]
        for index, (text, start, stop) in enumerate(pieces):
            runs.append(_Run(text, start, stop, index == len(pieces) - 1))
    if runs and char_weight(runs[-1].text[-1]) == 2:
        # A line ending in CJK: no space after it (CJK lines run on without one).
        runs[-1] = dataclasses.replace(runs[-1], space=False)
    return runs


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
            pieces.append(_Run(text, begin, position))
            begin, text = position, ""
        text += char
        position += width
    pieces.append(_Run(text, begin, run.stop, run.space))
    return pieces


def _draw_line(pdf: FPDF, line: Line, place: _Placement) -> None:
    """Draw one line's words invisibly on the current page, on the line's box.

    The line's frame, in page points: origin its box's first corner (the text's top-left),
    ``u`` along the reading direction (corner 0 to 1), the height ``h`` across it (corner 0
    to 3). The font size is ``h``; the baseline runs :data:`ASCENT_FRACTION` ``h`` below the
    top edge (less when that would put characters off the page, where extractors drop them).

    A line within :data:`SNAP_DEGREES` of a quarter turn (a slightly skewed scan) is drawn
    level at that quarter turn, each word centred on the line's slanted baseline where it
    lies: poppler (pdftotext, Evince) starts a new word wherever the baseline has moved by
    more than half a point since the word's first character, so a word drawn slanted came
    out cut in pieces. A run so long that its ends would sit more than :data:`SNAP_OFFSET`
    of the height off the slanted baseline is cut into pieces that do not. Steeper lines are
    drawn turned to their angle.
    """
    x0, y0 = place.point(*line.box[0])
    x1, y1 = place.point(*line.box[1])
    x3, y3 = place.point(*line.box[3])
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = ((x1 - x0) / length, (y1 - y0) / length) if length > 1e-6 else (1.0, 0.0)
    # The normal points from the text's head to its foot (y grows downwards).
    nx, ny = -uy, ux
    height = abs((x3 - x0) * nx + (y3 - y0) * ny)
    if height < 1e-3:
        return

    def along(word: Word) -> tuple[float, float]:
        offsets = []
        for corner in word.box:
            cx, cy = place.point(*corner)
            offsets.append((cx - x0) * ux + (cy - y0) * uy)
        return min(offsets), max(offsets)

    runs = _runs(line, along)
    if not runs:
        return
    angle = math.degrees(math.atan2(-uy, ux))
    quarter = 90.0 * round(angle / 90.0)
    reference = quarter if abs(angle - quarter) <= SNAP_DEGREES else angle
    slant = math.radians(angle - reference)
    cos_d, sin_d = math.cos(slant), math.sin(slant)
    longest = 2 * SNAP_OFFSET * height / abs(sin_d) if abs(sin_d) > 1e-9 else math.inf
    width, page_height = place.size
    first, last = min(r.start for r in runs), max(r.stop for r in runs)

    def inside(offset: float) -> bool:
        ends = ((x0 + s * ux + offset * nx, y0 + s * uy + offset * ny) for s in (first, last))
        return all(0.5 <= x <= width - 0.5 and 0.5 <= y <= page_height - 0.5 for x, y in ends)

    baseline = next(
        (f * height for f in (ASCENT_FRACTION, 0.6, 0.4, 0.2, 0.0) if inside(f * height)),
        ASCENT_FRACTION * height,
    )
    pdf.set_font_size(height)
    turned = pdf.rotation(reference, x0, y0) if abs(reference) > 0.01 else nullcontext()
    with turned:
        for run in runs:
            for piece in _chunks(run, longest):
                # Both ends on the slanted baseline, in the frame turned by ``reference``.
                ax = piece.start * cos_d + baseline * sin_d
                bx = piece.stop * cos_d + baseline * sin_d
                middle = (piece.start + piece.stop) / 2
                y = -middle * sin_d + baseline * cos_d
                natural = _natural_width(piece.text, height)
                span = bx - ax
                pdf.set_stretching(100.0 * span / natural if span > 0 else 100.0)
                pdf.text(x0 + ax, y0 + y, piece.text + (" " if piece.space else ""))


def _page_chars(page: Page) -> set[str]:
    return {c for line in page.lines for c in line.text}


@contextmanager
def _text_pdf(result: DocumentResult) -> Iterator[FPDF]:
    """An empty fpdf2 document, points, no margins, with the glyphless font for ``result``.

    The font's file lives in a temporary folder until the document has been output (fpdf2
    reads a font from a file, lazily).
    """
    pdf = FPDF(unit="pt")
    pdf.set_margin(0)
    pdf.set_auto_page_break(False)
    pdf.set_creator("ocr-pipeline")
    pdf.set_title(result.source.name)
    chars = set().union(*(_page_chars(p) for p in result.pages)) | {" "}
    with tempfile.TemporaryDirectory(prefix="ocr-pipeline-font-") as folder:
        font = Path(folder) / "glyphless.ttf"
        font.write_bytes(glyphless_font(chars))
        pdf.add_font(FAMILY, fname=font)
        pdf.set_font(FAMILY, size=10)
        pdf.text_mode = TextMode.INVISIBLE
        yield pdf


def _draw_text_layer(pdf: FPDF, page: Page, place: _Placement) -> None:
    for line in page.lines:
        _draw_line(pdf, line, place)


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
        return bytes(pdf.output())


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
        return bytes(pdf.output())


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
