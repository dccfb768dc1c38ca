from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import load_ground_truth
from ocr_pipeline.results import Page
from ocr_pipeline.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
"""The repository root (the tests run from a checkout; the package itself never needs it)."""
SHARED_DATA = REPO.parent / "shared" / "data"
SROIE_DEV = SHARED_DATA / "sroie-dev"
MODELS_DIR_ENV = "OCR_PIPELINE_MODELS__DIR"
# The checkout's own model store (scripts/test.sh fetches into it), unless the caller chose one;
# without this the tests would look in the per-user data folder, the installed default.
os.environ.setdefault(MODELS_DIR_ENV, str(REPO / "models"))


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The default settings (no configuration file; the environment as the test command sets it)."""
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
