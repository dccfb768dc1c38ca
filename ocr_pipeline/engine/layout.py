"""Reading order: lines grouped into rows top to bottom, each row left to right.

This is the simple order for receipts and single-column pages (``layout = "rows"``). Column and
block analysis for multi-column pages builds on it in a later stage.
"""

from __future__ import annotations

import numpy as np


def group_rows(quads: np.ndarray, min_overlap: float) -> list[list[int]]:
    """Group boxes into visual rows and order them.

    A box joins the row above it when their vertical extents overlap by at least ``min_overlap``
    times the smaller of the two heights (the row's extent is the mean of its members'); boxes
    are visited by their vertical centre, so rows come out top to bottom.

    Args:
        quads: ``(N, 4, 2)`` float32 boxes in page pixels.
        min_overlap: share of the smaller height that must overlap, 0..1.

    Returns:
        Rows top to bottom, each a list of box indices left to right.

    """
    if len(quads) == 0:
        return []
    tops = quads[:, :, 1].min(axis=1)
    bottoms = quads[:, :, 1].max(axis=1)
    lefts = quads[:, :, 0].min(axis=1)
    centres = (tops + bottoms) / 2
    rows: list[list[int]] = []
    row_top = row_bottom = 0.0
    for index in np.argsort(centres, kind="stable"):
        i = int(index)
        height = bottoms[i] - tops[i]
        if rows:
            overlap = min(bottoms[i], row_bottom) - max(tops[i], row_top)
            if overlap >= min_overlap * min(height, row_bottom - row_top):
                rows[-1].append(i)
                row_top = float(np.mean(tops[rows[-1]]))
                row_bottom = float(np.mean(bottoms[rows[-1]]))
                continue
        rows.append([i])
        row_top, row_bottom = float(tops[i]), float(bottoms[i])
    return [sorted(row, key=lambda j: float(lefts[j])) for row in rows]


def page_text(rows: list[list[int]], texts: list[str]) -> str:
    r"""Join line texts: boxes on one row by a space, rows by ``\n``."""
    return "\n".join(" ".join(texts[i] for i in row) for row in rows)
