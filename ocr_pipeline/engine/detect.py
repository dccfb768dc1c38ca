"""DBNet text detection: the model call and its post-processing.

Post-processing follows "Real-time Scene Text Detection with Differentiable Binarization"
(Liao et al., AAAI 2020) as used by PaddleOCR's ``DBPostProcess``: binarise the probability map,
take each connected region's minimum-area rectangle, score it by the mean probability inside, and
"unclip" it (grow the shrunk text kernel back) by the offset ``D = A * r / L`` (area, unclip ratio,
perimeter) with pyclipper.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper

from ocr_pipeline.engine.backend import InferenceBackend
from ocr_pipeline.engine.geometry import order_quad
from ocr_pipeline.engine.preprocess import detector_input, detector_size, multiple_of_32
from ocr_pipeline.settings import DetectSettings


@dataclass(frozen=True)
class Detections:
    """Text boxes found on one page."""

    quads: np.ndarray
    """``(N, 4, 2)`` float32 corners clockwise from top-left, in the input page's pixels."""
    scores: np.ndarray
    """``(N,)`` float32 mean probability inside each box, 0..1."""


def box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean of ``prob`` ``(H, W)`` float32 inside the polygon ``quad`` ``(4, 2)`` (map pixels)."""
    height, width = prob.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x0, y0], dtype=np.float32)).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def unclip(quad: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow a polygon ``(K, 2)`` by DBNet's offset ``area * ratio / perimeter``.

    Returns:
        The grown polygon ``(M, 2)`` float32, or ``None`` if the offset produced nothing.

    """
    area = abs(cv2.contourArea(quad.astype(np.float32)))
    perimeter = cv2.arcLength(quad.astype(np.float32), True)
    if perimeter <= 0:
        return None
    distance = area * ratio / perimeter
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(
        quad.round().astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON
    )
    grown = offset.Execute(distance)
    if not grown:
        return None
    return np.asarray(max(grown, key=len), dtype=np.float32)


def min_area_quad(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``(K, 2)`` points: ordered quad ``(4, 2)`` and its shorter side."""
    rect = cv2.minAreaRect(points.reshape(-1, 1, 2).astype(np.float32))
    return order_quad(cv2.boxPoints(rect)), float(min(rect[1]))


def boxes_from_probability(
    prob: np.ndarray, page_height: int, page_width: int, settings: DetectSettings
) -> Detections:
    """DBNet post-processing of one probability map.

    Args:
        prob: ``(h, w)`` float32 text probability, 0..1, at detector resolution.
        page_height: height of the page the boxes are mapped back to, pixels.
        page_width: width of that page, pixels.
        settings: thresholds, unclip ratio, minimum size.

    Returns:
        The boxes in page pixels, in the order the contours were found.

    """
    map_h, map_w = prob.shape
    bitmap: np.ndarray = (prob > settings.thresh).astype(np.uint8)
    if settings.dilate:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scale = np.array([page_width / map_w, page_height / map_h], dtype=np.float32)
    quads: list[np.ndarray] = []
    scores: list[float] = []
    for contour in contours[: settings.max_candidates]:
        quad, short_side = min_area_quad(contour.reshape(-1, 2))
        if short_side < settings.min_size:
            continue
        score = box_score(prob, quad)
        if score < settings.box_thresh:
            continue
        grown = unclip(quad, settings.unclip_ratio)
        if grown is None:
            continue
        quad, short_side = min_area_quad(grown)
        if short_side < settings.min_size + 2:
            continue
        page_quad = quad * scale
        page_quad[:, 0] = np.clip(page_quad[:, 0], 0, page_width - 1)
        page_quad[:, 1] = np.clip(page_quad[:, 1], 0, page_height - 1)
        quads.append(page_quad)
        scores.append(score)
    if not quads:
        return Detections(np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32))
    return Detections(np.stack(quads).astype(np.float32), np.asarray(scores, dtype=np.float32))


class TextDetector:
    """DBNet detector: the model plus :func:`boxes_from_probability`.

    Args:
        model: a loaded DBNet model (input ``(1, 3, h, w)``, output ``(1, 1, h, w)``).
        settings: resize limits and post-processing parameters.

    """

    def __init__(self, model: InferenceBackend, settings: DetectSettings) -> None:
        self.model = model
        self.settings = settings

    def detect(self, image: np.ndarray) -> Detections:
        """Find text boxes on a page ``(H, W, 3)`` uint8 BGR; boxes in that page's pixels.

        With ``settings.region_side``, a coarse pass first finds the text region
        (:meth:`text_region`); the full-resolution pass then reads only that part of the page,
        at the scale the whole page would get. DBNet is fully convolutional, so the boxes are
        those of the whole page while the work shrinks with the blank margins (scanner beds
        around a receipt).
        """
        height, width = image.shape[:2]
        full_h, full_w = detector_size(height, width, self.settings)
        region = None
        if self.settings.region_side and max(full_h, full_w) > 1.5 * self.settings.region_side:
            region = self.text_region(image)
        if region is None:
            prob = self.probability(image, (full_h, full_w))
            return boxes_from_probability(prob, height, width, self.settings)
        x0, y0, x1, y1 = region
        part = image[y0:y1, x0:x1]
        size = (
            multiple_of_32(part.shape[0] * full_h / height),
            multiple_of_32(part.shape[1] * full_w / width),
        )
        prob = self.probability(part, size)
        found = boxes_from_probability(prob, part.shape[0], part.shape[1], self.settings)
        found.quads[..., 0] += x0
        found.quads[..., 1] += y0
        return found

    def text_region(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """Bounding box ``(x0, y0, x1, y1)`` in page pixels of where text may be, or None.

        The page is run through the detector at ``settings.region_side`` pixels on its longer
        side; pixels whose probability exceeds ``settings.region_thresh`` are text, and their
        bounding box grows by ``settings.region_margin`` of the page's longer side on each side.
        None when nothing is found (small text may be invisible at that size) or the box covers
        more than ``settings.region_max_area`` of the page: the caller reads the whole page.
        """
        height, width = image.shape[:2]
        ratio = self.settings.region_side / max(height, width)
        size = (multiple_of_32(height * ratio), multiple_of_32(width * ratio))
        prob = self.probability(image, size)
        ys, xs = np.nonzero(prob > self.settings.region_thresh)
        if xs.size == 0:
            return None
        scale_x, scale_y = width / prob.shape[1], height / prob.shape[0]
        margin = self.settings.region_margin * max(height, width)
        x0 = max(0, int((xs.min() * scale_x) - margin))
        y0 = max(0, int((ys.min() * scale_y) - margin))
        x1 = min(width, int(((xs.max() + 1) * scale_x) + margin))
        y1 = min(height, int(((ys.max() + 1) * scale_y) + margin))
        if (x1 - x0) * (y1 - y0) > self.settings.region_max_area * height * width:
            return None
        return x0, y0, x1, y1

    def probability(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The DBNet text probability map of a page resized to ``size``.

        Args:
            image: ``(H, W, 3)`` uint8 BGR page (or part of one).
            size: ``(h, w)`` detector input size in pixels, multiples of 32.

        Returns:
            ``(h, w)`` float32 probability per input pixel, 0..1.

        """
        prob: np.ndarray = self.model.run(detector_input(image, self.settings, size))[0, 0]
        return prob
