"""Word boxes: a line's words and CJK character runs, placed from its characters' positions.

A word is a maximal run of non-space characters, split further where the script changes
between East Asian wide characters (CJK ideographs, kana, hangul, full-width forms) and the
others: ``A4复印纸`` gives ``A4`` and ``复印纸``, so that a search for either finds it.

Each character has a quad (page pixels, corners clockwise from the text's top-left, the first
edge along the reading direction); a word's box runs from its first character's start edge to
its last character's end edge. The recognizer places characters along their line
(:attr:`~ocr_pipeline.engine.recognize.Recognized.char_spans`, :func:`char_quads`); the
corrector moves them through its changes (:func:`corrected_words`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from ocr_pipeline.results import Word


def is_wide(char: str) -> bool:
    """Whether a character is East Asian wide or full-width (UAX #11 ``W`` or ``F``)."""
    return unicodedata.east_asian_width(char) in ("W", "F")


def char_weight(char: str) -> int:
    """A character's width in half-width units: 2 when wide, else 1."""
    return 2 if is_wide(char) else 1


def word_ranges(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` character ranges of the words of ``text``, in order.

    Maximal runs of non-space characters, cut where wide and narrow characters meet.
    """
    ranges: list[tuple[int, int]] = []
    start = -1
    for i, char in enumerate(text):
        if char.isspace():
            if start >= 0:
                ranges.append((start, i))
                start = -1
        elif start < 0:
            start = i
        elif is_wide(char) != is_wide(text[i - 1]):
            ranges.append((start, i))
            start = i
    if start >= 0:
        ranges.append((start, len(text)))
    return ranges


def char_quads(quad: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Quads of characters at ``spans`` (fractions ``[start, end)``) along a line's quad.

    Args:
        quad: ``(4, 2)`` the line's corners in reading order: corner 0 to 1 along the text (its
            top edge), 3 to 2 along its bottom edge.
        spans: per character, fractions of the line's length.

    Returns:
        ``(n, 4, 2)`` float64 quads, corners in the same order, cut across the reading direction.
    """
    corners = np.asarray(quad, dtype=np.float64)
    if not len(spans):
        return np.zeros((0, 4, 2))
    fractions = np.asarray(spans, dtype=np.float64)
    start, end = fractions[:, :1], fractions[:, 1:]
    top, bottom = corners[1] - corners[0], corners[2] - corners[3]
    return np.stack(
        [
            corners[0] + start * top,
            corners[0] + end * top,
            corners[3] + end * bottom,
            corners[3] + start * bottom,
        ],
        axis=1,
    )


def _joined(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The quad from ``first``'s start edge to ``last``'s end edge."""
    return np.stack([first[0], last[1], last[2], first[3]])


def build_words(text: str, quads: np.ndarray, confidences: Sequence[float]) -> list[Word]:
    """The words of a line (:func:`word_ranges`) with their boxes and confidences.

    Args:
        text: the line's text.
        quads: ``(len(text), 4, 2)`` per character, in reading order (:func:`char_quads`).
        confidences: per character, 0..1; a word's is the mean of its characters'.

    Returns:
        The words in reading order.
    """
    corners = np.asarray(quads, dtype=np.float64).round().astype(np.int64).tolist()
    words = []
    for start, end in word_ranges(text):
        head, tail = corners[start], corners[end - 1]
        box = (head[0], tail[1], tail[2], head[3])
        confidence = round(sum(confidences[start:end]) / (end - start), 4)
        words.append(Word(text=text[start:end], box=tuple(map(tuple, box)), confidence=confidence))
    return words


def _split(quad: np.ndarray, weights: Sequence[int]) -> np.ndarray:
    """``quad`` cut along the reading direction into parts proportional to ``weights``."""
    total = sum(weights)
    if total <= 0:
        return np.repeat(quad[np.newaxis], len(weights), axis=0)
    edges = np.cumsum([0, *weights]) / total
    return char_quads(quad, list(pairwise(edges)))


def _point_quad(quad: np.ndarray, at_end: bool) -> np.ndarray:
    """A zero-width quad on ``quad``'s start edge (or its end edge)."""
    a, b = (quad[1], quad[2]) if at_end else (quad[0], quad[3])
    return np.stack([a, a, b, b])


def quads_from_words(text: str, words: Sequence[Word]) -> np.ndarray | None:
    """Per-character quads of ``text`` recovered from its words' boxes.

    Inside a word its box is shared in proportion to the characters' widths (a wide character
    counting twice); spaces take the gap between the words around them.

    Returns:
        ``(len(text), 4, 2)`` float64, or ``None`` when ``words`` are not the words of ``text``.
    """
    ranges = word_ranges(text)
    if not ranges or [text[a:b] for a, b in ranges] != [w.text for w in words]:
        return None
    quads = np.zeros((len(text), 4, 2))
    boxes = [np.asarray(w.box, dtype=np.float64) for w in words]
    for (start, end), box in zip(ranges, boxes, strict=True):
        quads[start:end] = _split(box, [char_weight(c) for c in text[start:end]])
    bounds = [(0, ranges[0][0])]
    bounds += [(a[1], b[0]) for a, b in pairwise(ranges)]
    bounds.append((ranges[-1][1], len(text)))
    for k, (start, end) in enumerate(bounds):
        if start == end:
            continue
        if k == 0:
            quads[start:end] = _point_quad(boxes[0], at_end=False)
        elif k == len(ranges):
            quads[start:end] = _point_quad(boxes[-1], at_end=True)
        else:
            gap = _joined(_point_quad(boxes[k - 1], True), _point_quad(boxes[k], False))
            quads[start:end] = _split(gap, [1] * (end - start))
    return quads


def corrected_words(
    raw_text: str,
    words: Sequence[Word],
    confidences: Sequence[float],
    changes: Sequence[tuple[int, int, str]],
) -> list[Word] | None:
    """The words of a corrected line, from the words of its raw text and the changes made.

    Each change replaces ``raw_text[start:end]`` by its new text, whose characters share the
    place of those they replace (in proportion to their widths) and the mean of their
    confidences. Words the changes do not touch keep their boxes.

    Args:
        raw_text: what the recognizer read.
        words: the words of ``raw_text`` (:func:`build_words`).
        confidences: per character of ``raw_text``, 0..1.
        changes: ``(start, end, new)`` per change, not overlapping.

    Returns:
        The words of the corrected text, or ``None`` when ``words`` do not fit ``raw_text``.
    """
    quads = quads_from_words(raw_text, words)
    if quads is None:
        return None
    conf = list(confidences[: len(raw_text)]) + [1.0] * (len(raw_text) - len(confidences))
    text: list[str] = []
    new_quads: list[np.ndarray] = []
    new_conf: list[float] = []
    cursor = 0
    for start, end, new in sorted(changes):
        text.append(raw_text[cursor:start])
        new_quads += list(quads[cursor:start])
        new_conf += conf[cursor:start]
        if start < end:
            place = _joined(quads[start], quads[end - 1])
            replaced = float(np.mean(conf[start:end]))
        elif start < len(raw_text):
            place, replaced = _point_quad(quads[start], at_end=False), conf[start]
        else:
            place, replaced = _point_quad(quads[-1], at_end=True), conf[-1]
        text.append(new)
        new_quads += list(_split(place, [char_weight(c) for c in new]))
        new_conf += [replaced] * len(new)
        cursor = end
    text.append(raw_text[cursor:])
    new_quads += list(quads[cursor:])
    new_conf += conf[cursor:]
    corrected = "".join(text)
    if not corrected:
        return []
    return build_words(corrected, np.stack(new_quads), new_conf)
