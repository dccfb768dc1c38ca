"""Page orientation and deskew (issue 9), with the default engine on the shared dev sets.

Rotated and skewed pages are built here with OpenCV from ../shared/data; nothing is copied into
the repository. Convention: ``rotation`` is the clockwise quarter turn from the page as stored
(before EXIF / PDF /Rotate) to the upright page read, so a page the test turns clockwise by ``r``
must come back with ``(360 - r) % 360``.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_pipeline.documents import decode_document
from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.geometry import transform_quads
from ocr_pipeline.engine.orient import (
    Orientation,
    PageOrientationClassifier,
    orientation_input,
    rotate_quarter,
    skew_from_quads,
)
from ocr_pipeline.engine.preprocess import rotate_keep_all
from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.results import Page
from tests.conftest import SHARED_DATA, SROIE_DEV

ZH_DEV = SHARED_DATA / "zh-dev"
TURNS = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}
CJK_FONT_DIRS = [
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto-cjk"),
]
SC_INDEX = 2  # Simplified Chinese face in the Noto CJK .ttc collections
POEMS = (
    "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少床前明月光疑是地上霜举头望明月低头思故乡"
    "白日依山尽黄河入海流欲穷千里目更上一层楼千山鸟飞绝万径人踪灭孤舟蓑笠翁独钓寒江雪"
    "红豆生南国春来发几枝愿君多采撷此物最相思空山不见人但闻人语响返景入深林复照青苔上"
)


def turn(image: np.ndarray, clockwise: int) -> np.ndarray:
    """The page turned clockwise by 0/90/180/270 degrees."""
    return image if clockwise == 0 else cv2.rotate(image, TURNS[clockwise])


@pytest.fixture(scope="module")
def sroie_images() -> list[tuple[str, np.ndarray]]:
    """(ground truth text, upright image) of the 50 dev receipts."""
    pages = []
    for record in load_ground_truth(SROIE_DEV):
        image = cv2.imread(str(record.image), cv2.IMREAD_COLOR)
        assert image is not None
        pages.append((record.text, image))
    return pages


@pytest.fixture(scope="module")
def zh_pages(engine: Engine) -> list[tuple[str, np.ndarray, Page]]:
    """(ground truth, upright image, upright OCR page) of the 6 Chinese dev pages."""
    pages = []
    for record in load_ground_truth(ZH_DEV):
        image = cv2.imread(str(record.image), cv2.IMREAD_COLOR)
        assert image is not None
        pages.append((record.text, image, engine.ocr(image).page))
    return pages


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Serif CJK SC at ``size`` px (Debian ``fonts-noto-cjk``; scripts/test.sh installs it)."""
    for folder in CJK_FONT_DIRS:
        path = folder / "NotoSerifCJK-Regular.ttc"
        if path.is_file():
            return ImageFont.truetype(str(path), size, index=SC_INDEX)
    pytest.fail("no Noto CJK font: run `apt-get install fonts-noto-cjk` (scripts/test.sh does)")


def vertical_chinese_page(size: int = 44, per_column: int = 16) -> tuple[np.ndarray, list[str]]:
    """A4 at 150 dpi of vertical Chinese columns, read top to bottom, columns right to left."""
    face = cjk_font(size)
    width, height = 1240, 1754
    canvas = Image.new("RGB", (width, height), (250, 248, 240))
    draw = ImageDraw.Draw(canvas)
    columns = [POEMS[i : i + per_column] for i in range(0, len(POEMS), per_column)]
    x = width - 150
    for column in columns:
        for row, char in enumerate(column):
            top = 180 + row * int(size * 1.15)
            draw.text((x, top), char, font=face, fill=(25, 25, 25), anchor="mt")
        x -= int(size * 1.8)
    return cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR), columns


# --- pure geometry, no models -------------------------------------------------------------


def test_quarter_turn_affine_maps_pixels_exactly() -> None:
    image = np.zeros((5, 8, 3), np.uint8)
    image[1, 6] = 255  # x=6, y=1
    for clockwise in (0, 90, 180, 270):
        turned, affine = rotate_quarter(image, clockwise)
        mapped = transform_quads(np.array([[[6, 1]] * 4], np.float32), affine)[0, 0]
        x, y = (round(float(v)) for v in mapped)
        assert turned[y, x, 0] == 255, clockwise
    with pytest.raises(ValueError, match="not one of"):
        rotate_quarter(image, 45)


def test_skew_from_quads_measures_lines_and_columns() -> None:
    line = np.array([[0, 0], [100, 0], [100, 10], [0, 10]], np.float32)
    for degrees in (-10.0, 0.0, 4.0):
        rotation = cv2.getRotationMatrix2D((0.0, 0.0), degrees, 1.0)
        offsets = np.array([[[0, 30 * i]] for i in range(5)], np.float32)
        lines = (line[np.newaxis] + offsets) @ rotation[:, :2].T
        assert skew_from_quads(lines.astype(np.float32)) == pytest.approx(degrees, abs=0.01)
        columns = lines[:, [3, 0, 1, 2]][:, :, ::-1]  # transposed: tall boxes
        assert abs(abs(skew_from_quads(columns.astype(np.float32)) or 0.0) - abs(degrees)) < 0.01
    assert skew_from_quads(np.zeros((0, 4, 2), np.float32)) is None


def test_orientation_input_shape() -> None:
    tensor = orientation_input(np.full((1013, 463, 3), 200, np.uint8))
    assert tensor.shape == (1, 3, 224, 224) and tensor.dtype == np.float32


# --- the dev receipts turned and skewed ---------------------------------------------------


@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_turned_receipts_read_like_upright_ones(
    engine: Engine,
    sroie_images: list[tuple[str, np.ndarray]],
    dev_pages: list[tuple[str, Page]],
    clockwise: int,
) -> None:
    upright, turned = Score(), Score()
    right = 0
    for (reference, image), (_, straight) in zip(sroie_images, dev_pages, strict=True):
        page = engine.ocr(turn(image, clockwise)).page
        right += page.rotation == (360 - clockwise) % 360
        upright.add(straight.text, reference)
        turned.add(page.text, reference)
    print(
        f"sroie-dev turned {clockwise}: CER {turned.cer:.4f} (upright {upright.cer:.4f}), "
        f"{right}/50 right"
    )
    assert right >= 49
    assert abs(turned.cer - upright.cer) <= 0.01


@pytest.mark.parametrize("degrees", [5.0, -10.0])
def test_skewed_receipts_read_like_straight_ones(
    engine: Engine,
    sroie_images: list[tuple[str, np.ndarray]],
    dev_pages: list[tuple[str, Page]],
    degrees: float,
) -> None:
    upright, skewed = Score(), Score()
    for (reference, image), (_, straight) in zip(sroie_images, dev_pages, strict=True):
        tilted, _ = rotate_keep_all(image, degrees)
        page = engine.ocr(tilted).page
        assert page.rotation == 0
        upright.add(straight.text, reference)
        skewed.add(page.text, reference)
    print(f"sroie-dev skewed {degrees}: CER {skewed.cer:.4f} (upright {upright.cer:.4f})")
    assert skewed.cer - upright.cer <= 0.02


def test_boxes_of_a_turned_page_are_in_delivered_pixels(
    engine: Engine, sroie_images: list[tuple[str, np.ndarray]], dev_pages: list[tuple[str, Page]]
) -> None:
    _, image = sroie_images[0]
    height, width = image.shape[:2]
    page = engine.ocr(turn(image, 90)).page  # delivered: width and height swapped
    assert (page.width, page.height, page.rotation) == (height, width, 270)
    straight = [(line.text, np.array(line.box)) for line in dev_pages[0][1].lines]
    matched = 0
    for line in page.lines:
        # Turning the delivered box back (counter-clockwise) gives the upright page's box,
        # corners in the same order (the first is the text's top-left).
        back = np.array([(y, height - 1 - x) for x, y in line.box])
        matched += any(
            text == line.text and np.abs(back - box).max() <= 2 for text, box in straight
        )
    assert matched >= 0.9 * len(page.lines) > 0


# --- Chinese pages ---------------------------------------------------------------------------


def test_turned_chinese_pages_read_like_upright_ones(
    engine: Engine, zh_pages: list[tuple[str, np.ndarray, Page]]
) -> None:
    upright = Score()
    for reference, _, page in zh_pages:
        upright.add(page.text, reference)
    for clockwise in (90, 180, 270):
        turned = Score()
        right = 0
        for reference, image, _ in zh_pages:
            page = engine.ocr(turn(image, clockwise)).page
            right += page.rotation == (360 - clockwise) % 360
            turned.add(page.text, reference)
        print(
            f"zh-dev turned {clockwise}: char F1 {turned.char_f1:.4f} "
            f"(upright {upright.char_f1:.4f}), {right}/6 right"
        )
        assert right == 6
        assert abs(turned.char_f1 - upright.char_f1) <= 0.01


def test_vertical_chinese_columns_are_not_turned_sideways(engine: Engine) -> None:
    image, columns = vertical_chinese_page()
    page = engine.ocr(image).page
    score = Score()
    score.add(page.text, "\n".join(columns))
    assert page.rotation == 0
    assert score.char_f1 >= 0.95
    # The same page really turned is still recognised as turned.
    sideways = engine.ocr(turn(image, 90)).page
    assert sideways.rotation == 270


# --- PDF pages with /Rotate and turned page images -------------------------------------------


def pdf_of(pages: list[tuple[np.ndarray, int]], dpi: int = 300) -> bytes:
    """A PDF with one full-page JPEG per page and the given /Rotate values."""
    document = pdfium.PdfDocument.new()
    for image, rotate in pages:
        height, width = image.shape[:2]
        w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
        page = document.new_page(w_pt, h_pt)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        picture = pdfium.PdfImage.new(document)
        picture.load_jpeg(io.BytesIO(jpeg.tobytes()), inline=True)
        picture.set_matrix(pdfium.PdfMatrix().scale(w_pt, h_pt))
        page.insert_obj(picture)
        page.gen_content()
        page.set_rotation(rotate)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_pdf_pages_turned_differently_each_get_their_rotation(
    engine: Engine, sroie_images: list[tuple[str, np.ndarray]], dev_pages: list[tuple[str, Page]]
) -> None:
    # (receipt, clockwise turn of the stored page image, /Rotate): the total correction from
    # the stored image to upright is the inverse of the stored turn, whatever /Rotate says.
    plan = [(0, 0, 90), (1, 270, 90), (2, 180, 0), (3, 90, 180), (4, 0, 270)]
    data = pdf_of([(turn(sroie_images[n][1], stored), rotate) for n, stored, rotate in plan])
    pages = decode_document(data, "mixed.pdf")
    assert [p.rotation for p in pages] == [rotate for _, _, rotate in plan]
    for decoded, (n, stored, _) in zip(pages, plan, strict=True):
        expected = (360 - stored) % 360
        page = engine.ocr(decoded.image, index=decoded.index, rotation=decoded.rotation).page
        reference = sroie_images[n][0]
        got, straight = Score(), Score()
        got.add(page.text, reference)
        straight.add(dev_pages[n][1].text, reference)
        assert page.rotation == expected, (n, page.rotation)
        assert got.cer <= straight.cer + 0.03, (n, got.cer, straight.cer)


class _CountingOrienter:
    """The real page classifier, counting its calls."""

    def __init__(self, inner: PageOrientationClassifier) -> None:
        self.inner = inner
        self.calls = 0

    def classify(self, image: np.ndarray) -> Orientation:
        self.calls += 1
        return self.inner.classify(image)


def test_orientation_off_leaves_pages_alone(
    engine: Engine, sroie_images: list[tuple[str, np.ndarray]]
) -> None:
    assert engine.orienter is not None and engine.orient.mode == "auto"
    counting = _CountingOrienter(engine.orienter)

    def with_mode(mode: str) -> Engine:
        return Engine(
            engine.detector,
            engine.recognizer,
            engine.classifier,
            engine.preprocess,
            engine.recognize_settings,
            engine.layout,
            engine.models,
            counting,  # type: ignore[arg-type]
            engine.orient.model_copy(update={"mode": mode}),
        )

    page = with_mode("off").ocr(turn(sroie_images[0][1], 180), rotation=90).page
    assert page.rotation == 90 and page.skew == 0.0
    assert counting.calls == 0, "off: the page classifier never runs"
    # The same engine with the stage on does run it: the count above can fail.
    with_mode("auto").ocr(sroie_images[0][1])
    assert counting.calls == 1
