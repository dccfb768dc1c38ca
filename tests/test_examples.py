"""The README's demo scans (examples/) read correctly: bilingual receipt and Chinese notice."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from rapidfuzz.distance import Levenshtein

from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import squash

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["receipt-bilingual", "notice-zh"])
def test_example_scan_reads_like_its_ground_truth(engine: Engine, name: str) -> None:
    image = cv2.imread(str(EXAMPLES / f"{name}.jpg"), cv2.IMREAD_COLOR)
    reference = squash((EXAMPLES / f"{name}.gt.txt").read_text(encoding="utf-8"))
    text = engine.ocr(image).page.text
    assert Levenshtein.distance(squash(text), reference) / len(reference) < 0.03
    first_line = (EXAMPLES / f"{name}.gt.txt").read_text(encoding="utf-8").splitlines()[0]
    assert text.splitlines()[0] == first_line


def test_no_spaces_are_added_around_chinese_punctuation(engine: Engine) -> None:
    image = cv2.imread(str(EXAMPLES / "notice-zh.jpg"), cv2.IMREAD_COLOR)
    text = engine.ocr(image).page.text
    for mark in "，、：。":
        assert f"{mark} " not in text and f" {mark}" not in text, mark
