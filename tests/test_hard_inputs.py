"""Inputs a person reads but the engine used to read as empty (project issue 17, item 7).

Light text on a transparent background (composited on white it vanished), and a tight crop of
one text line, upright or upside down (DBNet split or lost the line at the image edge, and
the page orientation classifier cannot tell 0 from 180 degrees on one line). Text is rendered
with real fonts: Debian's fonts-dejavu-core and fonts-noto-cjk (scripts/test.sh installs the
latter); a missing font skips with the package to install.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_pipeline.documents import decode_document
from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.preprocess import is_line_shaped, merge_one_row, pad_line
from ocr_pipeline.evaluation import squash

LATIN = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_SERIF = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")
SC_FACE = 2
"""Face index of the Simplified Chinese design in the Noto CJK collections."""
ENGLISH = "Invoice total 42.50 paid by card"
CHINESE = "山东率先引入云计算技术"
SHORT_ENGLISH = "Hello world"
THANKS = "Thank you"
"""Cropped to the ink, the old engine read it as two overlapping words: ``Thank < you``."""
TOTAL = "合计金额"
"""Cropped to the ink, the old engine read it as two overlapping boxes: ``合计 十金额``."""


def _font(path: Path, px: int) -> ImageFont.FreeTypeFont:
    if not path.is_file():
        package = "fonts-noto-cjk" if path.suffix == ".ttc" else "fonts-dejavu-core"
        pytest.skip(f"{path} is missing: apt-get install {package}")
    if path.suffix == ".ttc":
        return ImageFont.truetype(str(path), px, index=SC_FACE)
    return ImageFont.truetype(str(path), px)


def _transparent_png(text: str, font: Path, ink: tuple[int, int, int]) -> bytes:
    """PNG bytes: ``text`` in 32 px ``ink`` (RGB) on a fully transparent RGBA canvas."""
    face = _font(font, 32)
    canvas = Image.new("RGBA", (40 + round(face.getlength(text)), 96), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((20, 32), text, font=face, fill=(*ink, 255))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def _tight_line(text: str, font: Path, px: int, margin: int) -> np.ndarray:
    """``text`` black on white, cropped to its ink plus ``margin`` px: ``(H, W, 3)`` uint8 BGR."""
    face = _font(font, px)
    page = Image.new("L", (40 + round(face.getlength(text)), 3 * px), 255)
    ImageDraw.Draw(page).text((20, px), text, font=face, fill=0)
    grey = np.asarray(page)
    rows, cols = np.nonzero(grey < 128)
    top, left = max(int(rows.min()) - margin, 0), max(int(cols.min()) - margin, 0)
    crop = grey[top : int(rows.max()) + 1 + margin, left : int(cols.max()) + 1 + margin]
    return cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize(
    ("text", "font", "ink"),
    [
        pytest.param(ENGLISH, LATIN, (255, 255, 255), id="white-english"),
        pytest.param(CHINESE, CJK, (255, 255, 255), id="white-chinese"),
        pytest.param(ENGLISH, LATIN, (20, 20, 20), id="dark-english"),
    ],
)
def test_text_on_a_transparent_background_is_read(
    engine: Engine, text: str, font: Path, ink: tuple[int, int, int]
) -> None:
    (decoded,) = decode_document(_transparent_png(text, font, ink), "line.png")
    page = engine.ocr(decoded.image).page
    assert squash(page.text) == squash(text), page.text


@pytest.mark.parametrize("turn", [0, 180])
@pytest.mark.parametrize(
    ("text", "font", "px", "margin"),
    [
        pytest.param(SHORT_ENGLISH, LATIN, 32, 0, id="english-24px"),
        pytest.param(ENGLISH, LATIN, 36, 2, id="english-long-37px"),
        pytest.param(THANKS, LATIN, 38, 0, id="english-words-37px"),
        pytest.param(CHINESE, CJK, 32, 1, id="chinese-32px"),
        pytest.param(TOTAL, CJK_SERIF, 38, 1, id="chinese-serif-38px"),
    ],
)
def test_tight_crop_of_one_line_is_read(
    engine: Engine, text: str, font: Path, px: int, margin: int, turn: int
) -> None:
    line = _tight_line(text, font, px, margin)
    assert 24 <= line.shape[0] <= 40
    image = cv2.rotate(line, cv2.ROTATE_180) if turn else line
    page = engine.ocr(image).page
    assert squash(page.text) == squash(text), page.text
    assert page.rotation == turn
    height, width = image.shape[:2]
    for record in page.lines:  # boxes in the delivered image's pixels, inside it
        for x, y in record.box:
            assert 0 <= x < width and 0 <= y < height


def test_pad_line_adds_a_background_margin_and_its_translation() -> None:
    line = np.full((30, 200, 3), 250, dtype=np.uint8)
    line[5:25, 10:190] = 0
    padded = pad_line(line)
    assert padded.margin == 15  # half the height
    assert padded.image.shape == (60, 230, 3)
    assert (padded.image[:15] == 250).all() and (padded.image[:, :15] == 250).all()
    assert np.array_equal(padded.image[15:45, 15:215], line)
    assert np.allclose(padded.affine, [[1, 0, 15], [0, 1, 15]])
    page = np.zeros((400, 300, 3), dtype=np.uint8)
    assert pad_line(page).image is page and pad_line(page).margin == 0
    assert is_line_shaped(64, 64) and not is_line_shaped(65, 800) and not is_line_shaped(40, 20)


def test_merge_one_row_joins_boxes_of_one_row_only() -> None:
    def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    words = np.array([box(0, 2, 90, 30), box(80, 0, 170, 28)], dtype=np.float32)
    assert merge_one_row(words).tolist() == [box(0, 0, 170, 30)]
    rows = np.array([box(0, 0, 90, 20), box(0, 24, 90, 44)], dtype=np.float32)
    assert merge_one_row(rows) is rows
    one = words[:1]
    assert merge_one_row(one) is one
