"""Reading order: lines grouped into blocks and columns, and within them into rows.

:func:`group_rows` gives the simple order (rows top to bottom, each left to right) for receipts
and single-column pages (``layout.mode = "rows"``); :func:`analyse_layout` first cuts the page
into header, body, footnotes and footer, and the body into blocks and columns (``"auto"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ocr_pipeline.engine.geometry import LEFT, TOP, edge_lengths

ELONGATED = 3.0
"""Width / height from which a box's own tilt is trusted as its text line's slope."""


ROW_X_OVERLAP = 1.0
"""Most two boxes of one row may overlap horizontally, in the smaller line height.

DBNet grows each box by a margin around its text (less than half its height on either side),
so the boxes of neighbouring words of a row reach into each other by less than a line height
(at most 0.66 of it on the dev receipts). Lines printed one above the other whose boxes
overlap in height (a dense receipt read at a small detector input) overlap horizontally by
whole words: 1.4 line heights and more on the dev receipts."""

LEVEL_OFFSET = 0.25
"""Boxes whose centres are at most this far apart across the line, in the smaller line height,
are level: when they overlap horizontally, one lies on the other (a line the annotators or the
detector gave twice, a stamp over print), neither above the other, and they stay one row.

Lines printed one above the other sit 0.45-0.65 of a line height apart on the dev receipts."""


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
        lengths = edge_lengths(q)
        width = lengths[:, TOP]
        height = np.maximum(lengths[:, LEFT], 1.0)
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
    A box never joins a row that holds a box overlapping it horizontally by more than
    ``ROW_X_OVERLAP`` of the smaller line height, unless the two are level (centres within
    ``LEVEL_OFFSET``): that box is printed above or under it (a line of a dense receipt whose
    detector boxes overlap the next line's in height), not beside it. Among several fitting
    rows the closest wins. Rows are then ordered by their height on the page measured along
    the page's median text slope.

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
            if any(_stacked(geometry, i, j) for j in rows[r]):
                continue
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


def _stacked(geometry: LineGeometry, i: int, j: int) -> bool:
    """Whether box ``i`` is printed above or under box ``j`` (see :func:`group_rows`).

    They overlap horizontally by more than ``ROW_X_OVERLAP`` and are not level
    (:data:`LEVEL_OFFSET`).
    """
    overlap = min(geometry.right[i], geometry.right[j]) - max(geometry.left[i], geometry.left[j])
    wide = overlap > ROW_X_OVERLAP * min(geometry.height[i], geometry.height[j])
    return bool(wide and geometry.offset(i, j) > LEVEL_OFFSET)


def _horizontal_gap(geometry: LineGeometry, i: int, j: int) -> float:
    """Pixels between the x ranges of boxes ``i`` and ``j`` (0 when they overlap)."""
    return float(
        max(0.0, geometry.left[i] - geometry.right[j], geometry.left[j] - geometry.right[i])
    )


VERTICAL_RATIO = 1.5
"""Height / width from which a box is a vertical text line (the same ratio at which
:func:`~ocr_pipeline.engine.geometry.crop_quad` turns a crop)."""

MARGIN = 0.1
"""Share of the text's height at the top and bottom of a page where headers, footers and
footnotes sit."""

BAND_WIDTH = 1 / 3
"""Widest line of a header or footer band, as a share of the text's width."""

JOIN_GAP = 1.0
"""Successive regions at most this many character sizes apart (and level horizontally) are one
block."""

FOOTNOTE_PITCH = 0.75
"""A block in the bottom margin whose line pitch is at most this share of the body's is a
footnote, read after the body."""

VERTICAL_CHARS = 2.5
"""A vertical line is also at least this many times the page's median line height tall (so a
lone ``1`` or ``l`` is not one)."""

Y_GAP = 0.5
"""A horizontal cut needs an empty band at least this many character sizes high."""

X_GAP = 0.8
"""A vertical cut (column gutter) needs an empty stripe at least this many character sizes wide.

Beside a vertical line any empty stripe will do."""

COLUMN_ASPECT = 6.0
"""Width / height from which a line is a line of running text (not a label, amount or cell)."""

RUNNING_SHARE = 0.25
"""Share of a side's lines that must be running text for the side to be a text column."""

PAIRED_ROWS = 0.5
"""Share of one side's boxes level with a box on the other side from which the two sides are
read as rows (a table, labels and amounts), not as columns."""


@dataclass(frozen=True)
class LayoutBlock:
    """Lines read together: a paragraph or a column's run of lines, or table-like rows."""

    rows: tuple[tuple[int, ...], ...]
    """Visual rows in reading order, each a tuple of box indices left to right (right to left
    for vertical lines)."""
    kind: Literal["text", "table"]
    """``"text"``, or ``"table"`` when at least two rows hold several boxes."""

    @property
    def lines(self) -> list[int]:
        """Box indices in reading order."""
        return [i for row in self.rows for i in row]


@dataclass(frozen=True)
class PageLayout:
    """The reading order of a page: blocks in order, and which boxes are vertical lines."""

    blocks: tuple[LayoutBlock, ...]
    vertical: tuple[bool, ...]
    """Per input box, whether it is a vertical text line."""

    @property
    def order(self) -> list[int]:
        """All box indices in reading order."""
        return [i for block in self.blocks for i in block.lines]

    def text(self, texts: list[str]) -> str:
        r"""Join line texts, indexed like the boxes.

        A row's texts by a space, rows by ``\n``, blocks by a blank line (a paragraph break).
        """
        return "\n\n".join(
            "\n".join(" ".join(texts[i] for i in row) for row in block.rows)
            for block in self.blocks
        )


@dataclass(frozen=True)
class _Boxes:
    """Axis-aligned extents of the boxes on the levelled page (``(N,)`` float64 arrays)."""

    x0: np.ndarray
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    vertical: np.ndarray
    """``(N,)`` bool."""

    @property
    def size(self) -> np.ndarray:
        """Character size per box: the smaller side, pixels."""
        size: np.ndarray = np.minimum(self.x1 - self.x0, self.y1 - self.y0)
        return size

    @classmethod
    def level(cls, quads: np.ndarray, page_slope: float) -> _Boxes:
        """Rotate ``(N, 4, 2)`` quads so the page's text slope is horizontal; take extents."""
        angle = float(np.arctan(page_slope))
        cos, sin = np.cos(angle), np.sin(angle)
        q = quads.astype(np.float64)
        x = q[:, :, 0] * cos + q[:, :, 1] * sin
        y = -q[:, :, 0] * sin + q[:, :, 1] * cos
        lengths = edge_lengths(q)
        side, top = lengths[:, LEFT], lengths[:, TOP]
        tall = side >= VERTICAL_RATIO * np.maximum(top, 1.0)
        char_size = float(np.median(side[~tall])) if (~tall).any() else float(np.median(top))
        return cls(
            x0=x.min(axis=1),
            x1=x.max(axis=1),
            y0=y.min(axis=1),
            y1=y.max(axis=1),
            vertical=tall & (side >= VERTICAL_CHARS * char_size),
        )


def analyse_layout(quads: np.ndarray, mode: str, min_overlap: float) -> PageLayout:
    """Group text lines into blocks and columns and put them in reading order.

    ``mode = "rows"`` reads the page as one block of rows (:func:`group_rows`): the right order
    for receipts and single-column pages. ``mode = "auto"`` first splits the page by a recursive
    XY-cut over the line boxes (Nagy and Seth, "Hierarchical representation of optically scanned
    documents", ICPR 1984), on the page levelled by its median text slope. At each region the
    widest empty band or stripe, in units of the region's median character size, is cut:

    - a horizontal band (at least ``Y_GAP`` high): the part above is read first;
    - a vertical stripe (a gutter, at least ``X_GAP`` wide), only when the two sides are
      columns: both hold running text (``RUNNING_SHARE`` of their lines at least
      ``COLUMN_ASPECT`` times as wide as high), or one does and fewer than ``PAIRED_ROWS`` of
      the other's boxes sit level with it (so labels beside their amounts, and table cells,
      stay rows).

    Before either, vertical lines standing apart at a side of the region (any empty stripe
    between) are cut off and read first: vertical columns run right to left, and a vertical
    headline comes before its article.

    A region that cannot be cut is a block, read as rows by :func:`group_rows`.

    Args:
        quads: ``(N, 4, 2)`` float32 boxes in page pixels, corners clockwise from top-left.
        mode: ``"auto"`` or ``"rows"``.
        min_overlap: the row overlap of :func:`group_rows`, 0..1.

    Returns:
        The page's blocks in reading order (every box in exactly one block).
    """
    if len(quads) == 0:
        return PageLayout(blocks=(), vertical=())
    # Whole pixels, as in the result file: the order is a function of the recorded boxes.
    quads = np.round(quads)
    boxes = _Boxes.level(quads, LineGeometry.of(quads).page_slope)
    regions = [np.arange(len(quads))]
    if mode == "auto":
        header, body, footer = _margins(boxes)
        regions = [
            *_xy_cut(boxes, header),
            *_footnotes_last(boxes, _xy_cut(boxes, body)),
            *_xy_cut(boxes, footer),
        ]
    blocks = tuple(_block(quads, region, boxes.vertical, min_overlap) for region in regions)
    return PageLayout(blocks=blocks, vertical=tuple(bool(v) for v in boxes.vertical))


def _margins(boxes: _Boxes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the page into header band, body and footer band (``(K,)`` index arrays).

    The header band is what lies above the page's first full-width empty band (at least
    ``Y_GAP`` character sizes high) when it ends within the top ``MARGIN`` of the text's height
    and none of its lines spans more than ``BAND_WIDTH`` of the text's width (it is not the
    body's first row); the footer band likewise at the bottom. Running heads, page numbers and
    footers are read before and after the body, whatever its columns.
    """
    everything = np.arange(len(boxes.x0))
    unit = max(float(np.median(boxes.size)), 1.0)
    gaps = [g for g in _gaps(boxes.y0, boxes.y1) if g[1] - g[0] >= Y_GAP * unit]
    top, bottom = float(boxes.y0.min()), float(boxes.y1.max())
    header_end = gaps[0][0] if gaps and gaps[0][0] <= top + MARGIN * (bottom - top) else top
    footer_start = (
        gaps[-1][1] if gaps and gaps[-1][1] >= bottom - MARGIN * (bottom - top) else bottom + 1
    )
    header = boxes.y1 <= header_end
    footer = boxes.y0 >= footer_start
    widest = BAND_WIDTH * float(boxes.x1.max() - boxes.x0.min())
    if (boxes.x1 - boxes.x0)[header].max(initial=0) > widest:
        header[:] = False
    if (boxes.x1 - boxes.x0)[footer].max(initial=0) > widest:
        footer[:] = False
    return everything[header], everything[~header & ~footer], everything[footer]


def _join_runs(boxes: _Boxes, regions: list[np.ndarray]) -> list[np.ndarray]:
    """Join successive regions that continue one another into one block.

    The cut separates lines at every gap of ``Y_GAP``; a region directly below the previous one
    (within ``JOIN_GAP`` character sizes, not overlapping it vertically), sharing at least half
    of the narrower one's width, and neither holding vertical lines, is the same run of text;
    so are neighbouring columns of vertical lines (:func:`_side_by_side`).
    """
    joined: list[np.ndarray] = []
    for region in regions:
        if joined and _continues(boxes, joined[-1], region):
            joined[-1] = np.concatenate([joined[-1], region])
        else:
            joined.append(region)
    return joined


def _continues(boxes: _Boxes, above: np.ndarray, below: np.ndarray) -> bool:
    """Whether region ``below`` continues region ``above`` (see :func:`_join_runs`)."""
    if boxes.vertical[above].all() and boxes.vertical[below].all():
        return _side_by_side(boxes, above, below)
    if boxes.vertical[above].any() or boxes.vertical[below].any():
        return False
    gap = float(boxes.y0[below].min() - boxes.y1[above].max())
    unit = float(np.median(boxes.size[np.concatenate([above, below])]))
    shared = min(boxes.x1[above].max(), boxes.x1[below].max()) - max(
        boxes.x0[above].min(), boxes.x0[below].min()
    )
    narrower = min(
        boxes.x1[above].max() - boxes.x0[above].min(),
        boxes.x1[below].max() - boxes.x0[below].min(),
    )
    return 0 <= gap <= JOIN_GAP * unit and shared >= 0.5 * narrower


def _side_by_side(boxes: _Boxes, first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two regions of vertical lines are neighbouring columns of one text.

    They overlap vertically by at least half the shorter, and the gap between them is at most
    ``JOIN_GAP`` column widths.
    """
    top = max(boxes.y0[first].min(), boxes.y0[second].min())
    bottom = min(boxes.y1[first].max(), boxes.y1[second].max())
    shorter = min(
        np.ptp(np.r_[boxes.y0[first], boxes.y1[first]]),
        np.ptp(np.r_[boxes.y0[second], boxes.y1[second]]),
    )
    gap = max(
        boxes.x0[first].min() - boxes.x1[second].max(),
        boxes.x0[second].min() - boxes.x1[first].max(),
    )
    unit = float(np.median(boxes.size[np.concatenate([first, second])]))
    return bool(bottom - top >= 0.5 * shorter and gap <= JOIN_GAP * unit)


def _footnotes_last(boxes: _Boxes, regions: list[np.ndarray]) -> list[np.ndarray]:
    """Move footnotes after the body, and join the regions of each into blocks (:func:`_join_runs`).

    Footnotes are regions in the bottom ``MARGIN`` of the body whose line pitch is at most
    ``FOOTNOTE_PITCH`` of the body's (smaller type, set closer).
    """
    if len(regions) < 2:
        return _join_runs(boxes, regions)
    body = np.concatenate(regions)
    body_pitch = _pitch(boxes, body)
    limit = float(boxes.y1[body].max()) - MARGIN * float(np.ptp(boxes.y1[body]))
    notes = [
        k
        for k, region in enumerate(regions)
        if boxes.y0[region].min() >= limit
        and 0 < _pitch(boxes, region) <= FOOTNOTE_PITCH * body_pitch
    ]
    text = [r for k, r in enumerate(regions) if k not in notes]
    return _join_runs(boxes, text) + _join_runs(boxes, [regions[k] for k in notes])


def _pitch(boxes: _Boxes, region: np.ndarray) -> float:
    """Typical line pitch of a region, pixels (0.0 when no line has another below it).

    The median distance from each line's centre to the nearest centre below it among the lines
    that overlap it horizontally.
    """
    centre = (boxes.y0[region] + boxes.y1[region]) / 2
    size = boxes.size[region]
    below = (centre[None, :] - centre[:, None]) > 0.5 * np.minimum(size[:, None], size[None, :])
    overlap = np.minimum(boxes.x1[region][:, None], boxes.x1[region][None, :]) > np.maximum(
        boxes.x0[region][:, None], boxes.x0[region][None, :]
    )
    distance = np.where(below & overlap, centre[None, :] - centre[:, None], np.inf)
    nearest = distance.min(axis=1)
    nearest = nearest[np.isfinite(nearest)]
    return float(np.median(nearest)) if len(nearest) else 0.0


def _xy_cut(boxes: _Boxes, start: np.ndarray) -> list[np.ndarray]:
    """Cut a region into regions in reading order (iterative, widest gap first)."""
    if len(start) == 0:
        return []
    pending = [start]
    done: list[np.ndarray] = []
    while pending:
        region = pending.pop()
        parts = _split(boxes, region)
        if parts is None:
            done.append(region)
        else:
            pending.extend(reversed(parts))
    return done


def _split(boxes: _Boxes, region: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The region's best cut as (first part, second part) in reading order, or ``None``.

    A vertical line standing apart at either side is cut off first; otherwise the widest gap.
    """
    if len(region) < 2:
        return None
    unit = max(float(np.median(boxes.size[region])), 1.0)
    x_gaps = sorted(_gaps(boxes.x0[region], boxes.x1[region]), key=lambda g: g[0] - g[1])
    for start, _ in x_gaps:
        on_left = boxes.x1[region] <= start
        left, right = region[on_left], region[~on_left]
        if boxes.vertical[right].all():
            return right, left
        if boxes.vertical[left].all():
            return left, right
    best: tuple[float, tuple[np.ndarray, np.ndarray]] | None = None
    y_gaps = _gaps(boxes.y0[region], boxes.y1[region])
    for start, end in y_gaps:
        if end - start >= Y_GAP * unit and (best is None or end - start > best[0]):
            above = boxes.y1[region] <= start
            best = (end - start, (region[above], region[~above]))
    for start, end in x_gaps:
        if best is not None and end - start <= best[0]:
            break
        on_left = boxes.x1[region] <= start
        left, right = region[on_left], region[~on_left]
        if _is_column_split(boxes, left, right, end - start, unit):
            return left, right
    if best is None:
        best = _band_over_columns(boxes, region, y_gaps)
    return None if best is None else best[1]


def _band_over_columns(
    boxes: _Boxes, region: np.ndarray, y_gaps: list[tuple[float, float]]
) -> tuple[float, tuple[np.ndarray, np.ndarray]] | None:
    """A narrow horizontal cut that frees columns: a heading set close above them.

    Tried only when the region has no regular cut; the widest such gap wins.
    """
    for start, end in sorted(y_gaps, key=lambda g: g[0] - g[1]):
        above = boxes.y1[region] <= start
        if any(_has_columns(boxes, part) for part in (region[above], region[~above])):
            return end - start, (region[above], region[~above])
    return None


def _has_columns(boxes: _Boxes, region: np.ndarray) -> bool:
    """Whether a region splits into columns by some vertical gap."""
    if len(region) < 2:
        return False
    unit = max(float(np.median(boxes.size[region])), 1.0)
    for start, end in _gaps(boxes.x0[region], boxes.x1[region]):
        on_left = boxes.x1[region] <= start
        if _is_column_split(boxes, region[on_left], region[~on_left], end - start, unit):
            return True
    return False


def _gaps(starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    """Empty intervals between the union of ``[start, end]`` intervals, as (start, end)."""
    order = np.argsort(starts, kind="stable")
    gaps: list[tuple[float, float]] = []
    reach = float(ends[order[0]])
    for i in order[1:]:
        if starts[i] > reach:
            gaps.append((reach, float(starts[i])))
        reach = max(reach, float(ends[i]))
    return gaps


def _is_column_split(
    boxes: _Boxes, left: np.ndarray, right: np.ndarray, gap: float, unit: float
) -> bool:
    """Whether a vertical cut of width ``gap`` between ``left`` and ``right`` separates columns.

    Two sides of running text are columns whatever the gutter's width (DBNet boxes grow into
    narrow gutters); otherwise the gap must be ``X_GAP`` wide.
    """
    left_text, right_text = _running_text(boxes, left), _running_text(boxes, right)
    if left_text and right_text:
        return True
    if gap < X_GAP * unit:
        return False
    if left_text or right_text:
        return _level_share(boxes, left, right) < PAIRED_ROWS
    return False


def _running_text(boxes: _Boxes, side: np.ndarray) -> bool:
    """Whether a side of a cut holds running text.

    That is at least two horizontal lines, and ``RUNNING_SHARE`` of its lines, at least
    ``COLUMN_ASPECT`` times as wide as high.
    """
    horizontal = side[~boxes.vertical[side]]
    aspect = (boxes.x1 - boxes.x0)[horizontal] / np.maximum((boxes.y1 - boxes.y0)[horizontal], 1)
    long_lines = int(np.count_nonzero(aspect >= COLUMN_ASPECT))
    return long_lines >= max(2, RUNNING_SHARE * len(side))


def _level_share(boxes: _Boxes, a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller side's boxes level with a box of the other side.

    Level: overlapping vertically by at least half the smaller height.
    """
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    top = np.maximum(boxes.y0[small][:, None], boxes.y0[large][None, :])
    bottom = np.minimum(boxes.y1[small][:, None], boxes.y1[large][None, :])
    heights = boxes.y1 - boxes.y0
    smaller = np.minimum(heights[small][:, None], heights[large][None, :])
    level = ((bottom - top) >= 0.5 * smaller).any(axis=1)
    return float(level.mean())


def _block(
    quads: np.ndarray, region: np.ndarray, vertical: np.ndarray, min_overlap: float
) -> LayoutBlock:
    """Read one region: its vertical lines right to left, one a row, then its horizontal rows."""
    flat = [int(i) for i in region if not vertical[i]]
    upright = sorted(
        (int(i) for i in region if vertical[i]), key=lambda i: -float(quads[i, :, 0].mean())
    )
    rows: list[tuple[int, ...]] = [(i,) for i in upright]
    if flat:
        rows += [tuple(flat[j] for j in row) for row in group_rows(quads[flat], min_overlap)]
    table = sum(len(row) > 1 for row in rows) >= 2
    return LayoutBlock(rows=tuple(rows), kind="table" if table else "text")
