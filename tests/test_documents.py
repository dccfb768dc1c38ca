"""Decoding every supported format from real dev scans, orientation, and the limits."""

from __future__ import annotations

import io
import weakref

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from ocr_pipeline.documents import DecodeLimits, decode_document, media_type_for, open_document
from ocr_pipeline.errors import CorruptInputError, InputTooLargeError, UnsupportedFormatError
from tests.conftest import SROIE_DEV

RECEIPT = SROIE_DEV / "images" / "005.jpg"


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def receipt() -> Image.Image:
    return Image.open(RECEIPT).convert("RGB")


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "a.png"), ("BMP", "a.bmp"), ("TIFF", "a.tif")])
def test_lossless_formats_decode_to_the_exact_pixels(
    receipt: Image.Image, fmt: str, name: str
) -> None:
    [page] = decode_document(_encoded(receipt, fmt), name)
    assert page.image.dtype == np.uint8 and page.image.flags["C_CONTIGUOUS"]
    assert np.array_equal(page.image[:, :, ::-1], np.asarray(receipt))
    assert page.rotation == 0


def test_webp_and_jpeg_decode_close_to_the_original(receipt: Image.Image) -> None:
    original = np.asarray(receipt).astype(np.int16)
    for fmt, name in (("WEBP", "a.webp"), ("JPEG", "a.jpeg")):
        [page] = decode_document(_encoded(receipt, fmt, quality=95), name)
        assert page.image.shape == original.shape
        assert np.abs(page.image[:, :, ::-1].astype(np.int16) - original).mean() < 4


def test_exif_orientation_is_applied_and_recorded(receipt: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    [page] = decode_document(_encoded(receipt, "JPEG", quality=95, exif=exif), "photo.jpg")
    assert page.rotation == 90
    assert page.image.shape[:2] == (receipt.width, receipt.height)
    upright = np.rot90(np.asarray(receipt), k=-1)
    assert np.abs(page.image[:, :, ::-1].astype(np.int16) - upright.astype(np.int16)).mean() < 4


def test_grey_alpha_and_16_bit_images_become_bgr(receipt: Image.Image) -> None:
    grey = receipt.convert("L")
    rgba = receipt.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on white
    deep = Image.fromarray(np.asarray(grey).astype(np.uint16) * 256)
    [grey_page] = decode_document(_encoded(grey, "PNG"), "g.png")
    [alpha_page] = decode_document(_encoded(rgba, "PNG"), "a.png")
    [deep_page] = decode_document(_encoded(deep, "PNG"), "d.png")
    assert grey_page.image.shape == (*grey.size[::-1], 3)
    assert np.all(alpha_page.image == 255)
    assert deep_page.image.shape == (*grey.size[::-1], 3)


def test_multi_page_tiff_and_pdf_give_every_page(receipt: Image.Image) -> None:
    second = Image.open(SROIE_DEV / "images" / "000.jpg").convert("RGB")
    tiff = decode_document(
        _encoded(receipt, "TIFF", save_all=True, append_images=[second]), "t.tiff"
    )
    assert [p.index for p in tiff] == [0, 1]
    assert tiff[1].image.shape[:2] == (second.height, second.width)
    pdf_bytes = _encoded(receipt, "PDF", save_all=True, append_images=[second], resolution=100)
    pages = decode_document(pdf_bytes, "s.pdf", DecodeLimits(pdf_dpi=200))
    assert len(pages) == 2
    assert abs(pages[0].image.shape[1] - 2 * receipt.width) <= 2  # 100 dpi image at 200 dpi


def test_pdf_rotate_is_honoured_and_recorded(receipt: Image.Image) -> None:
    document = pdfium.PdfDocument(_encoded(receipt, "PDF", resolution=100))
    document[0].set_rotation(90)
    buffer = io.BytesIO()
    document.save(buffer)
    [page] = decode_document(buffer.getvalue(), "r.pdf", DecodeLimits(pdf_dpi=100))
    assert page.rotation == 90
    assert abs(page.image.shape[0] - receipt.width) <= 2
    assert abs(page.image.shape[1] - receipt.height) <= 2


def test_limits_and_bad_inputs_name_the_file() -> None:
    data = RECEIPT.read_bytes()
    cases = [
        (b"", "empty.jpg", CorruptInputError, "empty"),
        (data[: len(data) // 3], "cut.jpg", CorruptInputError, "cut.jpg"),
        (b"hello\n", "text.png", CorruptInputError, "text.png"),
        (data, "jpeg-named.png", CorruptInputError, "jpeg-named.png"),
    ]
    for payload, name, error, words in cases:
        with pytest.raises(error, match=words):
            decode_document(payload, name)
    with pytest.raises(InputTooLargeError, match=r"decode\.max_pixels"):
        decode_document(data, "big.jpg", DecodeLimits(max_pixels=10_000))
    with pytest.raises(InputTooLargeError, match=r"decode\.max_bytes"):
        decode_document(data, "big.jpg", DecodeLimits(max_bytes=1000))
    with pytest.raises(UnsupportedFormatError, match=r"report\.docx.*\.pdf"):
        media_type_for("report.docx")
    empty = io.BytesIO()
    pdfium.PdfDocument.new().save(empty)
    with pytest.raises(CorruptInputError, match="no pages"):
        decode_document(empty.getvalue(), "none.pdf")
    with pytest.raises(CorruptInputError, match="not a readable PDF"):
        decode_document(b"%PDF-1.4 broken", "broken.pdf")


def test_open_document_decodes_one_page_at_a_time_and_keeps_none(receipt: Image.Image) -> None:
    second = Image.open(SROIE_DEV / "images" / "000.jpg").convert("RGB")
    tiff = _encoded(receipt, "TIFF", save_all=True, append_images=[second])
    pdf = _encoded(receipt, "PDF", save_all=True, append_images=[second], resolution=100)
    for data, name in ((tiff, "t.tiff"), (pdf, "s.pdf")):
        with open_document(data, name, DecodeLimits(pdf_dpi=100)) as document:
            assert document.page_count == 2
            pages = document.pages()
            for index, (width, height) in enumerate(document.sizes):
                page = next(pages)
                assert page.index == index
                assert abs(page.image.shape[1] - width) <= 1, (name, index)
                assert abs(page.image.shape[0] - height) <= 1, (name, index)
                gone = weakref.ref(page)
                del page
                assert gone() is None, (name, index)  # the iterator holds no decoded page
            assert next(pages, None) is None
