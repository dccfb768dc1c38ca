"""Decoding every supported format from real dev scans, orientation, and the limits."""

from __future__ import annotations

import io
import random
import weakref

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from ocr_pipeline.documents import (
    DecodeLimits,
    decode_document,
    media_type_for,
    open_document,
    rendered_size,
)
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
    assert [(p.dpi, p.warnings) for p in tiff] == [(None, ())] * 2  # images have no dpi
    pdf_bytes = _encoded(receipt, "PDF", save_all=True, append_images=[second], resolution=100)
    pages = decode_document(pdf_bytes, "s.pdf", DecodeLimits(pdf_dpi=200))
    assert len(pages) == 2
    assert abs(pages[0].image.shape[1] - 2 * receipt.width) <= 2  # 100 dpi image at 200 dpi
    assert [(p.dpi, p.warnings) for p in pages] == [(200, ())] * 2


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


# --- a page over the limits fails alone (issue 23) -----------------------------------------------


def test_a_pdf_page_over_max_pixels_is_rendered_at_the_highest_dpi_that_fits() -> None:
    # 40 pages of random sizes (20 pt to 88 in a side), one turned by /Rotate: each is rendered
    # at pdf_dpi if it fits max_pixels, else at the highest whole dpi that does (not below
    # min_pdf_dpi), to exactly the size planned; a page that needs less than min_pdf_dpi is
    # that page's error.
    rng = random.Random(23)
    sizes = [(10 ** rng.uniform(1.3, 3.8), 10 ** rng.uniform(1.3, 3.8)) for _ in range(40)]
    document = pdfium.PdfDocument.new()
    for width_pt, height_pt in sizes:
        document.new_page(width_pt, height_pt)
    document[3].set_rotation(90)
    buffer = io.BytesIO()
    document.save(buffer)
    limits = DecodeLimits(max_pixels=1_000_000, min_pdf_dpi=72)
    lowered = refused = 0
    with open_document(buffer.getvalue(), "sizes.pdf", limits) as opened:
        for index, plan in enumerate(opened.plans):
            width_pt, height_pt = sizes[index][:: -1 if index == 3 else 1]
            if plan.error is not None:
                refused += 1
                floor = rendered_size(width_pt, height_pt, 72)
                assert floor[0] * floor[1] > limits.max_pixels, (index, plan)
                assert isinstance(plan.error, InputTooLargeError)
                assert f"sizes.pdf: page {index + 1} is " in str(plan.error)
                assert "decode.min_pdf_dpi" in str(plan.error)
                with pytest.raises(InputTooLargeError, match=rf"page {index + 1} is"):
                    opened.page(index)
                continue
            assert plan.dpi is not None and 72 <= plan.dpi <= 300
            page = opened.page(index)
            assert page.dpi == plan.dpi and page.warnings == plan.warnings
            assert page.image.shape[:2] == (plan.height, plan.width), (index, plan)
            assert plan.width * plan.height <= limits.max_pixels
            if plan.dpi < 300:
                lowered += 1
                bigger = rendered_size(width_pt, height_pt, plan.dpi + 1)
                assert bigger[0] * bigger[1] > limits.max_pixels, (index, plan)  # the highest
                [warning] = plan.warnings
                assert warning.startswith(
                    f"page {index + 1} rendered at {plan.dpi} dpi instead of 300 to stay "
                    "within decode.max_pixels"
                )
            else:
                assert plan.warnings == ()
    assert min(lowered, refused, 40 - lowered - refused) >= 5, (lowered, refused)  # each kind
    with pytest.raises(InputTooLargeError, match=r"sizes\.pdf: page \d+ is"):
        decode_document(buffer.getvalue(), "sizes.pdf", limits)  # all at once: the first bad


def _tiff(frames: list[Image.Image], **options: object) -> bytes:
    return _encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:], **options)


def test_an_image_frame_over_max_pixels_is_that_pages_error() -> None:
    small, large = Image.new("RGB", (100, 100), "white"), Image.new("RGB", (300, 300), "white")
    data = _tiff([small, large, small])
    with open_document(data, "t.tif", DecodeLimits(max_pixels=20_000)) as opened:
        assert [plan.error is None for plan in opened.plans] == [True, False, True]
        assert opened.sizes == [(100, 100), (300, 300), (100, 100)]
        assert opened.total_pixels == 20_000  # the page not decoded counts nothing
        with pytest.raises(
            InputTooLargeError, match=r"t\.tif: page 2 is 300x300 = 90000 pixels.*max_pixels"
        ):
            opened.page(1)
        assert opened.page(2).image.shape == (100, 100, 3)
    with pytest.raises(InputTooLargeError, match=r"t\.tif: page 2 is 300x300"):
        decode_document(data, "t.tif", DecodeLimits(max_pixels=20_000))


def test_a_corrupt_tiff_frame_fails_alone_and_the_next_frame_decodes(
    receipt: Image.Image,
) -> None:
    # Garbage over the middle frame's LZW strips: libtiff fails that frame ("decoder error"),
    # and the last frame still decodes to its exact pixels.
    second = Image.open(SROIE_DEV / "images" / "000.jpg").convert("RGB")
    third = Image.open(SROIE_DEV / "images" / "001.jpg").convert("RGB")
    data = bytearray(_tiff([receipt, second, third], compression="tiff_lzw"))
    with Image.open(io.BytesIO(bytes(data))) as tiff:
        tiff.seek(1)
        offsets, counts = tiff.tag_v2[273], tiff.tag_v2[279]
    start, end = offsets[0] + 10, offsets[-1] + counts[-1] - 10
    data[start:end] = np.random.default_rng(0).bytes(end - start)
    with open_document(bytes(data), "lzw.tiff") as opened:
        assert opened.page_count == 3
        with pytest.raises(CorruptInputError, match=r"lzw\.tiff: page 2 of 3 is not a decodable"):
            opened.page(1)
        assert np.array_equal(opened.page(2).image[:, :, ::-1], np.asarray(third))
        assert opened.page(0).image.shape[:2] == (receipt.height, receipt.width)


def test_a_tiff_cut_off_in_a_frame_keeps_the_pages_before_it(receipt: Image.Image) -> None:
    # A file cut in the middle of frame 2's data (an interrupted copy): frame 1 decodes, frame
    # 2's data is short, and frame 3's header is past the end (Pillow: "Missing dimensions").
    second = Image.open(SROIE_DEV / "images" / "000.jpg").convert("RGB")
    data = _tiff([receipt, second, receipt])
    with Image.open(io.BytesIO(data)) as tiff:
        tiff.seek(1)
        [offset], [count] = tiff.tag_v2[273], tiff.tag_v2[279]
    cut = data[: offset + count // 2]
    with open_document(cut, "cut.tif") as opened:
        assert opened.page_count == 3 and opened.sizes[2] == (0, 0)
        assert opened.page(0).image.shape[:2] == (receipt.height, receipt.width)
        with pytest.raises(CorruptInputError, match=r"cut\.tif: page 2 of 3 .*truncated"):
            opened.page(1)
        with pytest.raises(
            CorruptInputError, match=r"cut\.tif: the header of page 3 cannot be read.*cut off"
        ):
            opened.page(2)
