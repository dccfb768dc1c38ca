"""Accuracy on the 50 SROIE dev receipts with the default settings (deterministic, so asserted).

Metrics as in ../shared/data/sroie-dev/README.md: case-folded corpus CER on whitespace-free text
in reading order, and order-free word F1. RapidOCR 3.10 with the same PP-OCRv6 small models
reaches CER 0.135 and word F1 0.847 on these receipts; the defaults measure CER 0.1204 and word
F1 0.8684 (docs/models.md). The bounds leave a little room for ONNX Runtime's thread-count
dependent rounding. The issue's target (CER <= 0.12 and F1 >= 0.87) is not reached yet.
"""

from __future__ import annotations

import cv2

from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import Score, load_ground_truth
from tests.conftest import SROIE_DEV

MAX_CER = 0.122
MIN_WORD_F1 = 0.866


def test_dev_receipts_beat_rapidocr(engine: Engine) -> None:
    score = Score()
    for page in load_ground_truth(SROIE_DEV):
        image = cv2.imread(str(page.image), cv2.IMREAD_COLOR)
        score.add(engine.ocr(image).page.text, page.text)
    assert score.pages == 50
    print(f"sroie-dev: CER {score.cer:.4f}, word F1 {score.word_f1:.4f}")
    assert score.cer <= MAX_CER
    assert score.word_f1 >= MIN_WORD_F1
