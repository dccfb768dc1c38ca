"""Decoding one input file's bytes into page images: no OCR, no folders.

Images are decoded with Pillow (JPEG, PNG, BMP, TIFF with every page, WebP), after checking the
pixel count from the header so a decompression bomb is refused before its pixels are allocated;
EXIF orientation is applied. PDFs are rendered page by page with pypdfium2 at ``pdf_dpi``,
honouring each page's ``/Rotate``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

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


@dataclass(frozen=True)
class DecodedPage:
    """One decoded page."""

    index: int
    """0-based page index in the document."""
    image: np.ndarray
    """``(H, W, 3)`` uint8 BGR, C-contiguous, orientation already applied."""
    rotation: int
    """Clockwise degrees (0/90/180/270) applied while decoding: EXIF Orientation or PDF /Rotate."""


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


def decode_document(
    data: bytes, name: str, limits: DecodeLimits | None = None
) -> list[DecodedPage]:
    """Decode a file's bytes into pages.

    Args:
        data: the whole file.
        name: the file name; chooses the decoder by suffix and appears in every error.
        limits: byte, pixel and PDF resolution limits (defaults if ``None``).

    Returns:
        The pages in document order, each ``(H, W, 3)`` uint8 BGR.

    Raises:
        UnsupportedFormatError: unsupported suffix.
        CorruptInputError: empty, truncated or undecodable bytes, or a PDF without pages.
        InputTooLargeError: over ``decode.max_bytes`` or a page over ``decode.max_pixels``.
    """
    limits = limits or DecodeLimits()
    media_type = media_type_for(name)
    if not data:
        raise CorruptInputError(f"{name} is empty (0 bytes); drop the complete file again")
    check_byte_limit(name, len(data), limits)
    if media_type == "application/pdf":
        return list(_pdf_pages(data, name, limits))
    return list(_image_pages(data, name, media_type, limits))


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


def _check_pixels(name: str, width: int, height: int, limits: DecodeLimits, page: int) -> None:
    if width * height > limits.max_pixels:
        raise InputTooLargeError(
            f"{name}: page {page + 1} is {width}x{height} = {width * height} pixels, over the "
            f"limit of {limits.max_pixels} (setting decode.max_pixels); scale the scan down or "
            "raise the limit"
        )


def _corrupt(name: str, media_type: str, exc: BaseException) -> CorruptInputError:
    kind = media_type.split("/")[-1].upper()
    return CorruptInputError(
        f"{name}: not a decodable {kind} image ({exc}); check the file is complete, "
        "re-export or re-scan it"
    )


def _image_pages(
    data: bytes, name: str, media_type: str, limits: DecodeLimits
) -> Iterator[DecodedPage]:
    with warnings.catch_warnings():
        # Our own pixel limit is checked before decoding; Pillow's bomb check would only
        # duplicate it with a different threshold.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            raise _corrupt(name, media_type, exc) from exc
        if image.format not in _PIL_FORMATS[media_type]:
            raise CorruptInputError(
                f"{name}: the name says {media_type} but the bytes are {image.format}; "
                "rename the file with the right suffix"
            )
        with image:
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                _check_pixels(name, frame.width, frame.height, limits, index)
                try:
                    yield _frame_to_page(frame, index)
                except (OSError, ValueError, SyntaxError) as exc:
                    raise _corrupt(name, media_type, exc) from exc


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


def _pdf_pages(data: bytes, name: str, limits: DecodeLimits) -> Iterator[DecodedPage]:
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
        if len(document) == 0:
            raise CorruptInputError(f"{name}: the PDF has no pages; export it again with content")
        scale = limits.pdf_dpi / 72.0
        for index in range(len(document)):
            page = document[index]
            try:
                rotation = int(page.get_rotation()) % 360
                width_pt, height_pt = page.get_size()
                if rotation in (90, 270):
                    width_pt, height_pt = height_pt, width_pt
                width, height = round(width_pt * scale), round(height_pt * scale)
                _check_pixels(name, width, height, limits, index)
                bitmap = page.render(scale=scale, rev_byteorder=False, may_draw_forms=True)
                try:
                    rendered = bitmap.to_numpy()
                    bgr = _bitmap_to_bgr(rendered, bitmap.format)
                finally:
                    bitmap.close()
            finally:
                page.close()
            yield DecodedPage(index=index, image=bgr, rotation=rotation)
    finally:
        document.close()


def _bitmap_to_bgr(pixels: np.ndarray, bitmap_format: int) -> np.ndarray:
    """Convert pdfium's rendered buffer (BGR, BGRx/BGRA or grey, byte order not reversed) as BGR."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, np.newaxis], 3, axis=2)
    elif pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(pixels, dtype=np.uint8)
