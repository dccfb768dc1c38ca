"""Vertical Chinese lines rendered with a real CJK font, read by the default engine.

The font is Debian's fonts-noto-cjk (scripts/test.sh installs it). Vertical lines must be marked
``vertical``, recognised, and read right to left, a vertical headline before its article.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import Score

FONT = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")
SC_FACE = 2
"""Face index of the Simplified Chinese design in the Noto CJK collections."""
POEM = ["春眠不觉晓", "处处闻啼鸟", "夜来风雨声", "花落知多少"]
HEADLINE = "山东率先引入云计算"
BODY = [
    "近年来山东省在农业信息化",
    "领域首次引入云计算技术为",
    "全国农业信息化建设提供了",
    "新的思路和有益的借鉴",
]


def _render(size: tuple[int, int], draw_text: list[tuple[str, int, int, int, bool]]) -> np.ndarray:
    """White page ``(H, W, 3)`` uint8 BGR with (text, x, y, font px, vertical) drawn black."""
    if not FONT.is_file():
        pytest.fail(f"{FONT} is missing: apt-get install fonts-noto-cjk (scripts/test.sh does)")
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    for text, x, y, px, vertical in draw_text:
        font = ImageFont.truetype(str(FONT), px, index=SC_FACE)
        if vertical:
            for k, char in enumerate(text):
                draw.text((x, y + k * round(px * 1.15)), char, font=font, fill="black")
        else:
            draw.text((x, y), text, font=font, fill="black")
    return cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)


def test_vertical_columns_are_read_right_to_left(engine: Engine) -> None:
    columns = [(text, 520 - 90 * k, 60, 48, True) for k, text in enumerate(POEM)]
    page = engine.ocr(_render((640, 420), columns)).page
    assert [line.vertical for line in page.lines] == [True] * 4
    score = Score()
    score.add(page.text, "\n".join(POEM))
    assert score.cer <= 0.1, page.text  # in reading order: a wrong order costs about 0.75


def test_vertical_headline_beside_horizontal_text_comes_first(engine: Engine) -> None:
    body = [(line, 40, 80 + 50 * k, 30, False) for k, line in enumerate(BODY)]
    page = engine.ocr(_render((640, 480), [*body, (HEADLINE, 480, 40, 40, True)])).page
    assert page.lines[0].vertical
    assert not any(line.vertical for line in page.lines[1:])
    score = Score()
    score.add(page.text, "\n".join([HEADLINE, *BODY]))
    assert score.cer <= 0.1, page.text
