"""Word boxes from the CTC decoder (issue 19, item 4).

Pure parts first (decoding frames, placing characters, words, corrections), then the real
engine on lines rendered with real fonts (Debian's fonts-dejavu-core and fonts-noto-cjk, as in
tests/test_hard_inputs.py), whose true word boxes are known, and on real dev pages, where every
line's words must spell its text and lie inside its box.

The synthetic truth is each word's box as Pillow draws it: ``textbbox`` (its horizontal extent
runs from the pen position to the advance, so it includes the side bearings), and its ink. Our
word boxes have the line box's height (DBNet's box, about 1.5 times the ink of lower-case
words), so the area IoU is bounded by the heights: the along-the-line IoU with the ink measures
the placement itself. Measured (docs/engine.md, "Word boxes"): area IoU with ``textbbox``
English 0.603, Chinese 0.892, mixed 0.661, the English page turned 90 degrees 0.603; along the
line with the ink 0.991, 0.998, 0.987 and 0.991.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from ocr_pipeline import resources
from ocr_pipeline.correct import Confusables, Corrector, Lexicon, correct_page
from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.geometry import crop_turned, reading_corners
from ocr_pipeline.engine.recognize import (
    Recognized,
    build_charset,
    ctc_greedy_decode,
    insert_visible_spaces,
    locate_characters,
)
from ocr_pipeline.engine.wordboxes import (
    build_words,
    char_quads,
    corrected_words,
    is_wide,
    word_ranges,
)
from ocr_pipeline.results import Line, Page
from tests.conftest import SHARED_DATA, SROIE_DEV
from tests.test_hard_inputs import _font

LATIN = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_SERIF = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")

ENGLISH = [
    ("Invoice total 42.50 paid by card", 36),
    ("The quick brown fox jumps over the lazy dog.", 28),
    ("Order No : 12345 Date: 2024-03-01", 32),
    ("Thank you for shopping with us", 24),
]
CHINESE = [
    ("山东率先引入云计算技术", 40),
    ("近年来山东省在农业信息化领域", 32),
    ("全国农业信息化建设提供了新的思路", 28),
]
MIXED = [
    ("A4复印纸 80g 共5包", 36),
    ("总计 Total 合计金额 RM 120.00", 32),
    ("型号ABC-123 单价 45元", 32),
    ("iPhone 15 手机壳 黑色", 32),
]
MIN_IOU = {"english": 0.58, "chinese": 0.86, "mixed": 0.63, "english turned": 0.58}
"""Mean area IoU with Pillow's ``textbbox``: measured 0.603, 0.892, 0.661, 0.603."""
MIN_ALONG = 0.96
"""Mean IoU with the ink along the line: measured 0.991, 0.998, 0.987, 0.991 (the line split
by character widths instead, the writers' fallback, gives 0.787 on the English lines)."""
TOLERANCE_PX = 2
"""How far outside its line's box a word's corner may lie (boxes are rounded to pixels)."""


# --- the pure parts -----------------------------------------------------------------------------


def test_words_are_space_separated_runs_cut_between_cjk_and_other_scripts() -> None:
    def words(text: str) -> list[str]:
        return [text[a:b] for a, b in word_ranges(text)]

    assert words("A4复印纸 80g 共5包") == ["A4", "复印纸", "80g", "共", "5", "包"]
    assert words(" Total  Item(a):1 ") == ["Total", "Item(a):1"]
    assert words("金额：12.50元") == ["金额：", "12.50", "元"]  # full-width colon is wide
    assert words("") == [] and words("   ") == []


def _one_hot(indices: list[int], classes: int) -> np.ndarray:
    probs = np.full((len(indices), classes), 0.01, dtype=np.float32)
    probs[np.arange(len(indices)), indices] = 0.9
    return probs[np.newaxis]


def test_decoding_keeps_each_characters_first_and_last_frame() -> None:
    charset = build_charset(list("ab"), num_classes=4)  # blank, a, b, space
    # frames: a a blank a b b space b
    [reading] = ctc_greedy_decode(_one_hot([1, 1, 0, 1, 2, 2, 3, 2], 4), charset)
    assert reading.text == "aab b"
    assert reading.char_frames == (0, 3, 4, 6, 7)
    assert reading.char_frame_ends == (2, 4, 6, 7, 8)


def _ink(width: int, glyphs: list[tuple[int, int]]) -> np.ndarray:
    ink = np.zeros(width, dtype=bool)
    for start, end in glyphs:
        ink[start:end] = True
    return ink


def test_characters_are_placed_on_their_ink_and_spaces_on_their_gap() -> None:
    # Glyphs at 10-30, 34-54 ("ab"), a gap, then 80-100 ("c"); one frame is 8 columns.
    ink = _ink(120, [(10, 30), (34, 54), (80, 100)])
    # The space is emitted late, at frame 9 (columns 72-80), after the gap's middle.
    reading = Recognized("ab c", (0.9,) * 4, (2, 5, 9, 11), (3, 6, 10, 12))
    spans = [
        (round(a * 120), round(b * 120)) for a, b in locate_characters(reading, ink, 8).char_spans
    ]
    assert spans == [(10, 30), (34, 54), (54, 80), (80, 100)]


def test_an_inserted_space_takes_the_gap_between_its_neighbours() -> None:
    grey = np.full((48, 160), 255, dtype=np.uint8)
    for start, end in [(8, 40), (44, 76), (112, 150)]:  # "ab", a 36-column gap, "c"
        grey[10:38, start:end] = 0
    reading = Recognized("abc", (0.9, 0.8, 0.7), (3, 7, 16), (4, 8, 17))
    spaced = insert_visible_spaces(reading, grey, 8.0, 0.5)
    assert spaced.text == "ab c"
    assert spaced.char_frames == (3, 7, 8, 16) and spaced.char_frame_ends == (4, 8, 16, 17)
    ink = grey[24] == 0
    spans = [
        (round(a * 160), round(b * 160)) for a, b in locate_characters(spaced, ink, 8).char_spans
    ]
    assert spans[1][1] == 76 and spans[2] == (76, 112) and spans[3][0] == 112


def test_reading_corners_follow_the_crop() -> None:
    wide = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], dtype=np.float32)
    tall = np.array([[0, 0], [20, 0], [20, 100], [0, 100]], dtype=np.float32)
    assert not crop_turned(wide) and crop_turned(tall)
    assert reading_corners(False, False) == (0, 1, 2, 3)
    assert reading_corners(True, False) == (1, 2, 3, 0)  # down the right edge
    assert reading_corners(False, True) == (2, 3, 0, 1)  # upside down: from the bottom right
    quads = char_quads(tall[list(reading_corners(True, False))], [(0.0, 0.5), (0.5, 1.0)])
    assert quads[0].tolist() == [[20, 0], [20, 50], [0, 50], [0, 0]]


def _line(text: str, confidences: list[float] | None = None) -> Line:
    """A line 10 px a character (20 a wide one) from x = 100, words as the engine builds them."""
    widths = [20 if is_wide(c) else 10 for c in text]
    edges = np.cumsum([0, *widths]) / sum(widths)
    box = ((100, 50), (100 + sum(widths), 50), (100 + sum(widths), 80), (100, 80))
    quads = char_quads(np.array(box), list(pairwise(edges)))
    conf = confidences or [0.9] * len(text)
    words = build_words(text, quads, conf)
    return Line(
        text=text,
        raw_text=text,
        confidence=float(np.mean(conf)),
        box=box,
        char_confidences=conf,
        words=words,
    )


def _spans(line: Line) -> list[tuple[str, int, int]]:
    assert line.words is not None
    return [(w.text, w.box[0][0], w.box[1][0]) for w in line.words]


def test_corrected_words_take_the_place_of_what_they_replace() -> None:
    line = _line("TOTAL 1O.5O 合计金頟")
    assert _spans(line) == [("TOTAL", 100, 150), ("1O.5O", 160, 210), ("合计金頟", 220, 300)]
    assert line.words is not None
    changes = [(6, 11, "10.50"), (15, 16, "额")]
    words = corrected_words(line.raw_text, line.words, line.char_confidences, changes)
    assert words is not None
    assert [w.text for w in words] == ["TOTAL", "10.50", "合计金额"]
    assert [w.box for w in words] == [w.box for w in line.words]
    # A longer replacement shares the replaced place; one with a space splits it into words.
    words = corrected_words(line.raw_text, line.words, line.char_confidences, [(0, 5, "TO TAL")])
    assert words is not None
    assert [(w.text, w.box[0][0], w.box[1][0]) for w in words[:2]] == [
        ("TO", 100, 117),
        ("TAL", 125, 150),
    ]
    # Replacing a word's last characters by wide ones cuts it where the script changes.
    words = corrected_words(line.raw_text, line.words, [0.5] * 17, [(9, 11, "元")])
    assert words is not None
    assert [(w.text, w.box[0][0], w.box[1][0], w.confidence) for w in words[1:3]] == [
        ("1O.", 160, 190, 0.5),
        ("元", 190, 210, 0.5),
    ]


def test_correct_page_moves_the_words_with_the_corrections() -> None:
    text = "TOTAL 1O.5O 增值税专用发漂"
    unsure = [0.4 if c in "O漂" else 0.999 for c in text]
    line = _line(text, unsure)
    page = Page(index=0, width=400, height=100, lines=[line], text=text)
    lexicon = Lexicon()
    lexicon.add("TOTAL", 5)
    lexicon.add("增值税专用发票", 5)
    corrector = Corrector(
        lexicon, Confusables.read(resources.confusables_file()), max_char_confidence=0.9, margin=2.0
    )
    [corrected] = correct_page(page, corrector).lines
    assert corrected.text == "TOTAL 10.50 增值税专用发票"
    assert _spans(corrected) == [
        ("TOTAL", 100, 150),
        ("10.50", 160, 210),
        ("增值税专用发票", 220, 360),
    ]
    _assert_words_fit(corrected)


# --- the real engine ----------------------------------------------------------------------------


Box = tuple[int, int, int, int]
Truth = list[tuple[str, Box, Box]]
"""Per word: its text, Pillow's ``textbbox`` and its ink's bounds, ``(x0, y0, x1, y1)``."""


def _render(lines: list[tuple[str, int]], font: Path) -> tuple[np.ndarray, Truth]:
    """The lines black on a white page, 40 px from the left, and each word's true box."""
    height = sum(round(px * 2.2) for _, px in lines) + 60
    size = (1000, height)
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    truth: Truth = []
    y = 40
    for text, px in lines:
        face = _font(font, px)
        draw.text((40, y), text, font=face, fill="black")
        for start, end in word_ranges(text):
            x = 40 + face.getlength(text[:start])
            box = draw.textbbox((x, y), text[start:end], font=face)
            alone = Image.new("L", size, 255)
            ImageDraw.Draw(alone).text((x, y), text[start:end], font=face, fill=0)
            ys, xs = np.nonzero(np.asarray(alone) < 128)
            ink = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            truth.append((text[start:end], tuple(round(v) for v in box), ink))  # type: ignore[misc]
        y += round(px * 2.2)
    return cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR), truth


def _bounds(quad: tuple[tuple[int, int], ...]) -> Box:
    xs, ys = [x for x, _ in quad], [y for _, y in quad]
    return min(xs), min(ys), max(xs), max(ys)


def _iou(a: Box, b: Box) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _along(a: Box, b: Box, axis: int) -> float:
    """IoU of two boxes' extents along ``axis`` (0: x, 1: y)."""
    inter = max(0, min(a[axis + 2], b[axis + 2]) - max(a[axis], b[axis]))
    return inter / (max(a[axis + 2], b[axis + 2]) - min(a[axis], b[axis]))


def _assert_words_fit(line: Line) -> None:
    """The words spell the line's text, and each lies inside the line's box."""
    assert line.words is not None, line.text
    texts = [w.text for w in line.words]
    # Each word is found after the previous one; whitespace between them becomes one space.
    rebuilt, cursor = "", 0
    for word in texts:
        position = line.text.index(word, cursor)
        between = line.text[cursor:position]
        assert not between.strip(), (line.text, texts)
        rebuilt += (" " if between and rebuilt else "") + word
        cursor = position + len(word)
    assert not line.text[cursor:].strip(), (line.text, texts)
    assert rebuilt == re.sub(r"\s+", " ", line.text.strip()), (line.text, texts)
    contour = np.array(line.box, dtype=np.float32).reshape(-1, 1, 2)
    for word in line.words:
        for x, y in word.box:
            inside = cv2.pointPolygonTest(contour, (float(x), float(y)), True)
            assert inside >= -TOLERANCE_PX, (line.text, line.box, word)


def _scores(page: Page, truth: Truth, axis: int) -> tuple[float, float]:
    """Mean area IoU with ``textbbox`` and mean IoU with the ink along the line (``axis``)."""
    ours = [word for line in page.lines for word in line.words or []]
    area, along = [], []
    for text, box, ink in truth:
        [word] = [w for w in ours if w.text == text]  # each test word is read and unique
        area.append(_iou(_bounds(word.box), box))
        along.append(_along(_bounds(word.box), ink, axis))
    return float(np.mean(area)), float(np.mean(along))


@pytest.mark.parametrize(
    ("name", "lines", "font"),
    [("english", ENGLISH, LATIN), ("chinese", CHINESE, CJK), ("mixed", MIXED, CJK)],
)
def test_word_boxes_fall_on_the_rendered_words(
    engine: Engine, name: str, lines: list[tuple[str, int]], font: Path
) -> None:
    image, truth = _render(lines, font)
    page = engine.ocr(image).page
    assert [line.text for line in page.lines] == [text for text, _ in lines]
    for line in page.lines:
        _assert_words_fit(line)
    area, along = _scores(page, truth, axis=0)
    assert area >= MIN_IOU[name], (area, along)
    assert along >= MIN_ALONG, (area, along)


def test_word_boxes_of_a_page_turned_sideways(engine: Engine) -> None:
    image, truth = _render(ENGLISH, LATIN)
    height = image.shape[0]
    page = engine.ocr(cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)).page
    assert page.rotation == 270 and [line.text for line in page.lines] == [t for t, _ in ENGLISH]

    def turned(box: Box) -> Box:  # (x, y) -> (height - y, x), a quarter turn clockwise
        return (height - box[3], box[0], height - box[1], box[2])

    sideways = [(text, turned(box), turned(ink)) for text, box, ink in truth]
    area, along = _scores(page, sideways, axis=1)
    assert area >= MIN_IOU["english turned"], (area, along)
    assert along >= MIN_ALONG, (area, along)
    for line in page.lines:
        _assert_words_fit(line)
        assert line.words is not None
        for word in line.words:  # the text runs down the page: first edge downwards
            (x0, y0), (x1, y1) = word.box[0], word.box[1]
            assert y1 > y0 and abs(x1 - x0) <= 2, word


def test_vertical_lines_have_words_down_the_line(engine: Engine) -> None:
    poem = ["春眠不觉晓", "处处闻啼鸟"]
    page_image = Image.new("RGB", (400, 420), "white")
    draw = ImageDraw.Draw(page_image)
    face = _font(CJK_SERIF, 48)
    for k, text in enumerate(poem):
        for j, char in enumerate(text):
            draw.text((280 - 90 * k, 60 + j * 55), char, font=face, fill="black")
    image = cv2.cvtColor(np.asarray(page_image), cv2.COLOR_RGB2BGR)
    page = engine.ocr(image).page
    assert [line.text for line in page.lines] == poem
    for line, x in zip(page.lines, (280, 190), strict=True):
        _assert_words_fit(line)
        assert line.words is not None
        [word] = line.words
        (x0, y0), (x1, y1), (x2, _), _ = word.box
        # From the top right, down the right edge.
        assert abs(x1 - x0) <= 2 and x1 > x2 and y1 - y0 > 200, word
        ys, xs = np.nonzero(image[:, x - 20 : x + 70, 0] < 128)
        ink = (x - 20 + int(xs.min()), int(ys.min()), x - 20 + int(xs.max()) + 1, int(ys.max()) + 1)
        box = _bounds(word.box)
        assert _along(box, ink, axis=1) >= MIN_ALONG, (word, ink)
        assert box[0] <= ink[0] and box[2] >= ink[2], (word, ink)


def _dev_pages() -> list[Path]:
    receipts = [SROIE_DEV / "images" / f"{n:03d}.jpg" for n in (0, 7, 21)]
    return [*receipts, SHARED_DATA / "zh-dev" / "images" / "003.jpg"]


@pytest.mark.parametrize("path", _dev_pages(), ids=lambda p: f"{p.parent.parent.name}-{p.stem}")
def test_every_line_of_a_real_page_has_words_that_spell_it(engine: Engine, path: Path) -> None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    page = engine.ocr(image).page
    assert page.lines
    for line in page.lines:
        _assert_words_fit(line)
    # Through the corrector too, every character read unsure, so that it changes what it can.
    lexicon = Lexicon()
    for line in page.lines:
        for word in re.findall(r"[A-Za-z]{4,}", line.text):
            lexicon.add(word.upper().replace("I", "L"), 3)  # near misses of the words read
        for run in re.findall(r"[\u4e00-\u9fff]{4,}", line.text):
            lexicon.add(run[:-1] + ("的" if run[-1] != "的" else "是"), 3)
    corrector = Corrector(
        lexicon, Confusables.read(resources.confusables_file()), max_char_confidence=0.9, margin=2.0
    )
    unsure = page.model_copy(
        update={
            "lines": [
                line.model_copy(update={"char_confidences": [0.5] * len(line.raw_text)})
                for line in page.lines
            ]
        }
    )
    corrected = correct_page(unsure, corrector)
    assert any(line.corrections for line in corrected.lines)
    for line in corrected.lines:
        _assert_words_fit(line)
