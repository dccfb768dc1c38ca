"""CTC text recognition: batched by width, greedy decoding with per-character confidences.

The recognizers are PaddleOCR's CRNN-style models (convolutional features, a sequence encoder, a
CTC head; Shi et al., "An End-to-End Trainable Neural Network for Image-based Sequence
Recognition", TPAMI 2017; Graves et al., "Connectionist Temporal Classification", ICML 2006).
Class 0 is the CTC blank, classes 1..N the dictionary, class N+1 the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocr_pipeline.engine.classify import normalize_line
from ocr_pipeline.engine.session import OnnxModel
from ocr_pipeline.errors import ModelError
from ocr_pipeline.settings import RecognizeSettings

BASE_WIDTH_RATIO = 320 / 48
"""Narrowest batch width / height (PaddleOCR's rec image shape 3x48x320)."""


@dataclass(frozen=True)
class Recognized:
    """The text read from one line crop."""

    text: str
    char_confidences: tuple[float, ...]
    """Per emitted character, the CTC frame probability, 0..1."""

    @property
    def confidence(self) -> float:
        """Mean character confidence, 0..1 (0.0 for an empty line)."""
        return float(np.mean(self.char_confidences)) if self.char_confidences else 0.0


def read_dictionary(path: Path) -> list[str]:
    """Read a one-character-per-line dictionary (UTF-8, LF or CRLF); line ends only are stripped."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def build_charset(dictionary: list[str], num_classes: int) -> list[str]:
    """CTC class labels: ``["", *dictionary, " "]`` (blank first, space last).

    Raises:
        ModelError: the dictionary does not fit the model's number of classes.

    """
    charset = ["", *dictionary]
    if num_classes == len(charset) + 1:
        charset.append(" ")
    if num_classes != len(charset):
        raise ModelError(
            f"dictionary has {len(dictionary)} entries but the model has {num_classes} classes; "
            "check the model's dictionary in models/models.toml"
        )
    return charset


def ctc_greedy_decode(probs: np.ndarray, charset: list[str]) -> list[Recognized]:
    """Best-path CTC decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        probs: ``(N, T, C)`` float32 class probabilities per frame (softmax output).
        charset: ``C`` labels, index 0 the blank.

    Returns:
        One :class:`Recognized` per batch row; a character's confidence is the probability of the
        first frame of its run.

    """
    best = probs.argmax(axis=2)
    best_prob = probs.max(axis=2)
    results: list[Recognized] = []
    for row, row_prob in zip(best, best_prob, strict=True):
        keep = row != 0
        keep[1:] &= row[1:] != row[:-1]
        indices = row[keep]
        results.append(
            Recognized(
                text="".join(charset[i] for i in indices),
                char_confidences=tuple(round(float(p), 4) for p in row_prob[keep]),
            )
        )
    return results


class TextRecognizer:
    """CTC recognizer over batches of line crops.

    Args:
        model: rec ONNX model, input ``(N, 3, height, W)`` float32 in [-1, 1] BGR, output
            ``(N, T, C)`` probabilities.
        charset: CTC labels from :func:`build_charset`.
        height: model input height, pixels (48 for PP-OCRv4..v6).
        settings: batch size, maximum width.

    """

    def __init__(
        self, model: OnnxModel, charset: list[str], height: int, settings: RecognizeSettings
    ) -> None:
        self.model = model
        self.charset = charset
        self.height = height
        self.settings = settings

    def recognize(self, crops: list[np.ndarray]) -> list[Recognized]:
        """Read each crop ``(h, w, 3)`` uint8 BGR; results in the input order.

        Crops are sorted by aspect ratio so each batch pads little, then padded to the widest
        in the batch (at least ``BASE_WIDTH_RATIO * height``, at most ``max_width``).
        """
        results: list[Recognized | None] = [None] * len(crops)
        ratios = [c.shape[1] / max(c.shape[0], 1) for c in crops]
        order = np.argsort(ratios, kind="stable")
        for start in range(0, len(order), self.settings.batch_size):
            chunk = order[start : start + self.settings.batch_size]
            widest = max(BASE_WIDTH_RATIO, max(ratios[i] for i in chunk))
            width = min(self.settings.max_width, int(np.ceil(self.height * widest)))
            batch = np.stack(
                [
                    normalize_line(crops[i], self.height, width, self.settings.max_width)
                    for i in chunk
                ]
            )
            probs = self.model.run(batch)
            for index, result in zip(chunk, ctc_greedy_decode(probs, self.charset), strict=True):
                results[int(index)] = result
        return [r for r in results if r is not None]
