"""Pure pre/post-processing functions, tested without ONNX Runtime."""

from __future__ import annotations

import numpy as np

from ocr_pipeline.engine.detect import boxes_from_probability
from ocr_pipeline.engine.geometry import (
    compose_affine,
    crop_quad,
    edge_lengths,
    identity_affine,
    invert_affine,
    order_quad,
    quad_size,
    transform_quads,
)
from ocr_pipeline.engine.layout import analyse_layout, group_rows
from ocr_pipeline.engine.preprocess import detector_size
from ocr_pipeline.engine.recognize import build_charset, ctc_greedy_decode
from ocr_pipeline.settings import DetectSettings


def _one_hot(indices: list[int], classes: int, prob: float = 0.9) -> np.ndarray:
    frames = np.full((len(indices), classes), (1 - prob) / (classes - 1), dtype=np.float32)
    frames[np.arange(len(indices)), indices] = prob
    return frames[np.newaxis]


def test_ctc_greedy_merges_repeats_and_drops_blanks() -> None:
    charset = build_charset(list("ab"), num_classes=4)  # blank, a, b, space
    assert charset == ["", "a", "b", " "]
    # a a blank a b b space b -> "aab b"
    probs = _one_hot([1, 1, 0, 1, 2, 2, 3, 2], 4)
    [result] = ctc_greedy_decode(probs, charset)
    assert result.text == "aab b"
    assert len(result.char_confidences) == len(result.text)
    assert abs(result.confidence - 0.9) < 1e-4


def test_build_charset_refuses_wrong_class_count() -> None:
    import pytest

    from ocr_pipeline.errors import ModelError

    with pytest.raises(ModelError, match="dictionary has 2 entries"):
        build_charset(list("ab"), num_classes=10)


def test_db_postprocess_finds_rectangles_and_scales_them() -> None:
    prob = np.zeros((64, 128), dtype=np.float32)
    prob[10:20, 10:90] = 0.95  # a text kernel 80x10 at detector resolution
    prob[40:50, 20:40] = 0.95
    settings = DetectSettings(box_thresh=0.6, unclip_ratio=1.5, dilate=False)
    found = boxes_from_probability(prob, page_height=128, page_width=256, settings=settings)
    assert found.quads.shape == (2, 4, 2)
    first = found.quads[np.argmin(found.quads[:, 0, 1])]
    # Unclipped box grows beyond the kernel and is scaled x2 to page pixels.
    assert first[0, 0] < 20 and first[1, 0] > 178
    assert first[0, 1] < 20 and first[2, 1] > 38
    assert np.all(found.scores > 0.9)


def test_db_postprocess_drops_weak_and_tiny_regions() -> None:
    prob = np.zeros((64, 64), dtype=np.float32)
    prob[10:20, 10:50] = 0.35  # above thresh, below box_thresh
    prob[40, 40] = 0.99  # one pixel
    found = boxes_from_probability(prob, 64, 64, DetectSettings(thresh=0.3, box_thresh=0.6))
    assert len(found.quads) == 0


def test_order_quad_is_clockwise_from_top_left() -> None:
    shuffled = np.array([[10, 50], [100, 10], [10, 10], [100, 50]], dtype=np.float32)
    assert order_quad(shuffled).tolist() == [[10, 10], [100, 10], [100, 50], [10, 50]]


def test_edge_lengths_go_clockwise_from_the_top() -> None:
    # A 40 x 10 rectangle leaning so its top edge runs 3 down per 4 across (length 50).
    quad = np.array([[0, 0], [40, 30], [34, 38], [-6, 8]], dtype=np.float32)
    assert np.allclose(edge_lengths(quad), [50, 10, 50, 10])
    assert edge_lengths(np.stack([quad, quad])).shape == (2, 4)
    assert quad_size(quad) == (50, 10)


def test_affines_compose_and_invert() -> None:
    quads = np.array([[[10, 20], [30, 20], [30, 25], [10, 25]]], dtype=np.float32)
    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    turn = np.array([[0.0, -1.0, 99.0], [1.0, 0.0, 0.0]])  # a quarter turn on a 100-high page
    both = compose_affine(shift, turn)
    assert np.allclose(
        transform_quads(quads, both), transform_quads(transform_quads(quads, shift), turn)
    )
    assert np.allclose(compose_affine(both, invert_affine(both)), identity_affine())
    assert np.array_equal(transform_quads(quads, identity_affine()), quads)


def test_crop_quad_turns_vertical_lines() -> None:
    page = np.zeros((200, 200, 3), dtype=np.uint8)
    quad = np.array([[50, 10], [70, 10], [70, 150], [50, 150]], dtype=np.float32)
    crop = crop_quad(page, quad)
    assert crop.shape[1] > crop.shape[0]


def test_detector_size_is_multiple_of_32_and_capped() -> None:
    small = DetectSettings(limit_type="min", limit_side=736, max_side=2000)
    h, w = detector_size(1000, 463, small)
    assert h % 32 == 0 and w % 32 == 0 and w >= 736 - 16
    h, w = detector_size(3508, 2481, small)
    assert max(h, w) <= 2000 + 16


def test_rows_keep_same_line_boxes_together_left_to_right() -> None:
    def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    quads = np.array(
        [
            box(300, 102, 380, 120),
            box(10, 100, 120, 121),
            box(10, 10, 200, 30),
            box(10, 140, 90, 160),
        ],
        dtype=np.float32,
    )
    rows = group_rows(quads, 0.5)
    assert rows == [[2], [1, 0], [3]]
    layout = analyse_layout(quads, "rows", 0.5)
    assert layout.text(["12.50", "TOTAL", "SHOP", "THANKS"]) == "SHOP\nTOTAL 12.50\nTHANKS"


def test_width_batches_bound_padding_and_size() -> None:
    from ocr_pipeline.engine.recognize import width_batches

    ratios = [20.0, 6.7, 6.7, 7.0, 30.0, 21.0, 6.8, 7.5]
    batches = width_batches(ratios, batch_size=3, growth=1.1)
    assert sorted(i for batch in batches for i in batch) == list(range(len(ratios)))
    for batch in batches:
        assert len(batch) <= 3
        widths = [ratios[i] for i in batch]
        assert widths == sorted(widths) and widths[-1] <= 1.1 * widths[0]
    assert batches[0] == [1, 2, 6]


def test_recognition_plan_pads_short_lines_to_min_width_only() -> None:
    from ocr_pipeline.engine.recognize import TextRecognizer
    from ocr_pipeline.settings import RecognizeSettings

    crops = [np.zeros((24, w, 3), np.uint8) for w in (30, 100, 400, 2000)]  # at height 48: x2
    defaults = RecognizeSettings()
    plan = TextRecognizer(None, [], 48, defaults).plan(crops)  # type: ignore[arg-type]
    assert sorted(plan) == [([0], 160), ([1], 200), ([2], 800), ([3], 3200)]  # min 160, max 3200
    batched = RecognizeSettings(batch_size=8, width_growth=1.3, min_width=320)
    plan = TextRecognizer(None, [], 48, batched).plan(crops)  # type: ignore[arg-type]
    assert plan == [([0, 1], 320), ([2], 800), ([3], 3200)]
