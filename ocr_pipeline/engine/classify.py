"""Text-line orientation: 0 or 180 degrees, with PaddleOCR's mobile direction classifier."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ocr_pipeline.engine.backend import InferenceBackend
from ocr_pipeline.settings import ClassifySettings

CLS_SHAPE = (48, 192)
"""Classifier input ``(height, width)`` in pixels (PP-OCR ``ch_ppocr_mobile_v2.0_cls``)."""


def resize_line(crop: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Resize a line crop ``(h, w, 3)`` uint8 BGR to ``height`` keeping its aspect ratio.

    The result is at most ``max_width`` pixels wide (wider lines are squeezed).
    """
    h, w = crop.shape[:2]
    new_w = min(max_width, max(1, math.ceil(height * w / max(h, 1))))
    return cv2.resize(crop, (new_w, height), interpolation=cv2.INTER_LINEAR)


def line_tensor(resized: np.ndarray, width: int) -> np.ndarray:
    """Scale a resized line ``(height, w, 3)`` uint8 BGR to [-1, 1] and pad right with zeros.

    Returns:
        ``(3, height, width)`` float32, channels-first BGR (``w <= width``).
    """
    height, new_w = resized.shape[:2]
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :new_w] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return out


class LineOrientationClassifier:
    """Decides per line crop whether it is upside down and turns it.

    Args:
        model: the cls model, input ``(N, 3, 48, 192)``, output ``(N, 2)`` softmax over
            the labels ``("0", "180")``.
        settings: batch size and the score above which a line is turned.

    """

    def __init__(self, model: InferenceBackend, settings: ClassifySettings) -> None:
        self.model = model
        self.settings = settings

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        """Return ``(N,)`` float32 probabilities that each crop is upside down."""
        height, width = CLS_SHAPE
        flipped = np.zeros(len(crops), dtype=np.float32)
        for start in range(0, len(crops), self.settings.batch_size):
            chunk = crops[start : start + self.settings.batch_size]
            batch = np.stack([line_tensor(resize_line(c, height, width), width) for c in chunk])
            flipped[start : start + len(chunk)] = self.model.run(batch)[:, 1]
        return flipped

    def upright(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], list[bool]]:
        """Turn by 180 degrees the crops classified upside down above the threshold.

        Returns:
            The (possibly turned) crops and, per crop, whether it was turned.

        """
        if not crops:
            return [], []
        probs = self.predict(crops)
        turned = [bool(p >= self.settings.threshold) for p in probs]
        out = [
            cv2.rotate(c, cv2.ROTATE_180) if t else c for c, t in zip(crops, turned, strict=True)
        ]
        return out, turned
