"""Geometry the archival writers share: a line's words and boxes, axis-aligned bounds, angles.

Boxes are quads of page pixels, corners clockwise. A word's box starts at the text's top-left,
so the edge from its first corner to the second runs along the reading direction; so does a
horizontal line's, whatever the page's turn. A vertical line's box keeps the upright page's
corner order (its reading direction is corner 1 to corner 2).
"""

from __future__ import annotations

import math
import unicodedata

from ocr_pipeline.results import Line, Point, Word

Quad = tuple[Point, Point, Point, Point]


def char_weight(char: str) -> int:
    """Width of a character in half-width units: 2 for wide (CJK, full-width) characters, else 1.

    From Unicode's East Asian Width property (UAX #11): ``W`` and ``F`` are wide.
    """
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _lerp(a: Point, b: Point, t: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def sub_quad(quad: Quad, start: float, end: float) -> Quad:
    """The part of ``quad`` between fractions ``start`` and ``end`` (0..1) of its length.

    Cut across the reading direction: along the top edge (corner 0 to 1) and the bottom edge
    (corner 3 to 2) at the same fractions.
    """
    top_a, top_b = _lerp(quad[0], quad[1], start), _lerp(quad[0], quad[1], end)
    bottom_b, bottom_a = _lerp(quad[3], quad[2], end), _lerp(quad[3], quad[2], start)
    corners = (top_a, top_b, bottom_b, bottom_a)
    return tuple((round(x), round(y)) for x, y in corners)  # type: ignore[return-value]


def line_words(line: Line) -> list[Word]:
    """The words of ``line`` with their boxes.

    The recognizer's word boxes (``line.words``) when it gave them; otherwise the line's
    space-separated tokens, each given the part of the line box its characters take (wide
    characters counting twice, a space once), confidence the line's.
    """
    if line.words is not None:
        return list(line.words)
    text = line.text
    total = sum(char_weight(c) for c in text)
    if not text.strip() or total == 0:
        return []
    # A vertical line's box keeps the upright page's corner order (corner 0 to 1 runs across
    # the column); its reading direction runs down the right edge, corner 1 to 2. Turned so
    # that corner 0 to 1 is the reading direction, as for the recognizer's own word boxes.
    quad = line.box
    if line.vertical:
        quad = (quad[1], quad[2], quad[3], quad[0])
    words: list[Word] = []
    position = 0
    for token in text.split(" "):
        width = sum(char_weight(c) for c in token)
        if token:
            box = sub_quad(quad, position / total, (position + width) / total)
            words.append(Word(text=token, box=box, confidence=line.confidence))
        position += width + 1  # the space after it
    return words


def bounds(quad: Quad) -> tuple[int, int, int, int]:
    """Axis-aligned bounds ``(x0, y0, x1, y1)`` of a quad, pixels (``x1``, ``y1`` exclusive)."""
    xs = [x for x, _ in quad]
    ys = [y for _, y in quad]
    return min(xs), min(ys), max(xs), max(ys)


def reading_angle(quad: Quad) -> float:
    """Angle of the reading direction, degrees counter-clockwise from the page's +x axis.

    From the first corner to the second; image y grows downwards, so a line rising to the right
    has a positive angle. In ``(-180, 180]``.
    """
    (x0, y0), (x1, y1) = quad[0], quad[1]
    return math.degrees(math.atan2(y0 - y1, x1 - x0))


def line_height(quad: Quad) -> float:
    """Distance across the reading direction (corner 0 to corner 3), pixels."""
    (x0, y0), (x3, y3) = quad[0], quad[3]
    return math.hypot(x3 - x0, y3 - y0)


def line_length(quad: Quad) -> float:
    """Distance along the reading direction (corner 0 to corner 1), pixels."""
    (x0, y0), (x1, y1) = quad[0], quad[1]
    return math.hypot(x1 - x0, y1 - y0)
