"""Decoding one input file's bytes into page images, one page at a time: no OCR, no folders.

:func:`open_document` checks a file against every limit before any page's pixels exist: its
bytes, its page count (``decode.max_pages``), each page's pixels (``decode.max_pixels``) and all
pages' pixels together (``decode.max_total_pixels``), from the PDF page sizes or the image frame
headers. Then :meth:`OpenedDocument.page` decodes one page at a time, so a caller that handles
each page before asking for the next holds about one page in memory.

A PDF page is rendered at ``decode.pdf_dpi``, or, when that would pass ``decode.max_pixels``, at
the highest whole dpi that stays within it, never below ``decode.min_pdf_dpi``. A page that
cannot be decoded (over the limits even at the lowest resolution, an image frame over
``decode.max_pixels``, a broken PDF page object, a frame whose data is corrupt) is an error of
that page alone: :meth:`OpenedDocument.page` raises it and the other pages still decode. Only
when no page at all can be decoded does :func:`open_document` refuse the whole file.

Images are decoded with Pillow (JPEG, PNG, BMP, TIFF with every page, WebP); EXIF orientation
is applied. PDFs are rendered page by page with pypdfium2, honouring each page's ``/Rotate``.
"""

from __future__ import annotations

import copy
import io
import itertools
import math
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from ocr_pipeline.errors import (
    CorruptInputError,
    InputError,
    InputTooLargeError,
    UnsupportedFormatError,
)

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
}

_PIL_FORMATS = {
    "image/jpeg": {"JPEG", "MPO"},
    "image/png": {"PNG"},
    "image/bmp": {"BMP", "DIB"},
    "image/tiff": {"TIFF"},
    "image/webp": {"WEBP"},
}

# EXIF Orientation tag value -> clockwise degrees the decoder turned the image (mirroring aside).
_EXIF_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}
_EXIF_ORIENTATION_TAG = 0x0112


_POINTS_PER_INCH = 72.0
"""PDF user space units per inch (a PDF point is 1/72 inch)."""


@dataclass(frozen=True)
class DecodeLimits:
    """Limits applied while decoding (settings ``decode.*``)."""

    max_bytes: int = 200 * 1024 * 1024
    """Largest input file, bytes."""
    max_pixels: int = 100_000_000
    """Largest page, pixels (width x height of the page as decoded). A PDF page over it at
    ``pdf_dpi`` is rendered at a lower dpi (down to ``min_pdf_dpi``); an image frame over it is
    an error of that page."""
    pdf_dpi: int = 300
    """PDF render resolution, dots per inch."""
    max_pages: int = 500
    """Most pages (PDF pages, image frames) of one file."""
    max_total_pixels: int = 2_000_000_000
    """Most pixels of all pages of one file together (PDF pages at the dpi each is rendered at;
    pages that will not be decoded count nothing)."""
    min_pdf_dpi: int = 150
    """Lowest resolution a PDF page may be rendered at to stay within ``max_pixels``, dots per
    inch; a page that would need less is an error of that page."""


@dataclass(frozen=True)
class PagePlan:
    """How one page will be decoded, decided when the document is opened (nothing decoded yet)."""

    width: int
    """Pixels wide as it will be decoded (PDF pages at ``dpi``, after ``/Rotate``; image frames
    as stored, before EXIF orientation); 0 when not known (the page has no usable size)."""
    height: int
    """Pixels high, as ``width``."""
    dpi: int | None = None
    """PDF render resolution, dots per inch; ``None`` for image frames, and for a PDF page that
    no allowed resolution fits."""
    warnings: tuple[str, ...] = ()
    """What will be done differently on this page (rendered below ``pdf_dpi``)."""
    error: InputError | None = None
    """Why this page cannot be decoded, known before decoding it (over ``decode.max_pixels``,
    an unreadable PDF page object); ``None``: the page is decoded when asked for."""


@dataclass(frozen=True)
class DecodedPage:
    """One decoded page."""

    index: int
    """0-based page index in the document."""
    image: np.ndarray
    """``(H, W, 3)`` uint8 BGR, C-contiguous, orientation already applied."""
    rotation: int
    """Clockwise degrees (0/90/180/270) applied while decoding: EXIF Orientation or PDF /Rotate."""
    dpi: int | None = None
    """Resolution a PDF page was rendered at, dots per inch (``decode.pdf_dpi`` or lower to stay
    within ``decode.max_pixels``); ``None`` for image frames."""
    warnings: tuple[str, ...] = ()
    """What was done differently on this page, e.g. ``"page 2 rendered at 212 dpi instead of
    300 ..."``; the message names the page (1-based) but not the file."""


class OpenedDocument:
    """A document whose page count and page sizes passed the limits; pages decode on demand.

    Made by :func:`open_document`; use it as a context manager (or call :meth:`close`) so the
    underlying PDF or image is released even when the pages are not all read.

    Args:
        name: the file name, as in every error.
        media_type: the file's media type (``application/pdf``, ``image/tiff``, ...).
        plans: how each page will be decoded: its size in pixels, PDF dpi, warnings, and the
            error of a page known not to decode (at least one page has none).
        decode: decodes the page at an index (one whose plan has no error); raises the page's
            :class:`~ocr_pipeline.errors.InputError` when its bytes do not decode.
        release: frees the underlying document.

    """

    def __init__(
        self,
        name: str,
        media_type: str,
        plans: list[PagePlan],
        decode: Callable[[int], DecodedPage],
        release: Callable[[], None],
    ) -> None:
        self.name = name
        self.media_type = media_type
        self.plans = plans
        self._decode = decode
        self._release: Callable[[], None] | None = release

    @property
    def page_count(self) -> int:
        """Pages in the document (at least 1, at most ``decode.max_pages``)."""
        return len(self.plans)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """``(width, height)`` in pixels of each page as it will be decoded.

        PDF pages at their plan's dpi, after ``/Rotate``; image frames as stored, before EXIF
        orientation; ``(0, 0)`` for a PDF page that no allowed resolution fits or whose size is
        unreadable.
        """
        return [(plan.width, plan.height) for plan in self.plans]

    @property
    def total_pixels(self) -> int:
        """Pixels of the pages that will be decoded, together (width x height summed)."""
        return _total_pixels(self.plans)

    def page(self, index: int) -> DecodedPage:
        """Decode one page; a page that fails leaves the others readable.

        Args:
            index: 0-based page index, ``0 <= index < page_count``.

        Returns:
            The page, ``(H, W, 3)`` uint8 BGR, with its PDF dpi and warnings.

        Raises:
            CorruptInputError: the page's bytes cannot be decoded (a broken PDF page object, a
                truncated or corrupt image frame); the message names the file and page.
            InputTooLargeError: the page is over ``decode.max_pixels`` (an image frame) or would
                need less than ``decode.min_pdf_dpi`` to fit it (a PDF page).

        """
        error = self.plans[index].error
        if error is not None:
            # A copy: the plan's own error never carries a traceback (and the frames in it).
            raise copy.copy(error)
        return self._decode(index)

    def pages(self) -> Iterator[DecodedPage]:
        """Decode the pages in document order, one per ``next()``, stopping at a bad page.

        The iterator keeps no reference to a page it has yielded: a caller that drops each page
        before asking for the next holds one page at a time. To read past a page that cannot
        be decoded, call :meth:`page` for each index instead.

        Yields:
            Each page, ``(H, W, 3)`` uint8 BGR.

        Raises:
            CorruptInputError: a page's bytes cannot be decoded.
            InputTooLargeError: a page is over ``decode.max_pixels`` at every allowed size.

        """
        for index in range(self.page_count):
            yield self.page(index)

    def close(self) -> None:
        """Release the underlying PDF or image (idempotent)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> OpenedDocument:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def media_type_for(name: str) -> str:
    """Media type of a file from its suffix.

    Raises:
        UnsupportedFormatError: the suffix is not a supported type (the message lists them).
    """
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    try:
        return SUPPORTED_SUFFIXES[suffix]
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedFormatError(
            f"{name}: unsupported file type {suffix or '(no suffix)'}; supported: {supported}. "
            "Convert the file to PDF or an image format first"
        ) from None


def open_document(data: bytes, name: str, limits: DecodeLimits | None = None) -> OpenedDocument:
    """Open a file's bytes and check every limit, without decoding any page's pixels.

    PDF page sizes come from the page dictionaries (nothing is rendered), and each page's
    render resolution is chosen from its size in points (:func:`pdf_page_dpi`); image frame
    sizes come from the frame headers, walking at most ``decode.max_pages + 1`` frames, so a
    file with a huge frame count is refused without counting them all.

    A page known not to decode (an image frame over ``decode.max_pixels``, a PDF page that would
    need less than ``decode.min_pdf_dpi``, an unreadable PDF page object) does not refuse the
    file: its error is in its :class:`PagePlan` and :meth:`OpenedDocument.page` raises it.

    Args:
        data: the whole file.
        name: the file name; chooses the decoder by suffix and appears in every error.
        limits: byte, page, pixel and PDF resolution limits (defaults if ``None``).

    Returns:
        The opened document; read its pages with :meth:`OpenedDocument.page`.

    Raises:
        UnsupportedFormatError: unsupported suffix.
        CorruptInputError: empty, truncated or undecodable bytes, or a PDF without pages; or
            (the first page's error) no page of it can be read.
        InputTooLargeError: over ``decode.max_bytes``, more pages than ``decode.max_pages``,
            the pages to decode over ``decode.max_total_pixels`` together, or (the first
            page's error) every page over ``decode.max_pixels``.

    """
    limits = limits or DecodeLimits()
    media_type = media_type_for(name)
    if not data:
        raise CorruptInputError(f"{name} is empty (0 bytes); drop the complete file again")
    check_byte_limit(name, len(data), limits)
    if media_type == "application/pdf":
        return _open_pdf(data, name, limits)
    return _open_image(data, name, media_type, limits)


def decode_document(
    data: bytes, name: str, limits: DecodeLimits | None = None
) -> list[DecodedPage]:
    """Decode a file's bytes into all its pages at once.

    Holds every page in memory (about 26 MB per A4 page at 300 dpi): for documents of many
    pages use :func:`open_document` and its :meth:`~OpenedDocument.page` instead. A page that
    cannot be decoded refuses the whole file here.

    Args:
        data: the whole file.
        name: the file name; chooses the decoder by suffix and appears in every error.
        limits: byte, page, pixel and PDF resolution limits (defaults if ``None``).

    Returns:
        The pages in document order, each ``(H, W, 3)`` uint8 BGR.

    Raises:
        UnsupportedFormatError: unsupported suffix.
        CorruptInputError: empty, truncated or undecodable bytes (of any page), or a PDF
            without pages.
        InputTooLargeError: over ``decode.max_bytes``, ``decode.max_pages`` or
            ``decode.max_total_pixels``, or a page over ``decode.max_pixels`` at every
            allowed size.

    """
    with open_document(data, name, limits) as document:
        return list(document.pages())


def check_byte_limit(name: str, size: int, limits: DecodeLimits) -> None:
    """Refuse a file of ``size`` bytes over ``limits.max_bytes``.

    Raises:
        InputTooLargeError: naming the file, its size, the limit and the setting.
    """
    if size > limits.max_bytes:
        raise InputTooLargeError(
            f"{name}: {size} bytes is over the limit of {limits.max_bytes} bytes "
            "(setting decode.max_bytes); split the document or raise the limit"
        )


def rendered_size(width_pt: float, height_pt: float, dpi: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a PDF page of ``width_pt x height_pt`` points at ``dpi``.

    Computed as pypdfium2's ``PdfPage.render(scale=dpi / 72)`` sizes its bitmap (each side
    rounded up), so the rendered page is exactly this size.
    """
    scale = dpi / _POINTS_PER_INCH
    return math.ceil(width_pt * scale), math.ceil(height_pt * scale)


def pdf_page_dpi(width_pt: float, height_pt: float, max_pixels: int, highest: int) -> int:
    """The highest whole dpi, at most ``highest``, at which a PDF page fits ``max_pixels``.

    Args:
        width_pt: page width as displayed, points (1/72 inch), > 0.
        height_pt: page height as displayed, points, > 0.
        max_pixels: most pixels (width x height) of the rendered page.
        highest: the dpi wanted (``decode.pdf_dpi``).

    Returns:
        A dpi in ``0..highest``: the page rendered at it (:func:`rendered_size`) has at most
        ``max_pixels`` pixels, and at one dpi more it would not (or it is ``highest``); 0 when
        not even 1 dpi fits.

    """

    def fits(dpi: int) -> bool:
        width, height = rendered_size(width_pt, height_pt, dpi)
        return width * height <= max_pixels

    area_in2 = (width_pt / _POINTS_PER_INCH) * (height_pt / _POINTS_PER_INCH)
    # Without rounding up the sides, sqrt(max_pixels / area) is the exact answer; rounding up
    # only makes pages larger, so the answer is at most one above this guess and usually a few
    # below it.
    dpi = max(0, min(highest, math.floor(math.sqrt(max_pixels / area_in2))))
    while dpi > 0 and not fits(dpi):
        dpi -= 1
    while dpi < highest and fits(dpi + 1):
        dpi += 1
    return dpi


def _too_many_pages(name: str, count: str, limits: DecodeLimits) -> InputTooLargeError:
    return InputTooLargeError(
        f"{name}: {count} pages is over the limit of {limits.max_pages} pages per file "
        f"(setting decode.max_pages); split the document into files of at most "
        f"{limits.max_pages} pages, or raise the limit"
    )


def _check_page_count(name: str, count: int, limits: DecodeLimits) -> None:
    if count > limits.max_pages:
        raise _too_many_pages(name, str(count), limits)


def _over_max_pixels(
    name: str, width: int, height: int, limits: DecodeLimits, page: int
) -> InputTooLargeError | None:
    """The error of an image page of ``width x height`` pixels over ``max_pixels``, else None."""
    if width * height <= limits.max_pixels:
        return None
    return InputTooLargeError(
        f"{name}: page {page + 1} is {width}x{height} = {width * height} pixels, over the "
        f"limit of {limits.max_pixels} (setting decode.max_pixels); an image is not decoded "
        f"smaller: raise decode.max_pixels to at least {width * height}, or split the page "
        "into smaller images or scale it down"
    )


def _total_pixels(plans: list[PagePlan]) -> int:
    return sum(plan.width * plan.height for plan in plans if plan.error is None)


def _check_plans(name: str, plans: list[PagePlan], limits: DecodeLimits, pdf: bool) -> None:
    """Refuse the file when no page can be decoded, or the pages to decode are too many pixels.

    Raises:
        InputError: the first page's error, when every page has one.
        InputTooLargeError: the pages without an error over ``max_total_pixels`` together.

    """
    errors = [plan.error for plan in plans if plan.error is not None]
    if len(errors) == len(plans):
        raise errors[0]
    total = _total_pixels(plans)
    if total <= limits.max_total_pixels:
        return
    at_dpi = lower_dpi = ""
    if pdf:
        dpis = sorted({plan.dpi for plan in plans if plan.dpi is not None})
        if len(dpis) == 1:
            at_dpi = f" at {dpis[0]} dpi (decode.pdf_dpi)"
        else:
            at_dpi = (
                f" at {dpis[0]} to {dpis[-1]} dpi (decode.pdf_dpi, lower on pages that would "
                "pass decode.max_pixels)"
            )
        lower_dpi = ", or lower decode.pdf_dpi"
    count = len(plans) - len(errors)
    raise InputTooLargeError(
        f"{name}: its {count} pages are {total} pixels together{at_dpi}, over the limit of "
        f"{limits.max_total_pixels} pixels per file (setting decode.max_total_pixels); split "
        f"the document into smaller files, or raise the limit{lower_dpi}"
    )


def _corrupt(
    name: str, media_type: str, exc: BaseException, page: int | None = None, pages: int = 1
) -> CorruptInputError:
    """The error of undecodable image bytes, naming the page (0-based ``page``) of many."""
    kind = media_type.split("/")[-1].upper()
    if page is not None and pages > 1:
        what = f"page {page + 1} of {pages} is not a decodable {kind} image"
    else:
        what = f"not a decodable {kind} image"
    return CorruptInputError(
        f"{name}: {what} ({_reason(exc)}); check the file is complete, or export it again"
    )


_IMAGE_MAGIC = (
    ("PNG", b"\x89PNG"),
    ("JPEG", b"\xff\xd8\xff"),
    ("TIFF", b"II*\x00"),
    ("TIFF", b"MM\x00*"),
    ("WEBP", b"RIFF"),
)
"""The first bytes of supported image formats (BMP's two letters also start plain text)."""


def _not_an_image(name: str, data: bytes) -> InputError:
    """The error of bytes no image decoder recognises, saying what they look like instead."""
    if data.startswith(b"%PDF-"):
        return CorruptInputError(
            f"{name} is not an image: its bytes are a PDF; rename it with the suffix .pdf"
        )
    for kind, magic in _IMAGE_MAGIC:
        if data.startswith(magic) and (kind != "WEBP" or data[8:12] == b"WEBP"):
            return CorruptInputError(
                f"{name}: starts like a {kind} image but its header cannot be read: the file "
                "is cut off or damaged; check the file is complete, or export it again"
            )
    head = data[:64]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # cut inside a character at the end: still text
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        snippet = " ".join(text.split())[:40]
        looks = f"its bytes look like text ({snippet!r})"
    else:
        looks = "its bytes start with " + " ".join(f"{b:02x}" for b in data[:8])
    supported = ", ".join(sorted({kind.split("/")[-1].upper() for kind in _PIL_FORMATS}))
    return CorruptInputError(
        f"{name} is not an image: {looks}, not the header of any image format ({supported} "
        "or PDF); check this is the file meant to be dropped, or export it again as an image "
        "or PDF"
    )


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _reason(exc: BaseException) -> str:
    """A decoder exception as text for a message: never an object's repr, never empty."""
    text = _OBJECT_REPR.sub("the file", str(exc)).strip()
    return text or type(exc).__name__


_PILLOW_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,  # fewer frames than the headers said
    TypeError,  # a TIFF frame header cut off: "Missing dimensions"
    struct.error,  # a TIFF directory cut off
)


_PILLOW_LIMIT_LOCK = threading.Lock()


def _open_pillow(data: bytes) -> Image.Image:
    """``Image.open`` of the bytes (headers only), without Pillow's own pixel limit.

    Pillow refuses at open a frame of more than ``2 * Image.MAX_IMAGE_PIXELS`` pixels with a
    "decompression bomb" error that names no setting; ``decode.max_pixels`` is the limit here,
    checked from the same headers before any pixel is decoded. Only when Pillow refuses is the
    file opened again with its check off (process-wide, so under a lock and only for this call).
    """
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        with _PILLOW_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                return Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def _open_image(data: bytes, name: str, media_type: str, limits: DecodeLimits) -> OpenedDocument:
    with warnings.catch_warnings():
        # Our own pixel limits are checked before decoding; Pillow's bomb check would only
        # duplicate them with a different threshold. A TIFF directory cut off is reported as
        # that page's error, not also as Pillow's warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", "Corrupt EXIF data", UserWarning)
        try:
            image = _open_pillow(data)
        except UnidentifiedImageError as exc:
            raise _not_an_image(name, data) from exc
        except _PILLOW_ERRORS as exc:
            raise _corrupt(name, media_type, exc) from exc
        try:
            if image.format not in _PIL_FORMATS[media_type]:
                raise CorruptInputError(
                    f"{name}: the name says {media_type} but the bytes are {image.format}; "
                    "rename the file with the right suffix"
                )
            sizes, unreadable = _frame_sizes(image, name, media_type, limits)
            plans = [
                PagePlan(width, height, error=_over_max_pixels(name, width, height, limits, i))
                for i, (width, height) in enumerate(sizes)
            ]
            if unreadable is not None:
                plans.append(PagePlan(0, 0, error=unreadable))
            _check_plans(name, plans, limits, pdf=False)
        except BaseException:
            image.close()
            raise

    def decode(index: int) -> DecodedPage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image.seek(index)
                too_large = _over_max_pixels(name, image.width, image.height, limits, index)
                if too_large is not None:  # not the size its header said
                    raise too_large
                return _frame_to_page(image, index)
            except _PILLOW_ERRORS as exc:
                raise _corrupt(name, media_type, exc, index, len(plans)) from exc

    return OpenedDocument(name, media_type, plans, decode, image.close)


def _frame_sizes(
    image: Image.Image, name: str, media_type: str, limits: DecodeLimits
) -> tuple[list[tuple[int, int]], CorruptInputError | None]:
    """``(width, height)`` of each frame, from the headers; refuses over ``max_pages`` early.

    TIFF (and MPO, WebP) frames are walked with ``seek``, which reads each frame's header and
    none of its pixels; the walk stops at ``max_pages + 1`` frames, so a file of a million
    frames costs no more than one of ``max_pages``. An animated PNG decodes each frame to seek
    past it, but all its frames have the canvas size: its frame count comes from its header.

    Returns:
        The sizes of the frames whose headers were read, and the error of the next frame when
        its header cannot be read (a file cut off after the first frame: the pages before it
        are still read), else ``None``.

    Raises:
        CorruptInputError: the first frame's header cannot be read.
        InputTooLargeError: more frames than ``max_pages``.

    """
    sizes: list[tuple[int, int]] = []
    unreadable: CorruptInputError | None = None
    try:
        if image.format == "PNG":
            count = int(getattr(image, "n_frames", 1))
            _check_page_count(name, count, limits)
            return [image.size] * count, None
        for index in itertools.count():
            try:
                image.seek(index)
            except EOFError:
                break
            except _PILLOW_ERRORS as exc:
                if index == 0:
                    raise
                unreadable = CorruptInputError(
                    f"{name}: the header of page {index + 1} cannot be read ({exc}): the file "
                    f"is cut off or damaged after page {index}, and no page from {index + 1} on "
                    "can be read; check the file is complete, or scan those pages again"
                )
                break
            if index >= limits.max_pages:
                raise _too_many_pages(name, f"more than {limits.max_pages}", limits)
            sizes.append(image.size)
        image.seek(0)
    except _PILLOW_ERRORS as exc:
        raise _corrupt(name, media_type, exc) from exc
    return sizes, unreadable


def _frame_to_page(frame: Image.Image, index: int) -> DecodedPage:
    orientation = int(frame.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
    upright = ImageOps.exif_transpose(frame)
    rgb = _to_rgb(upright if upright is not None else frame)
    bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
    return DecodedPage(index=index, image=bgr, rotation=_EXIF_ROTATION.get(orientation, 0))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB; transparency is composited on a background that contrasts.

    The background is white, or black when the visible pixels are light
    (:func:`_alpha_background`): white text on a transparent background would vanish on white.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, _alpha_background(np.asarray(rgba)))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        scaled = np.asarray(image, dtype=np.float64)
        peak = scaled.max() or 1.0
        return Image.fromarray((scaled * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


LIGHT_INK_LUMINANCE = 128.0
"""Mean luminance (0..255) of the visible pixels above which they are composited on black.

The middle of the 0..255 scale: the rendered test images (``tests/test_hard_inputs.py``) are
far from it on both sides: white text about 255 (anti-aliased edges weigh little, being
mostly transparent), dark text about 20.
"""


def _alpha_background(rgba: np.ndarray) -> tuple[int, int, int, int]:
    """The RGBA background to composite ``rgba`` ``(H, W, 4)`` uint8 on: white, or black.

    The mean ITU-R BT.601 luminance of the pixels weighted by their alpha (so transparent
    pixels count nothing, whatever colour they hold) above :data:`LIGHT_INK_LUMINANCE` means
    light ink: black. Dark ink, and an image with no visible pixel, stay on white, as before.
    A fully opaque image looks the same on either.
    """
    alpha = rgba[:, :, 3].astype(np.float64)
    total = float(alpha.sum())
    if total == 0.0:
        return (255, 255, 255, 255)
    rgb = rgba[:, :, :3].astype(np.float64)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    if float((luminance * alpha).sum()) / total > LIGHT_INK_LUMINANCE:
        return (0, 0, 0, 255)
    return (255, 255, 255, 255)


def _open_pdf(data: bytes, name: str, limits: DecodeLimits) -> OpenedDocument:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == 0:
            # PDFium loads no document without an error code when the page tree is empty.
            raise CorruptInputError(
                f"{name}: the PDF has no pages; export it again with content"
            ) from exc
        raise CorruptInputError(
            f"{name}: not a readable PDF ({exc}); check it is complete and not password-protected"
        ) from exc
    try:
        count = len(document)
        if count == 0:
            raise CorruptInputError(f"{name}: the PDF has no pages; export it again with content")
        _check_page_count(name, count, limits)
        plans = []
        for index in range(count):
            # The size as displayed (``/Rotate`` applied), from the page dictionary: no render.
            try:
                width_pt, height_pt = document.get_page_size(index)
            except pdfium.PdfiumError as exc:
                plans.append(PagePlan(0, 0, error=_broken_pdf_page(name, index, exc)))
                continue
            plans.append(_pdf_page_plan(name, index, width_pt, height_pt, limits))
        _check_plans(name, plans, limits, pdf=True)
    except BaseException:
        document.close()
        raise

    def decode(index: int) -> DecodedPage:
        try:
            page = document[index]
        except pdfium.PdfiumError as exc:
            raise _broken_pdf_page(name, index, exc) from exc
        try:
            rotation = int(page.get_rotation()) % 360
            # Planned again from the loaded page: the dpi and size are those of this render.
            plan = _pdf_page_plan(name, index, page.get_width(), page.get_height(), limits)
            if plan.error is not None:
                raise plan.error
            assert plan.dpi is not None  # a plan without an error has a dpi
            bitmap = page.render(
                scale=plan.dpi / _POINTS_PER_INCH, rev_byteorder=False, may_draw_forms=True
            )
            try:
                bgr = _bitmap_to_bgr(bitmap.to_numpy(), bitmap.format)
            finally:
                bitmap.close()
        except pdfium.PdfiumError as exc:
            raise _broken_pdf_page(name, index, exc) from exc
        finally:
            page.close()
        return DecodedPage(
            index=index, image=bgr, rotation=rotation, dpi=plan.dpi, warnings=plan.warnings
        )

    return OpenedDocument(name, "application/pdf", plans, decode, document.close)


def _pdf_page_plan(
    name: str, index: int, width_pt: float, height_pt: float, limits: DecodeLimits
) -> PagePlan:
    """The dpi and pixel size of a PDF page of ``width_pt x height_pt`` points (as displayed).

    ``limits.pdf_dpi`` when the page fits ``limits.max_pixels`` at it; else the highest whole
    dpi that fits, with a warning, if it is at least ``limits.min_pdf_dpi``; else an
    :class:`InputTooLargeError` of that page. A page without area is a
    :class:`CorruptInputError` of that page.
    """
    number = index + 1
    if not (width_pt > 0 and height_pt > 0):  # also NaN
        return PagePlan(
            0,
            0,
            error=CorruptInputError(
                f"{name}: page {number} of the PDF has no area ({width_pt} x {height_pt} pt); "
                "check its MediaBox, or export it again"
            ),
        )
    width, height = rendered_size(width_pt, height_pt, limits.pdf_dpi)
    if width * height <= limits.max_pixels:
        return PagePlan(width, height, dpi=limits.pdf_dpi)
    fitting = pdf_page_dpi(width_pt, height_pt, limits.max_pixels, limits.pdf_dpi)
    if fitting >= limits.min_pdf_dpi:
        lowered_width, lowered_height = rendered_size(width_pt, height_pt, fitting)
        warning = (
            f"page {number} rendered at {fitting} dpi instead of {limits.pdf_dpi} to stay "
            f"within decode.max_pixels ({limits.max_pixels} pixels): at {limits.pdf_dpi} dpi "
            f"it would be {width}x{height} = {width * height} pixels"
        )
        return PagePlan(lowered_width, lowered_height, dpi=fitting, warnings=(warning,))
    floor = min(limits.min_pdf_dpi, limits.pdf_dpi)
    floor_width, floor_height = rendered_size(width_pt, height_pt, floor)
    if fitting > 0:
        advice = (
            f"it fits at {fitting} dpi: lower decode.min_pdf_dpi to read it that coarsely, "
            "raise decode.max_pixels, or scale the page down"
        )
    else:
        advice = "raise decode.max_pixels, or scale the page down"
    return PagePlan(
        0,
        0,
        error=InputTooLargeError(
            f"{name}: page {number} is {width_pt:.0f} x {height_pt:.0f} pt "
            f"({width_pt / _POINTS_PER_INCH:.1f} x {height_pt / _POINTS_PER_INCH:.1f} in); "
            f"even at {floor} dpi, the lowest resolution allowed (decode.min_pdf_dpi = "
            f"{limits.min_pdf_dpi}), it would be {floor_width}x{floor_height} = "
            f"{floor_width * floor_height} pixels, over the limit of {limits.max_pixels} "
            f"(decode.max_pixels); {advice}"
        ),
    )


def _broken_pdf_page(name: str, index: int, exc: BaseException) -> CorruptInputError:
    return CorruptInputError(
        f"{name}: page {index + 1} of the PDF cannot be read ({exc}); check the file is "
        "complete, or export it again"
    )


def _bitmap_to_bgr(pixels: np.ndarray, bitmap_format: int) -> np.ndarray:
    """Convert pdfium's rendered buffer (BGR, BGRx/BGRA or grey, byte order not reversed) as BGR."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, np.newaxis], 3, axis=2)
    elif pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(pixels, dtype=np.uint8)
