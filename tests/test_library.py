"""The library entry point: ``ocr_pipeline.read(path)`` with no folders and no configuration."""

from __future__ import annotations

import ocr_pipeline
from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.settings import Settings
from tests.conftest import SROIE_DEV


def test_read_a_receipt_file_and_reuse_an_engine() -> None:
    first, second = load_ground_truth(SROIE_DEV)[:2]
    result = ocr_pipeline.read(first.image)
    score = Score()
    score.add(result.text, first.text)
    assert score.word_f1 > 0.8, result.text
    assert result.source.name == first.image.name and len(result.pages) == 1
    assert "crop" in result.timings_ms and result.models["recognizer"].name

    engine = Engine.from_settings(Settings())
    again = ocr_pipeline.read(str(second.image), engine=engine)
    reused = Score()
    reused.add(again.text, second.text)
    assert reused.word_f1 > 0.8, again.text
