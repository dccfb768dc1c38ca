"""CTC text recognition: batched by width, greedy decoding with per-character confidences.

The recognizers are PaddleOCR's CRNN-style models (convolutional features, a sequence encoder, a
CTC head; Shi et al., "An End-to-End Trainable Neural Network for Image-based Sequence
Recognition", TPAMI 2017; Graves et al., "Connectionist Temporal Classification", ICML 2006).
Class 0 is the CTC blank, classes 1..N the dictionary, class N+1 the space.
"""

from __future__ import annotations

import math
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, replace
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
    char_frame_ends: tuple[int, ...] = ()
    """Per emitted character, one past the index of its last CTC frame (its run's end)."""
    char_spans: tuple[tuple[float, float], ...] = ()
    """Per character, where it lies along the line crop as read: ``[start, end)`` fractions of
    the crop's width, 0..1, left to right (:func:`locate_characters`); empty when not known."""

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
        first frame of its run; its frames are that run's (``char_frames``, ``char_frame_ends``).

    """
    best = probs.argmax(axis=2)
    best_prob = probs.max(axis=2)
    results: list[Recognized] = []
    for row, row_prob in zip(best, best_prob, strict=True):
        keep = row != 0
        keep[1:] &= row[1:] != row[:-1]
        indices = row[keep]
        firsts = np.flatnonzero(keep)
        # Runs of equal classes: each kept frame starts one; its end is the next run's start.
        run_starts = np.concatenate([[0], np.flatnonzero(row[1:] != row[:-1]) + 1])
        run_ends = np.append(run_starts[1:], len(row))
        ends = run_ends[np.searchsorted(run_starts, firsts)]
        results.append(
            Recognized(
                text="".join(charset[i] for i in indices),
                char_confidences=tuple(round(float(p), 4) for p in row_prob[keep]),
                char_frames=tuple(int(t) for t in firsts),
                char_frame_ends=tuple(int(t) for t in ends),
            )
        )
    return results


def ink_columns(line_grey: np.ndarray) -> np.ndarray:
    """Which columns of a text-line image hold ink.

    Ink is Otsu-binarised dark pixels in the middle 70% of the height (so neighbouring lines'
    ascenders and descenders do not count).

    Args:
        line_grey: ``(h, w)`` uint8 grey line image, text dark on light.

    Returns:
        ``(w,)`` bool, True where a column holds ink.
    """
    height = line_grey.shape[0]
    band = line_grey[int(height * 0.15) : max(int(height * 0.85), 1)]
    _, ink = cv2.threshold(band, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    columns: np.ndarray = ink.sum(axis=0) > 0
    return columns


def blank_runs(
    line_grey: np.ndarray, min_width: float, ink: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Column ranges without ink in a text-line image (:func:`ink_columns`).

    Args:
        line_grey: ``(h, w)`` uint8 grey line image, text dark on light.
        min_width: shortest run reported, pixels.
        ink: its :func:`ink_columns` when already known.

    Returns:
        ``[start, end)`` column ranges, left to right.
    """
    if ink is None:
        ink = ink_columns(line_grey)
    empty = np.concatenate([[False], ~ink, [False]])
    edges = np.flatnonzero(np.diff(empty.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= min_width]


def insert_visible_spaces(
    reading: Recognized,
    line_grey: np.ndarray,
    stride: float,
    min_gap: float,
    ink: np.ndarray | None = None,
) -> Recognized:
    """Add the spaces the recognizer missed where the image shows a wide blank gap.

    PP-OCR recognizers often drop the space before punctuation ("No : 12" read as "No: 12").
    Between two consecutive non-space characters, neither of them East Asian wide (Chinese puts
    no spaces around its characters, and its full-width punctuation carries its own blank half),
    a space is inserted when a run of ink-free
    columns at least ``min_gap`` times the line height lies between their CTC frames. The
    inserted space's confidence is the mean of its neighbours'; its frames are those between
    theirs (none when they are adjacent).

    Args:
        reading: the decoded line, with ``char_frames`` (and ``char_frame_ends``).
        line_grey: ``(h, w)`` uint8 grey line image as fed to the model (before padding).
        stride: input pixels per CTC frame (padded input width / number of frames).
        min_gap: gap threshold, as a fraction of the line height.
        ink: the line's :func:`ink_columns` when already known.

    Returns:
        The reading with spaces added (the same object when none were).
    """
    if len(reading.text) < 2 or len(reading.char_frames) != len(reading.text):
        return reading
    runs = blank_runs(line_grey, min_gap * line_grey.shape[0], ink)
    if not runs:
        return reading
    centres = [(t + 0.5) * stride for t in reading.char_frames]
    ends_known = len(reading.char_frame_ends) == len(reading.text)
    text, confidences = [reading.text[0]], [reading.char_confidences[0]]
    frames = [reading.char_frames[0]]
    ends = list(reading.char_frame_ends[:1])
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
            if ends_known:
                frames.append(reading.char_frame_ends[k - 1])
                ends.append(reading.char_frames[k])
            else:
                frames.append(reading.char_frames[k])
        text.append(right)
        confidences.append(reading.char_confidences[k])
        frames.append(reading.char_frames[k])
        ends += reading.char_frame_ends[k : k + 1]
    if len(text) == len(reading.text):
        return reading
    return Recognized(
        "".join(text), tuple(confidences), tuple(frames), tuple(ends) if ends_known else ()
    )


def _gap(
    runs: list[tuple[int, int]], left: float, right: float, near: float
) -> tuple[float, float] | None:
    """The widest ink-free run between ``left`` and ``right`` (clipped to them), or ``None``.

    Of equally wide ones, the nearest to ``near``. ``runs``: ``[start, end)`` columns, in order.
    """
    best: tuple[float, float] | None = None
    best_key = (0.0, 0.0)
    for start in range(bisect_right([end for _, end in runs], left), len(runs)):
        a, b = max(runs[start][0], left), min(runs[start][1], right)
        if a >= right:
            break
        key = (b - a, -abs(a + b - 2 * near))
        if b > a and (best is None or key > best_key):
            best, best_key = (a, b), key
    return best


def locate_characters(reading: Recognized, ink: np.ndarray, stride: float) -> Recognized:
    """Place each character of a reading along its line: ``char_spans`` from its CTC frames.

    Frame ``t`` is centred on input column ``(t + 0.5) * stride`` (the frames cover the padded
    input uniformly). Spaces (a run of them) take the widest ink-free gap between the frames
    of the characters around them: the recognizer often emits a space a frame or two off its
    gap. Two neighbouring other characters are cut halfway between the last frame of the first
    and the first frame of the second, moved to the nearest ink-free column between those
    frames when there is one (the gap between glyphs); the line's ends are the crop's. Each
    character other than a space is then narrowed to the ink inside its part, so that a word's
    span runs from its first glyph's ink to its last one's.

    Args:
        reading: a decoded line with ``char_frames`` and ``char_frame_ends``.
        ink: ``(w,)`` bool, the ink columns of the line as fed to the model, before padding
            (:func:`ink_columns`); ``w`` is the crop's width at the model's height.
        stride: input pixels per CTC frame (padded input width / number of frames).

    Returns:
        The reading with ``char_spans`` (fractions of ``w``), or unchanged when its frames are
        not known.
    """
    text = reading.text
    count, width = len(text), len(ink)
    if (
        not count
        or width == 0
        or not (len(reading.char_frames) == len(reading.char_frame_ends) == count)
    ):
        return reading
    # Centres of each character's first and last frames; a space put in between two adjacent
    # frames has none: it sits on their border.
    low = [(f + 0.5) * stride if e > f else f * stride for f, e in _frames(reading)]
    high = [max(lo, (e - 0.5) * stride) for lo, (_, e) in zip(low, _frames(reading), strict=True)]
    # Per column, the nearest blank column at or before it and at or after it; ink likewise.
    columns = np.arange(width)
    blank_before = np.maximum.accumulate(np.where(ink, -1, columns)).tolist()
    blank_after = np.minimum.accumulate(np.where(ink, width, columns)[::-1])[::-1].tolist()
    ink_after = [*np.minimum.accumulate(np.where(ink, columns, width)[::-1])[::-1].tolist(), width]
    ink_before = [-1, *np.maximum.accumulate(np.where(ink, columns, -1)).tolist()]
    cuts: list[float | None] = [0.0, *([None] * (count - 1)), float(width)]
    runs: list[tuple[int, int]] | None = None
    k = 0
    while k < count:  # runs of spaces: cut at the edges of their gap
        if not text[k].isspace():
            k += 1
            continue
        after = k
        while after < count and text[after].isspace():
            after += 1
        if runs is None:
            edges = np.flatnonzero(np.diff(np.concatenate([[0], ~ink, [0]]).astype(np.int8)))
            runs = list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))
        left = high[k - 1] if k else 0.0
        right = low[after] if after < count else float(width)
        gap = _gap(runs, left, right, (low[k] + high[after - 1]) / 2)
        if gap is not None:
            step = (gap[1] - gap[0]) / (after - k)
            for j in range(max(k, 1), min(after, count - 1) + 1):
                cuts[j] = gap[0] + (j - k) * step
        k = after
    bounds = [0.0]
    for k in range(1, count + 1):
        cut = cuts[k]
        if cut is None:
            left, right = high[k - 1], low[k]
            cut = middle = (left + right) / 2
            # Blank columns are centred on ``j + 0.5``: the nearest on either side of ``middle``.
            at = min(max(math.floor(middle - 0.5), 0), width - 1)
            nearest = [
                c
                for c in (blank_before[at] + 0.5, blank_after[min(at + 1, width - 1)] + 0.5)
                if left < c < right and 0 < c < width
            ]
            if nearest:
                cut = min(nearest, key=lambda c: abs(c - middle))
        bounds.append(min(max(cut, bounds[-1]), width))
    spans = []
    for k, char in enumerate(text):
        start, stop = bounds[k], bounds[k + 1]
        if not char.isspace():  # narrowed to the ink in its part
            first = ink_after[int(start)]
            end = math.ceil(stop)
            if first < end:
                start, stop = max(start, first), min(stop, ink_before[end] + 1)
        spans.append((round(start / width, 5), round(stop / width, 5)))
    return replace(reading, char_spans=tuple(spans))


def _frames(reading: Recognized) -> zip[tuple[int, int]]:
    """Each character's first frame and one past its last."""
    return zip(reading.char_frames, reading.char_frame_ends, strict=True)


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
        """Run the recognizer on one batch and decode it (CTC greedy, visible spaces, positions).

        Args:
            batch: ``(n, 3, height, width)`` float32 from :func:`line_tensor`.
            resized: the ``n`` lines ``(height, w_i, 3)`` uint8 BGR the batch was made from,
                where blank gaps are looked for (``settings.space_gap``).

        Returns:
            ``n`` readings, in batch order.
        """
        probs = self.model.run(batch)
        stride = batch.shape[3] / probs.shape[1]
        readings = []
        for reading, line in zip(ctc_greedy_decode(probs, self.charset), resized, strict=True):
            grey = cv2.cvtColor(line, cv2.COLOR_BGR2GRAY)
            ink = ink_columns(grey)
            if self.settings.space_gap > 0:
                gap = self.settings.space_gap
                reading = insert_visible_spaces(reading, grey, stride, gap, ink)
            readings.append(locate_characters(reading, ink, stride))
        return readings
