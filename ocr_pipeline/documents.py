"""Decoding one input file's bytes into page images, one page at a time: no OCR, no folders.

:func:`open_document` checks a file against every limit before any page's pixels exist: its
bytes, its page count (``decode.max_pages``), each page's pixels (``decode.max_pixels``) and all
pages' pixels together (``decode.max_total_pixels``), from the PDF page sizes or the image frame
headers. Then :meth:`OpenedDocument.pages` decodes the pages one at a time, so a caller that
handles each page before asking for the next holds about one page in memory.

Images are decoded with Pillow (JPEG, PNG, BMP, TIFF with every page, WebP); EXIF orientation
is applied. PDFs are rendered page by page with pypdfium2 at ``pdf_dpi``, honouring each page's
``/Rotate``.
"""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from ocr_pipeline.errors import CorruptInputError, InputTooLargeError, UnsupportedFormatError

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


@dataclass(frozen=True)
class DecodeLimits:
    """Limits applied while decoding (settings ``decode.*``)."""

    max_bytes: int = 200 * 1024 * 1024
    """Largest input file, bytes."""
    max_pixels: int = 100_000_000
    """Largest page, pixels (width x height, after rendering PDFs at ``pdf_dpi``)."""
    pdf_dpi: int = 300
    """PDF render resolution, dots per inch."""
    max_pages: int = 500
    """Most pages (PDF pages, image frames) of one file."""
    max_total_pixels: int = 2_000_000_000
    """Most pixels of all pages of one file together (PDF pages at ``pdf_dpi``)."""


@dataclass(frozen=True)
class DecodedPage:
    """One decoded page."""

    index: int
    """0-based page index in the document."""
    image: np.ndarray
    """``(H, W, 3)`` uint8 BGR, C-contiguous, orientation already applied."""
    rotation: int
    """Clockwise degrees (0/90/180/270) applied while decoding: EXIF Orientation or PDF /Rotate."""


class OpenedDocument:
    """A document whose page count and page sizes passed the limits; pages decode on demand.

    Made by :func:`open_document`; use it as a context manager (or call :meth:`close`) so the
    underlying PDF or image is released even when the pages are not all read.

    Args:
        name: the file name, as in every error.
        media_type: the file's media type (``application/pdf``, ``image/tiff``, ...).
        sizes: ``(width, height)`` in pixels of each page as it will be decoded (PDF pages at
            ``pdf_dpi``, after ``/Rotate``; image frames as stored, before EXIF orientation).
        decode: decodes the page at an index; called once per page, in order.
        release: frees the underlying document.

    """

    def __init__(
        self,
        name: str,
        media_type: str,
        sizes: list[tuple[int, int]],
        decode: Callable[[int], DecodedPage],
        release: Callable[[], None],
    ) -> None:
        self.name = name
        self.media_type = media_type
        self.sizes = sizes
        self._decode = decode
        self._release: Callable[[], None] | None = release

    @property
    def page_count(self) -> int:
        """Pages in the document (at least 1, at most ``decode.max_pages``)."""
        return len(self.sizes)

    @property
    def total_pixels(self) -> int:
        """Pixels of all pages together, as decoded (width x height summed)."""
        return sum(width * height for width, height in self.sizes)

    def pages(self) -> Iterator[DecodedPage]:
        """Decode the pages in document order, one per ``next()``.

        The iterator keeps no reference to a page it has yielded: a caller that drops each page
        before asking for the next holds one page at a time.

        Yields:
            Each page, ``(H, W, 3)`` uint8 BGR.

        Raises:
            CorruptInputError: a page's bytes cannot be decoded.
            InputTooLargeError: a page decodes larger than ``decode.max_pixels``.

        """
        for index in range(self.page_count):
            yield self._decode(index)

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

    PDF page sizes come from the page dictionaries (nothing is rendered); image frame sizes
    from the frame headers, walking at most ``decode.max_pages + 1`` frames, so a file with a
    huge frame count is refused without counting them all.

    Args:
        data: the whole file.
        name: the file name; chooses the decoder by suffix and appears in every error.
        limits: byte, page, pixel and PDF resolution limits (defaults if ``None``).

    Returns:
        The opened document; read its pages with :meth:`OpenedDocument.pages`.

    Raises:
        UnsupportedFormatError: unsupported suffix.
        CorruptInputError: empty, truncated or undecodable bytes, or a PDF without pages.
        InputTooLargeError: over ``decode.max_bytes``, more pages than ``decode.max_pages``, a
            page over ``decode.max_pixels``, or all pages over ``decode.max_total_pixels``.

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
    pages use :func:`open_document` and its :meth:`~OpenedDocument.pages` instead.

    Args:
        data: the whole file.
        name: the file name; chooses the decoder by suffix and appears in every error.
        limits: byte, page, pixel and PDF resolution limits (defaults if ``None``).

    Returns:
        The pages in document order, each ``(H, W, 3)`` uint8 BGR.

    Raises:
        UnsupportedFormatError: unsupported suffix.
        CorruptInputError: empty, truncated or undecodable bytes, or a PDF without pages.
        InputTooLargeError: over ``decode.max_bytes``, ``decode.max_pages``,
            ``decode.max_pixels`` or ``decode.max_total_pixels``.

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


def _too_many_pages(name: str, count: str, limits: DecodeLimits) -> InputTooLargeError:
    return InputTooLargeError(
        f"{name}: {count} pages is over the limit of {limits.max_pages} pages per file "
        f"(setting decode.max_pages); split the document into files of at most "
        f"{limits.max_pages} pages, or raise the limit"
    )


def _check_page_count(name: str, count: int, limits: DecodeLimits) -> None:
    if count > limits.max_pages:
        raise _too_many_pages(name, str(count), limits)


def _check_pixels(name: str, width: int, height: int, limits: DecodeLimits, page: int) -> None:
    if width * height > limits.max_pixels:
        raise InputTooLargeError(
            f"{name}: page {page + 1} is {width}x{height} = {width * height} pixels, over the "
            f"limit of {limits.max_pixels} (setting decode.max_pixels); scale the scan down or "
            "raise the limit"
        )


def _check_sizes(
    name: str, sizes: list[tuple[int, int]], limits: DecodeLimits, at_dpi: str = ""
) -> None:
    """Refuse a page over ``max_pixels``, then all pages together over ``max_total_pixels``."""
    for index, (width, height) in enumerate(sizes):
        _check_pixels(name, width, height, limits, index)
    total = sum(width * height for width, height in sizes)
    if total > limits.max_total_pixels:
        lower_dpi = ", or lower decode.pdf_dpi" if at_dpi else ""
        raise InputTooLargeError(
            f"{name}: its {len(sizes)} pages are {total} pixels together{at_dpi}, over the "
            f"limit of {limits.max_total_pixels} pixels per file (setting "
            f"decode.max_total_pixels); split the document into smaller files, or raise the "
            f"limit{lower_dpi}"
        )


def _corrupt(name: str, media_type: str, exc: BaseException) -> CorruptInputError:
    kind = media_type.split("/")[-1].upper()
    return CorruptInputError(
        f"{name}: not a decodable {kind} image ({exc}); check the file is complete, "
        "re-export or re-scan it"
    )


_PILLOW_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    ValueError,
    SyntaxError,
)


def _open_image(data: bytes, name: str, media_type: str, limits: DecodeLimits) -> OpenedDocument:
    with warnings.catch_warnings():
        # Our own pixel limits are checked before decoding; Pillow's bomb check would only
        # duplicate them with a different threshold.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except _PILLOW_ERRORS as exc:
            raise _corrupt(name, media_type, exc) from exc
        try:
            if image.format not in _PIL_FORMATS[media_type]:
                raise CorruptInputError(
                    f"{name}: the name says {media_type} but the bytes are {image.format}; "
                    "rename the file with the right suffix"
                )
            sizes = _frame_sizes(image, name, media_type, limits)
            _check_sizes(name, sizes, limits)
        except BaseException:
            image.close()
            raise

    def decode(index: int) -> DecodedPage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image.seek(index)
                _check_pixels(name, image.width, image.height, limits, index)
                return _frame_to_page(image, index)
            except _PILLOW_ERRORS as exc:
                raise _corrupt(name, media_type, exc) from exc
            except EOFError as exc:  # fewer frames than the headers said
                raise _corrupt(name, media_type, exc) from exc

    return OpenedDocument(name, media_type, sizes, decode, image.close)


def _frame_sizes(
    image: Image.Image, name: str, media_type: str, limits: DecodeLimits
) -> list[tuple[int, int]]:
    """``(width, height)`` of each frame, from the headers; refuses over ``max_pages`` early.

    TIFF (and MPO, WebP) frames are walked with ``seek``, which reads each frame's header and
    none of its pixels; the walk stops at ``max_pages + 1`` frames, so a file of a million
    frames costs no more than one of ``max_pages``. An animated PNG decodes each frame to seek
    past it, but all its frames have the canvas size: its frame count comes from its header.
    """
    try:
        if image.format == "PNG":
            count = int(getattr(image, "n_frames", 1))
            _check_page_count(name, count, limits)
            return [image.size] * count
        sizes: list[tuple[int, int]] = []
        for index in itertools.count():
            try:
                image.seek(index)
            except EOFError:
                break
            if index >= limits.max_pages:
                raise _too_many_pages(name, f"more than {limits.max_pages}", limits)
            sizes.append(image.size)
        image.seek(0)
    except _PILLOW_ERRORS as exc:
        raise _corrupt(name, media_type, exc) from exc
    except EOFError as exc:
        raise _corrupt(name, media_type, exc) from exc
    return sizes


def _frame_to_page(frame: Image.Image, index: int) -> DecodedPage:
    orientation = int(frame.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
    upright = ImageOps.exif_transpose(frame)
    rgb = _to_rgb(upright if upright is not None else frame)
    bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
    return DecodedPage(index=index, image=bgr, rotation=_EXIF_ROTATION.get(orientation, 0))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB; transparency is composited on white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        scaled = np.asarray(image, dtype=np.float64)
        peak = scaled.max() or 1.0
        return Image.fromarray((scaled * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


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
    scale = limits.pdf_dpi / 72.0
    try:
        count = len(document)
        if count == 0:
            raise CorruptInputError(f"{name}: the PDF has no pages; export it again with content")
        _check_page_count(name, count, limits)
        sizes = []
        for index in range(count):
            # The size as displayed (``/Rotate`` applied), from the page dictionary: no render.
            try:
                width_pt, height_pt = document.get_page_size(index)
            except pdfium.PdfiumError as exc:
                raise _broken_pdf_page(name, index, exc) from exc
            sizes.append((round(width_pt * scale), round(height_pt * scale)))
        _check_sizes(name, sizes, limits, at_dpi=f" at {limits.pdf_dpi} dpi (decode.pdf_dpi)")
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
            width_pt, height_pt = page.get_size()
            width, height = round(width_pt * scale), round(height_pt * scale)
            _check_pixels(name, width, height, limits, index)
            bitmap = page.render(scale=scale, rev_byteorder=False, may_draw_forms=True)
            try:
                bgr = _bitmap_to_bgr(bitmap.to_numpy(), bitmap.format)
            finally:
                bitmap.close()
        finally:
            page.close()
        return DecodedPage(index=index, image=bgr, rotation=rotation)

    return OpenedDocument(name, "application/pdf", sizes, decode, document.close)


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
