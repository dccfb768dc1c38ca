"""CTC text recognition: batched by width, greedy decoding with per-character confidences.

The recognizers are PaddleOCR's CRNN-style models (convolutional features, a sequence encoder, a
CTC head; Shi et al., "An End-to-End Trainable Neural Network for Image-based Sequence
Recognition", TPAMI 2017; Graves et al., "Connectionist Temporal Classification", ICML 2006).
Class 0 is the CTC blank, classes 1..N the dictionary, class N+1 the space.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocr_pipeline.engine.backend import InferenceBackend
from ocr_pipeline.engine.classify import line_tensor, resize_line
from ocr_pipeline.errors import ModelError
from ocr_pipeline.settings import RecognizeSettings


@dataclass(frozen=True)
class Recognized:
    """The text read from one line crop."""

    text: str
    char_confidences: tuple[float, ...]
    """Per emitted character, the CTC frame probability, 0..1."""
    char_frames: tuple[int, ...] = ()
    """Per emitted character, the index of its first CTC frame (time step)."""

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
                char_frames=tuple(int(t) for t in np.flatnonzero(keep)),
            )
        )
    return results


def blank_runs(line_grey: np.ndarray, min_width: float) -> list[tuple[int, int]]:
    """Column ranges without ink in a text-line image.

    Ink is Otsu-binarised dark pixels in the middle 70% of the height (so neighbouring lines'
    ascenders and descenders do not count).

    Args:
        line_grey: ``(h, w)`` uint8 grey line image, text dark on light.
        min_width: shortest run reported, pixels.

    Returns:
        ``[start, end)`` column ranges, left to right.
    """
    height = line_grey.shape[0]
    band = line_grey[int(height * 0.15) : max(int(height * 0.85), 1)]
    _, ink = cv2.threshold(band, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    empty = np.concatenate([[False], ink.sum(axis=0) == 0, [False]])
    edges = np.flatnonzero(np.diff(empty.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= min_width]


def insert_visible_spaces(
    reading: Recognized, line_grey: np.ndarray, stride: float, min_gap: float
) -> Recognized:
    """Add the spaces the recognizer missed where the image shows a wide blank gap.

    PP-OCR recognizers often drop the space before punctuation ("No : 12" read as "No: 12").
    Between two consecutive non-space characters, neither of them East Asian wide (Chinese puts
    no spaces around its characters, and its full-width punctuation carries its own blank half),
    a space is inserted when a run of ink-free
    columns at least ``min_gap`` times the line height lies between their CTC frames. The
    inserted space's confidence is the mean of its neighbours'.

    Args:
        reading: the decoded line, with ``char_frames``.
        line_grey: ``(h, w)`` uint8 grey line image as fed to the model (before padding).
        stride: input pixels per CTC frame (padded input width / number of frames).
        min_gap: gap threshold, as a fraction of the line height.

    Returns:
        The reading with spaces added (the same object when none were).
    """
    if len(reading.text) < 2 or len(reading.char_frames) != len(reading.text):
        return reading
    runs = blank_runs(line_grey, min_gap * line_grey.shape[0])
    if not runs:
        return reading
    centres = [(t + 0.5) * stride for t in reading.char_frames]
    text, confidences = [reading.text[0]], [reading.char_confidences[0]]
    frames = [reading.char_frames[0]]
    for k in range(1, len(reading.text)):
        left, right = reading.text[k - 1], reading.text[k]
        if (
            left != " "
            and right != " "
            and not (_is_wide(left) or _is_wide(right))
            and any(centres[k - 1] < a and b < centres[k] + stride for a, b in runs)
        ):
            text.append(" ")
            pair = reading.char_confidences[k - 1 : k + 1]
            confidences.append(round(float(np.mean(pair)), 4))
            frames.append(reading.char_frames[k])
        text.append(right)
        confidences.append(reading.char_confidences[k])
        frames.append(reading.char_frames[k])
    if len(text) == len(reading.text):
        return reading
    return Recognized("".join(text), tuple(confidences), tuple(frames))


def width_batches(ratios: list[float], batch_size: int, growth: float) -> list[list[int]]:
    """Group line indices into recognition batches of similar width.

    Lines are taken in order of aspect ratio (width / height); a batch closes when it holds
    ``batch_size`` lines or the next line is more than ``growth`` times wider than its first, so
    no line is padded by more than that factor. Padding changes what PP-OCRv6's recognizer reads
    (measured in docs/models.md), and costs time.

    Args:
        ratios: padded aspect ratio per line (from :meth:`TextRecognizer.plan`).
        batch_size: most lines per batch.
        growth: widest / narrowest ratio allowed within a batch, >= 1.

    Returns:
        Batches of indices into ``ratios``, each in increasing width.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    for index in (int(i) for i in np.argsort(ratios, kind="stable")):
        if current and (len(current) >= batch_size or ratios[index] > growth * ratios[current[0]]):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _is_wide(char: str) -> bool:
    """Whether a character is East Asian wide or full-width (CJK ideographs, ``，``, ``、``)."""
    return unicodedata.east_asian_width(char) in ("W", "F")


class TextRecognizer:
    """CTC recognizer over batches of line crops.

    Args:
        model: rec model, input ``(N, 3, height, W)`` float32 in [-1, 1] BGR, output
            ``(N, T, C)`` probabilities.
        charset: CTC labels from :func:`build_charset`.
        height: model input height, pixels (48 for PP-OCRv4..v6).
        settings: batch size, maximum width.

    """

    def __init__(
        self, model: InferenceBackend, charset: list[str], height: int, settings: RecognizeSettings
    ) -> None:
        self.model = model
        self.charset = charset
        self.height = height
        self.settings = settings

    def plan(self, crops: list[np.ndarray]) -> list[tuple[list[int], int]]:
        """Group crops ``(h, w, 3)`` into batches and choose each batch's input width.

        A line's width at the model's height is padded to at least ``settings.min_width``;
        batches come from :func:`width_batches`; a batch's width is its widest line's, at most
        ``settings.max_width`` pixels (wider lines are squeezed).

        Returns:
            ``(indices into crops, input width in pixels)`` per batch.
        """
        base = self.settings.min_width / self.height
        ratios = [max(base, c.shape[1] / max(c.shape[0], 1)) for c in crops]
        plan = []
        for chunk in width_batches(ratios, self.settings.batch_size, self.settings.width_growth):
            width = min(self.settings.max_width, int(np.ceil(self.height * ratios[chunk[-1]])))
            plan.append((chunk, width))
        return plan

    def recognize(self, crops: list[np.ndarray]) -> list[Recognized]:
        """Read each crop ``(h, w, 3)`` uint8 BGR; results in the input order.

        Crops are batched and padded right as :meth:`plan` says, scaled to [-1, 1].
        """
        results: list[Recognized | None] = [None] * len(crops)
        for chunk, width in self.plan(crops):
            resized = [resize_line(crops[i], self.height, width) for i in chunk]
            batch = np.stack([line_tensor(line, width) for line in resized])
            for index, reading in zip(chunk, self.read_batch(batch, resized), strict=True):
                results[index] = reading
        return [r for r in results if r is not None]

    def read_batch(self, batch: np.ndarray, resized: list[np.ndarray]) -> list[Recognized]:
        """Run the recognizer on one batch and decode it (CTC greedy, then visible spaces).

        Args:
            batch: ``(n, 3, height, width)`` float32 from :func:`line_tensor`.
            resized: the ``n`` lines ``(height, w_i, 3)`` uint8 BGR the batch was made from,
                where blank gaps are looked for (``settings.space_gap``).

        Returns:
            ``n`` readings, in batch order.
        """
        probs = self.model.run(batch)
        stride = batch.shape[3] / probs.shape[1]
        readings = ctc_greedy_decode(probs, self.charset)
        if self.settings.space_gap > 0:
            readings = [
                insert_visible_spaces(
                    reading, cv2.cvtColor(line, cv2.COLOR_BGR2GRAY), stride, self.settings.space_gap
                )
                for reading, line in zip(readings, resized, strict=True)
            ]
        return readings
