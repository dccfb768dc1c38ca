"""Reading order on synthetic line layouts (pure geometry, no models)."""

from __future__ import annotations

import numpy as np

from ocr_pipeline.engine.layout import analyse_layout


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def column(x0: float, x1: float, top: float, lines: int, pitch: float = 30) -> list:
    return [box(x0, top + k * pitch, x1, top + k * pitch + 20) for k in range(lines)]


def order(boxes: list, mode: str = "auto") -> list[int]:
    return analyse_layout(np.array(boxes, dtype=np.float32), mode, 0.4).order


def test_two_columns_are_read_one_after_the_other() -> None:
    left, right = column(0, 400, 100, 10), column(440, 840, 100, 10)
    assert order(left + right) == list(range(20))
    # The same boxes interleave when read as rows: what "rows" mode is for (receipts).
    assert order(left + right, "rows")[:2] == [0, 10]


def test_a_heading_across_two_columns_comes_first() -> None:
    heading = [box(100, 30, 740, 70)]
    boxes = heading + column(0, 400, 100, 8) + column(440, 840, 100, 8)
    assert order(boxes) == list(range(17))


def test_table_rows_stay_rows() -> None:
    cells = [box(x, 100 + 30 * r, x + 60, 120 + 30 * r) for r in range(4) for x in (0, 200, 400)]
    layout = analyse_layout(np.array(cells, dtype=np.float32), "auto", 0.4)
    assert layout.order == list(range(12))
    assert [block.kind for block in layout.blocks] == ["table"]


def test_single_column_with_right_aligned_amounts_reads_row_by_row() -> None:
    widths = [180, 120, 260, 90, 200, 150, 240, 110]
    labels = [box(0, 100 + 30 * r, w, 120 + 30 * r) for r, w in enumerate(widths)]
    amounts = [box(560 - 14 * (r % 3), 100 + 30 * r, 620, 120 + 30 * r) for r in range(8)]
    boxes = [b for pair in zip(labels, amounts, strict=True) for b in pair]
    assert order(boxes) == list(range(16))


def test_vertical_headline_beside_columns_is_read_first_and_marked() -> None:
    headline = [box(880, 100, 910, 400)]
    boxes = column(0, 400, 100, 10) + column(440, 840, 100, 10) + headline
    layout = analyse_layout(np.array(boxes, dtype=np.float32), "auto", 0.4)
    assert layout.order == [20, *range(20)]
    assert [i for i, vertical in enumerate(layout.vertical) if vertical] == [20]


def test_vertical_columns_read_right_to_left() -> None:
    columns = [box(300 - 40 * k, 50, 330 - 40 * k, 400) for k in range(6)]
    assert order(columns) == list(range(6))


def test_running_head_and_page_number_frame_the_columns() -> None:
    head = [box(0, 0, 120, 20), box(720, 0, 840, 20)]
    body = column(0, 400, 100, 20) + column(440, 840, 100, 20)
    folio = [box(400, 760, 440, 780)]
    assert order(head + body + folio) == list(range(43))


def test_footnotes_follow_both_columns() -> None:
    left = column(0, 400, 100, 16, pitch=40)
    notes = column(0, 400, 100 + 16 * 40 + 30, 2, pitch=22)
    right = column(440, 840, 100, 18, pitch=40)
    boxes = left + notes + right
    expected = [*range(16), *range(18, 36), 16, 17]
    assert order(boxes) == expected


def test_paragraph_breaks_between_blocks() -> None:
    boxes = column(0, 400, 100, 3) + column(0, 400, 300, 3)
    layout = analyse_layout(np.array(boxes, dtype=np.float32), "auto", 0.4)
    assert layout.text([f"l{i}" for i in range(6)]) == "l0\nl1\nl2\n\nl3\nl4\nl5"


def test_a_line_printed_above_another_is_not_in_its_row() -> None:
    # Receipt 049 read at 640 px: the detector's boxes of `JM0325955-V` and of the address line
    # under it overlap in height (centres half a line apart), and in x by whole words.
    address = box(0, 100, 300, 132)
    number = box(120, 88, 240, 116)
    # Neighbours of one row whose boxes reach into each other (by less than a line height).
    label, amount = box(0, 200, 120, 232), box(100, 202, 300, 234)
    layout = analyse_layout(np.array([address, number, label, amount], np.float32), "rows", 0.4)
    assert [list(row) for block in layout.blocks for row in block.rows] == [[1], [0], [2, 3]]
    assert layout.text(["NO.59 JALAN", "JM0325955-V", "TOTAL", "12.00"]) == (
        "JM0325955-V\nNO.59 JALAN\nTOTAL 12.00"
    )


def test_boxes_lying_on_each_other_stay_one_row() -> None:
    # A line given twice (annotators, or the detector) is not one line above the other: the
    # order of the two must not hang on a pixel of height (receipt 001's ground truth).
    first, second = box(20, 100, 320, 124), box(22, 101, 318, 125)
    layout = analyse_layout(np.array([first, second], np.float32), "rows", 0.4)
    assert [list(row) for block in layout.blocks for row in block.rows] == [[0, 1]]
