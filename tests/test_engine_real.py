"""Each engine stage on real scanned receipts, checked against the ground truth."""

from __future__ import annotations

import cv2
import numpy as np
from rapidfuzz.distance import Levenshtein

from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.detect import Detections
from ocr_pipeline.engine.pipeline import STAGES
from ocr_pipeline.engine.preprocess import estimate_skew, prepare_page, rotate_keep_all
from ocr_pipeline.evaluation import squash
from ocr_pipeline.settings import PreprocessSettings, load_settings
from tests.conftest import dev_image


def _gt_crops(record: dict[str, object], image: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    crops, texts = [], []
    for line in record["lines"]:  # type: ignore[attr-defined]
        box = np.array(line["box"], dtype=np.int32)
        x0, y0 = box.min(axis=0)
        x1, y1 = box.max(axis=0)
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        crops.append(image[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2])
        texts.append(str(line["text"]))
    return crops, texts


def _centres_found(found: Detections, record: dict[str, object]) -> float:
    """Fraction of the record's ground-truth lines whose box centre lies inside a found box."""
    lines: list[dict[str, list[list[float]]]] = record["lines"]  # type: ignore[assignment]
    centres_found = 0
    for line in lines:
        centre = np.array(line["box"], dtype=np.float32).mean(axis=0)
        inside = [
            cv2.pointPolygonTest(
                quad.reshape(-1, 1, 2), (float(centre[0]), float(centre[1])), False
            )
            >= 0
            for quad in found.quads
        ]
        centres_found += any(inside)
    return centres_found / len(lines)


def test_detector_finds_the_ground_truth_lines(
    engine: Engine, sroie_gt: list[dict[str, object]]
) -> None:
    assert _centres_found(engine.detector.detect(dev_image(0)), sroie_gt[0]) >= 0.9


def test_recognizer_reads_ground_truth_crops(
    engine: Engine, sroie_gt: list[dict[str, object]]
) -> None:
    image = dev_image(1)
    crops, texts = _gt_crops(sroie_gt[1], image)
    readings = engine.recognizer.recognize(crops)
    assert len(readings) == len(crops)
    edits = sum(
        Levenshtein.distance(squash(r.text), squash(t))
        for r, t in zip(readings, texts, strict=True)
    )
    cer = edits / sum(len(squash(t)) for t in texts)
    # The remaining edits are runs of leader dots and the annotators' typos ("FLEASE COME AOSIN").
    assert cer < 0.12
    assert all(0.0 <= c <= 1.0 for r in readings for c in r.char_confidences)


def test_classifier_turns_upside_down_lines_only(sroie_gt: list[dict[str, object]]) -> None:
    # The line classifier is off by default (it flips more right lines than wrong ones on the
    # dev receipts); switched on, it must turn upside-down lines and leave upright ones.
    engine = Engine.from_settings(load_settings(classify={"enabled": True}))
    assert engine.classifier is not None
    crops, _ = _gt_crops(sroie_gt[0], dev_image(0))
    wide = [c for c in crops if c.shape[1] > 4 * c.shape[0]][:8]
    upside_down = [cv2.rotate(c, cv2.ROTATE_180) for c in wide]
    _, turned_upright = engine.classifier.upright(wide)
    _, turned_flipped = engine.classifier.upright(upside_down)
    assert sum(turned_upright) <= 1
    assert sum(turned_flipped) >= len(wide) - 1


def test_deskew_measures_and_removes_a_small_rotation() -> None:
    image = dev_image(0)
    baseline = estimate_skew(image, max_degrees=5.0)
    for degrees in (3.0, -3.0):
        tilted, _ = rotate_keep_all(image, degrees)
        prepared = prepare_page(tilted, PreprocessSettings(deskew=True))
        assert abs(prepared.skew_degrees - baseline - degrees) < 0.5
        assert abs(estimate_skew(prepared.image, 5.0) - baseline) < 0.5


def test_contrast_and_denoise_keep_page_geometry() -> None:
    image = dev_image(5)
    prepared = prepare_page(image, PreprocessSettings(grayscale=True, clahe=True, denoise=True))
    assert prepared.image.shape == image.shape and prepared.image.dtype == np.uint8
    assert np.allclose(prepared.affine, [[1, 0, 0], [0, 1, 0]])


def test_engine_reads_a_receipt_in_order(engine: Engine, sroie_gt: list[dict[str, object]]) -> None:
    result = engine.ocr(dev_image(0))
    reference = squash(str(sroie_gt[0]["text"]))
    cer = Levenshtein.distance(squash(result.page.text), reference) / len(reference)
    assert cer < 0.12
    assert "TOTAL" in result.page.text.upper()
    for line in result.page.lines:
        xs = [p[0] for p in line.box]
        ys = [p[1] for p in line.box]
        assert min(xs) >= 0 and max(xs) < result.page.width
        assert min(ys) >= 0 and max(ys) < result.page.height
        assert len(line.char_confidences) == len(line.raw_text)
    assert set(result.timings_ms) == set(STAGES)
    # Every stage is pre-filled with 0.0: a model stage that really ran took at least a
    # millisecond (an empty timed block takes microseconds).
    for stage in ("detect", "recognize"):
        assert result.timings_ms[stage] >= 1.0, (stage, result.timings_ms)
    if engine.classifier is not None:
        assert result.timings_ms["classify"] >= 1.0, result.timings_ms
    assert result.timings_ms["crop"] > 0 and result.timings_ms["layout"] > 0


def test_boxes_are_in_delivered_page_pixels_after_deskew(engine: Engine) -> None:
    from ocr_pipeline.engine.pipeline import Engine as EngineClass

    tilted, _ = rotate_keep_all(dev_image(0), 2.0)
    deskewing = EngineClass(
        engine.detector,
        engine.recognizer,
        engine.classifier,
        PreprocessSettings(deskew=True),
        engine.recognize_settings,
        engine.layout,
        engine.models,
    )
    result = deskewing.ocr(tilted)
    assert abs(result.page.skew - 2.0) < 0.7
    assert (result.page.width, result.page.height) == (tilted.shape[1], tilted.shape[0])
    total = next(line for line in result.page.lines if "TOTAL" in line.text.upper())
    ys = [p[1] for p in total.box]
    # The box corners follow the tilted text: the right end sits higher than the left.
    assert ys[1] < ys[0]


def test_recognizer_keeps_the_visible_space_before_a_colon(
    engine: Engine, sroie_gt: list[dict[str, object]]
) -> None:
    crops, texts = _gt_crops(sroie_gt[0], dev_image(0))
    index = texts.index("DOCUMENT NO : TD01167104")
    [reading] = engine.recognizer.recognize([crops[index]])
    assert reading.text.casefold() == "document no : td01167104"
    assert len(reading.char_confidences) == len(reading.text)


def test_rows_survive_a_skewed_page(sroie_gt: list[dict[str, object]]) -> None:
    from ocr_pipeline.engine.layout import group_rows

    for record in sroie_gt[:10]:
        quads = np.array([line["box"] for line in record["lines"]], dtype=np.float32)  # type: ignore[attr-defined]
        upright = group_rows(quads, 0.5)
        for degrees in (-4.0, 4.0):
            turn = cv2.getRotationMatrix2D((0.0, 0.0), degrees, 1.0)
            tilted = quads @ turn[:, :2].T.astype(np.float32)
            assert group_rows(tilted, 0.5) == upright, (record["image"], degrees)


def test_region_pass_reads_only_the_receipt_and_finds_the_same_lines(
    sroie_gt: list[dict[str, object]],
) -> None:
    # 047.jpg: a small receipt on a 1527 x 1080 scanner bed (text in about 5% of the page).
    whole = Engine.from_settings(load_settings(detect={"region_side": 0})).detector
    coarse = Engine.from_settings(load_settings(detect={"region_side": 512})).detector
    image = dev_image(47)
    region = coarse.text_region(image)
    assert region is not None
    x0, y0, x1, y1 = region
    assert (x1 - x0) * (y1 - y0) < 0.3 * image.shape[0] * image.shape[1]
    for line in sroie_gt[47]["lines"]:  # type: ignore[attr-defined]
        xs, ys = zip(*line["box"], strict=True)
        assert x0 <= min(xs) and max(xs) <= x1 and y0 <= min(ys) and max(ys) <= y1
    # The region pass finds the ground-truth lines as well as the whole-page pass does.
    found = [_centres_found(d.detect(image), sroie_gt[47]) for d in (whole, coarse)]
    assert found[1] >= found[0] >= 0.9
    # A page full of text is read whole: no region.
    assert coarse.text_region(dev_image(0)) is None
