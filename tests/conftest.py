from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import load_ground_truth
from ocr_pipeline.results import Page
from ocr_pipeline.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SROIE_DEV = SHARED_DATA / "sroie-dev"


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's default settings (config/ocr-pipeline.toml, no environment overrides)."""
    return load_settings()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Engine:
    """The default engine with real models (fetched by the test command before pytest)."""
    return Engine.from_settings(settings)


@pytest.fixture(scope="session")
def sroie_gt() -> list[dict[str, object]]:
    """The dev receipts' ground truth records, in file order."""
    lines = (SROIE_DEV / "gt.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def dev_image(number: int) -> np.ndarray:
    """Dev receipt ``NNN.jpg`` as ``(H, W, 3)`` uint8 BGR."""
    image = cv2.imread(str(SROIE_DEV / "images" / f"{number:03d}.jpg"), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture(scope="session")
def dev_pages(engine: Engine) -> list[tuple[str, Page]]:
    """(ground-truth text, OCR page record) of the 50 dev receipts with the default engine."""
    pages = []
    for record in load_ground_truth(SROIE_DEV):
        image = cv2.imread(str(record.image), cv2.IMREAD_COLOR)
        pages.append((record.text, engine.ocr(image).page))
    return pages
