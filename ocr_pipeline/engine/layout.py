"""Reading order: lines grouped into rows top to bottom, each row left to right.

This is the simple order for receipts and single-column pages (``layout = "rows"``). Column and
block analysis for multi-column pages builds on it in a later stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ELONGATED = 3.0
"""Width / height from which a box's own tilt is trusted as its text line's slope."""


@dataclass(frozen=True)
class LineGeometry:
    """Per-box measures used for row grouping: ``(N,)`` float64 arrays in page pixels.

    ``page_slope`` alone is one float for the whole page.
    """

    centre_x: np.ndarray
    centre_y: np.ndarray
    left: np.ndarray
    right: np.ndarray
    height: np.ndarray
    """Height across the line (the quad's side length), not the axis-aligned extent."""
    width: np.ndarray
    slope: np.ndarray
    """dy/dx of the top edge."""
    line_slope: np.ndarray
    """dy/dx of the text line through the box: its own ``slope`` when the box is elongated
    (at least ``ELONGATED`` times as wide as high), else ``page_slope``."""
    page_slope: float
    """Median ``slope`` of the boxes more than twice as wide as high (0.0 when none)."""

    @classmethod
    def of(cls, quads: np.ndarray) -> LineGeometry:
        """Measure ``(N, 4, 2)`` quads, corners clockwise from top-left."""
        q = quads.astype(np.float64)
        top = q[:, 1] - q[:, 0]
        side = q[:, 3] - q[:, 0]
        width = np.hypot(top[:, 0], top[:, 1])
        height = np.maximum(np.hypot(side[:, 0], side[:, 1]), 1.0)
        slope = np.where(
            np.abs(top[:, 0]) > 1e-6, top[:, 1] / np.maximum(np.abs(top[:, 0]), 1e-6), 0
        )
        wide = width > 2 * height
        page_slope = float(np.median(slope[wide])) if wide.any() else 0.0
        return cls(
            centre_x=q[:, :, 0].mean(axis=1),
            centre_y=q[:, :, 1].mean(axis=1),
            left=q[:, :, 0].min(axis=1),
            right=q[:, :, 0].max(axis=1),
            height=height,
            width=width,
            slope=slope,
            line_slope=np.where(width >= ELONGATED * height, slope, page_slope),
            page_slope=page_slope,
        )

    def offset(self, i: int, j: int) -> float:
        """Distance of box ``i``'s centre from box ``j``'s centre line, in smaller heights.

        The line's slope is the wider box's ``line_slope``: the tilt of a short box (a word, a
        price, a stamp) is mostly noise of a few pixels, and extrapolating it across the page
        splits rows or joins a box to the row below.
        """
        slope = self.line_slope[j] if self.width[j] >= self.width[i] else self.line_slope[i]
        predicted = self.centre_y[j] + slope * (self.centre_x[i] - self.centre_x[j])
        return float(abs(self.centre_y[i] - predicted) / min(self.height[i], self.height[j]))


def group_rows(quads: np.ndarray, min_overlap: float, lookback: int = 4) -> list[list[int]]:
    """Group boxes into visual rows and order them.

    Boxes are visited top to bottom by centre. A box joins one of the last ``lookback`` rows
    when its centre lies on the centre line of that row's horizontally nearest member, within
    ``1 - min_overlap`` of the smaller line height (for two lines of equal height, that is a
    vertical overlap of at least ``min_overlap``). The centre line follows the wider box's own
    slope when that box is elongated (a text line, at least ``ELONGATED`` times as wide as
    high), so skewed or curved photos of receipts keep their rows apart; for short boxes (a
    price, a label, a tilted stamp), whose tilt is noise, it follows the page's median slope.
    Among several fitting rows the closest wins. Rows are then ordered by their height on the
    page measured along the page's median text slope.

    Args:
        quads: ``(N, 4, 2)`` float32 boxes in page pixels, corners clockwise from top-left.
        min_overlap: required overlap as a share of the smaller height, 0..1.
        lookback: how many of the most recent rows a box may join.

    Returns:
        Rows top to bottom, each a list of box indices left to right.
    """
    if len(quads) == 0:
        return []
    geometry = LineGeometry.of(quads)
    limit = 1.0 - min_overlap
    rows: list[list[int]] = []
    for index in np.argsort(geometry.centre_y, kind="stable"):
        i = int(index)
        best_row, best_offset = -1, limit
        for r in range(max(0, len(rows) - lookback), len(rows)):
            nearest = min(rows[r], key=lambda j: _horizontal_gap(geometry, i, j))
            offset = geometry.offset(i, nearest)
            if offset <= best_offset:
                best_row, best_offset = r, offset
        if best_row >= 0:
            rows[best_row].append(i)
        else:
            rows.append([i])
    levels = geometry.centre_y - geometry.page_slope * geometry.centre_x
    rows.sort(key=lambda row: float(np.mean(levels[row])))
    return [sorted(row, key=lambda j: float(geometry.left[j])) for row in rows]


def _horizontal_gap(geometry: LineGeometry, i: int, j: int) -> float:
    """Pixels between the x ranges of boxes ``i`` and ``j`` (0 when they overlap)."""
    return float(
        max(0.0, geometry.left[i] - geometry.right[j], geometry.left[j] - geometry.right[i])
    )


def page_text(rows: list[list[int]], texts: list[str]) -> str:
    r"""Join line texts: boxes on one row by a space, rows by ``\n``."""
    return "\n".join(" ".join(texts[i] for i in row) for row in rows)
