"""Input quality warnings (issue 17, item 6): real dev receipts, degraded, through the real engine.

A page whose text is too small, too faint or too blurred for reliable OCR gets a warning in
``pages[].warnings`` naming the measured value and the threshold, and its measures in
``pages[].quality``; the log says it with the file name; the page is never failed for it. The
thresholds are the ``quality`` settings, whose defaults ``benchmarks/bench_quality.py`` measured
(``benchmarks/figures.json``, quoted by docs/engine.md: tests/test_docs_figures.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import structlog

from ocr_pipeline.documents import DecodeLimits
from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.quality import EMPTY, PageQuality, measure_page, quality_warnings
from ocr_pipeline.jobs import ocr_file
from ocr_pipeline.results import DocumentResult
from ocr_pipeline.settings import QualitySettings, load_settings
from tests.conftest import REPO, dev_image
from tests.receipts import daemon_settings, run_serial

RECEIPT = 0
"""Dev receipt 000: a clean scan (text about 22 px high, contrast about 136 grey levels)."""
THRESHOLDS = QualitySettings()


@pytest.fixture(scope="module")
def receipt() -> np.ndarray:
    """The top half of the dev receipt, ``(H, W, 3)`` uint8 BGR (half the lines: faster)."""
    image = dev_image(RECEIPT)
    return np.ascontiguousarray(image[: image.shape[0] // 2])


@pytest.fixture(scope="module")
def clean(
    engine: Engine, receipt: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> DocumentResult:
    """The undegraded receipt half, read from a PNG file."""
    return _read(engine, _png(tmp_path_factory.mktemp("clean") / "receipt.png", receipt))


@pytest.fixture(scope="module")
def base(clean: DocumentResult) -> PageQuality:
    """The undegraded receipt half's measures."""
    return _measured(clean)


def _png(path: Path, image: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _read(engine: Engine, path: Path, quality: QualitySettings = THRESHOLDS) -> DocumentResult:
    result = ocr_file(path, engine, DecodeLimits(), path.name, quality=quality)
    assert result.outcome == "done"  # a warning never fails a page
    assert [page.error for page in result.pages] == [None]
    return result


def _measured(result: DocumentResult) -> PageQuality:
    record = result.pages[0].quality
    assert record is not None
    return PageQuality(**record.model_dump())


def test_defaults_are_the_measured_thresholds() -> None:
    figures = json.loads((REPO / "benchmarks" / "figures.json").read_text(encoding="utf-8"))
    measured = figures["quality"]
    assert THRESHOLDS.enabled
    assert THRESHOLDS.min_text_height_px == measured["min_text_height_px"]
    assert THRESHOLDS.min_contrast == measured["min_contrast"]
    assert THRESHOLDS.min_sharpness == measured["min_sharpness"]


def test_a_clean_receipt_gets_no_warning(clean: DocumentResult, base: PageQuality) -> None:
    assert clean.pages[0].warnings == []
    assert base.text_height_px is not None and base.contrast is not None
    assert base.sharpness is not None and base.resolution_dpi is not None
    assert base.text_height_px >= 1.3 * THRESHOLDS.min_text_height_px
    assert base.contrast >= 2 * THRESHOLDS.min_contrast
    assert base.sharpness >= 2 * THRESHOLDS.min_sharpness
    assert clean.timings_ms["quality"] < 1000.0  # measured on the boxes: milliseconds


def test_small_text_warns_with_its_height_and_the_threshold(
    engine: Engine, receipt: np.ndarray, base: PageQuality, tmp_path: Path
) -> None:
    assert base.text_height_px is not None
    scale = 0.75 * THRESHOLDS.min_text_height_px / base.text_height_px
    small = cv2.resize(receipt, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    result = _read(engine, _png(tmp_path / "small.png", small))
    quality = _measured(result)
    [warning] = result.pages[0].warnings
    assert quality.text_height_px is not None
    assert quality.text_height_px < THRESHOLDS.min_text_height_px
    assert warning.startswith(
        f"text height {quality.text_height_px:.1f} px is below "
        f"{THRESHOLDS.min_text_height_px:g} px (quality.min_text_height_px"
    ), warning
    assert "scan at a higher resolution" in warning
    assert result.pages[0].text  # still read


def test_blurred_text_warns_with_its_sharpness(
    engine: Engine, receipt: np.ndarray, base: PageQuality, tmp_path: Path
) -> None:
    assert base.text_height_px is not None
    # 0.09 text heights: between 0.085 and 0.1, where the receipts read at 2.7 and 7.3 times
    # the sharp CER (benchmarks/bench_quality.py).
    sigma = 0.09 * base.text_height_px
    blurred = cv2.GaussianBlur(receipt, (0, 0), sigmaX=sigma)
    result = _read(engine, _png(tmp_path / "blurred.png", blurred))
    quality = _measured(result)
    assert quality.sharpness is not None and quality.sharpness < THRESHOLDS.min_sharpness
    warnings = result.pages[0].warnings
    sharpness = [w for w in warnings if w.startswith("sharpness ")]
    assert len(sharpness) == 1, warnings
    assert sharpness[0].startswith(
        f"sharpness {quality.sharpness:.1f} is below {THRESHOLDS.min_sharpness:g} "
        "(quality.min_sharpness"
    ), warnings
    assert "in focus" in sharpness[0]
    assert not any(w.startswith("text height") for w in warnings), warnings


def test_faint_text_warns_with_its_contrast(
    engine: Engine, receipt: np.ndarray, base: PageQuality, tmp_path: Path
) -> None:
    assert base.contrast is not None
    keep = 0.7 * THRESHOLDS.min_contrast / base.contrast
    paper = np.median(receipt.reshape(-1, 3), axis=0)
    faint = np.clip(np.rint(paper + keep * (receipt.astype(np.float32) - paper)), 0, 255)
    result = _read(engine, _png(tmp_path / "faint.png", faint.astype(np.uint8)))
    quality = _measured(result)
    assert quality.contrast is not None and quality.contrast < THRESHOLDS.min_contrast
    [warning] = result.pages[0].warnings
    assert warning.startswith(
        f"contrast {quality.contrast:.1f} grey levels is below {THRESHOLDS.min_contrast:g} "
        "(quality.min_contrast)"
    ), warning


def test_a_blank_page_gets_no_warning(engine: Engine, tmp_path: Path) -> None:
    blank = np.full((1100, 850, 3), 255, dtype=np.uint8)
    result = _read(engine, _png(tmp_path / "blank.png", blank))
    assert result.pages[0].lines == [] and result.pages[0].warnings == []
    assert _measured(result) == EMPTY
    assert quality_warnings(EMPTY, THRESHOLDS) == []


def test_disabled_gives_no_warning_and_no_measures(
    engine: Engine, receipt: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCR_PIPELINE_QUALITY__ENABLED", "false")
    off = load_settings().quality
    assert not off.enabled
    small = cv2.resize(receipt, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    result = _read(engine, _png(tmp_path / "small.png", small), off)
    assert result.pages[0].warnings == [] and result.pages[0].quality is None
    assert "quality" not in result.timings_ms or result.timings_ms["quality"] == 0.0


def test_the_daemon_logs_each_warning_with_the_file(receipt: np.ndarray, tmp_path: Path) -> None:
    settings = daemon_settings(tmp_path)
    settings.inbox.mkdir()
    small = cv2.resize(receipt, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    _png(settings.inbox / "small.png", small)
    with structlog.testing.capture_logs() as logs:
        summary, _ = run_serial(settings)
    assert summary.done == ["small.png"]
    warned = [entry for entry in logs if entry["event"] == "page warning"]
    assert [(e["file"], e["page"], e["log_level"]) for e in warned] == [
        ("small.png", 1, "warning")
    ], warned
    assert warned[0]["warning"].startswith("text height ")
    record = json.loads((settings.outbox / "small.json").read_text(encoding="utf-8"))
    assert record["outcome"] == "done"
    assert record["pages"][0]["warnings"] == [warned[0]["warning"]]


def test_measures_follow_the_degradations() -> None:
    # Pure numpy: a synthetic line of dark bars on paper, its box known.
    page = np.full((120, 400, 3), 235, dtype=np.uint8)
    for x in range(20, 380, 30):
        page[40:80, x : x + 14] = 30
    box = np.array([[[10, 35], [390, 35], [390, 85], [10, 85]]], dtype=np.float64)
    sharp = measure_page(page, box)
    assert sharp.text_height_px == 50.0 and sharp.contrast == 205.0
    assert sharp.resolution_dpi == 313.0  # a 50 px box is 10 pt text at 313 dpi (1.15 pt/pt)
    blurred = measure_page(cv2.GaussianBlur(page, (0, 0), sigmaX=3.0), box)
    assert sharp.sharpness is not None and blurred.sharpness is not None
    assert 50 / 3.0 * 0.7 <= blurred.sharpness <= 50 / 3.0 * 1.3 < sharp.sharpness
    faint = (235 - (235 - page.astype(np.int16)) // 4).astype(np.uint8)
    assert measure_page(faint, box).contrast == pytest.approx(205 / 4, abs=1)
    assert measure_page(faint, box).sharpness == pytest.approx(sharp.sharpness, rel=0.1)
    assert measure_page(page, np.zeros((0, 4, 2))) == EMPTY
