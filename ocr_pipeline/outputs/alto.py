"""The alto writer: ALTO 4.3 XML, every page of a document in one file.

ALTO (www.loc.gov/standards/alto, namespace ``http://www.loc.gov/standards/alto/ns-v4#``) holds
the layout and text of pages; this writer follows the ALTO 4.3 schema (``alto-4-3.xsd``, the
newest of version 4 that a pinned package ships; the tests validate against it):

- ``Description``: ``MeasurementUnit`` ``pixel``; ``sourceImageInformation/fileName`` (the input
  file's name); a ``Processing`` step ``OCR`` (``contentGeneration``, the time of the result, the
  models as ``processingStepSettings``, ``processingSoftware`` ``ocr-pipeline`` and its version);
  and for each page the engine or the file turned, a ``Processing`` step ``P<n>_ROTATION``
  (``preOperation``) whose ``processingStepSettings`` is ``rotation=<degrees>``: the clockwise
  quarter turn from the page as stored in the file to the upright page that was read. The page
  refers to it in ``PROCESSINGREFS``. (ALTO 4.3 has no rotation attribute on ``Page``; 4.4 adds
  one.)
- ``Tags``: the layout tag ``TABLE`` when a page has a table-like block.
- ``Layout/Page`` per page (``ID`` ``P<n>``, ``PHYSICAL_IMG_NR`` n, ``WIDTH``, ``HEIGHT`` in pixels
  of the page as delivered) holding a ``PrintSpace`` as large as the page; a page that could
  not be read is an empty ``Page``.
- ``TextBlock`` per layout block (``TAGREFS="TABLE"`` for table-like ones), with ``ROTATION``
  (degrees counter-clockwise, the mean angle of its lines' text) when its text is turned or
  skewed by at least half a degree.
- ``TextLine`` per row of the TXT: the lines the layout reads as one row (a label and its amount
  on a receipt) share a ``TextLine``, with an ``SP`` between them, so that the ALTO's text is
  the TXT's. ``LANG="zh"`` on rows mostly of Chinese characters; ``BASEDIRECTION="ttb"`` on
  vertical lines (read top to bottom).
- ``String`` per word (``CONTENT``, ``WC`` 0..1 and its box) and ``SP`` where the text has a
  space (none between CJK runs the text has adjacent).

All boxes are axis-aligned (``HPOS``, ``VPOS``, ``WIDTH``, ``HEIGHT``), inside the page. Reading
the Strings of each TextLine joined by their SPs as spaces, TextLines by newlines and
TextBlocks by blank lines gives each page's text, as the TXT holds it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ocr_pipeline.outputs.flow import (
    SOFTWARE,
    FlowLine,
    clamp_bounds,
    clean_text,
    decimal,
    language,
    mean_angle,
    page_flow,
    text_angle,
    union_bounds,
)
from ocr_pipeline.results import DocumentResult, Page

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_VERSION = "4.3"
SCHEMA_LOCATION = f"{ALTO_NS} http://www.loc.gov/standards/alto/v4/alto-4-3.xsd"

ROTATION_MIN_DEGREES = 0.5
"""A block whose text is turned by less than this (degrees) gets no ``ROTATION``."""

TABLE_TAG = "TABLE"
OCR_STEP = "OCR"


def _box(element: ET.Element, box: tuple[int, int, int, int]) -> None:
    """Set ``HPOS``, ``VPOS``, ``WIDTH`` and ``HEIGHT`` from ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    element.set("HPOS", str(x0))
    element.set("VPOS", str(y0))
    element.set("WIDTH", str(x1 - x0))
    element.set("HEIGHT", str(y1 - y0))


def _bounds(lines: list[FlowLine], page: Page) -> tuple[int, int, int, int]:
    """Bounds of the boxes of ``lines`` (not empty), inside the page."""
    return union_bounds([clamp_bounds(item.line.box, page.width, page.height) for item in lines])


def _rows(flow: list[FlowLine]) -> list[list[list[FlowLine]]]:
    """Blocks of rows of lines: a new block where a block starts, a new row at a line break."""
    blocks: list[list[list[FlowLine]]] = []
    for item in flow:
        if item.new_block or not blocks:
            blocks.append([[item]])
        elif "\n" in item.before:
            blocks[-1].append([item])
        else:
            blocks[-1][-1].append(item)
    return blocks


def _text_line(row: list[FlowLine], page: Page, line_id: str) -> ET.Element | None:
    """One ``TextLine`` of a row's lines: Strings, and SPs where the text has spaces."""
    element = ET.Element("TextLine", {"ID": line_id})
    _box(element, _bounds(row, page))
    lang = language(" ".join(item.line.text for item in row))
    if lang is not None:
        element.set("LANG", lang)
    if any(item.line.vertical for item in row):
        element.set("BASEDIRECTION", "ttb")
    strings = 0
    space = False  # a space is owed before the next String
    previous: tuple[int, int, int, int] | None = None
    for number, item in enumerate(row):
        if number > 0:
            space = True  # lines of one row: separated by a space in the text
        for word, before in zip(item.words, item.gaps, strict=False):
            box = clamp_bounds(word.box, page.width, page.height)
            if (before or space) and previous is not None:
                element.append(_space(previous, box))
            space = False
            strings += 1
            string = ET.SubElement(
                element,
                "String",
                {"ID": f"{line_id}_S{strings}", "CONTENT": clean_text(word.text)},
            )
            _box(string, box)
            string.set("WC", decimal(max(0.0, min(1.0, word.confidence)), 3))
            previous = box
    return element if strings else None


def _space(before: tuple[int, int, int, int], after: tuple[int, int, int, int]) -> ET.Element:
    """An ``SP`` with the box of the gap between two words, when they do not overlap."""
    element = ET.Element("SP")
    x0, y0 = min(before[0], after[0]), min(before[1], after[1])
    x1, y1 = max(before[2], after[2]), max(before[3], after[3])
    if after[0] > before[2]:  # left to right
        gap = (before[2], y0, after[0], y1)
    elif before[0] > after[2]:  # right to left (a line turned upside down)
        gap = (after[2], y0, before[0], y1)
    elif after[1] > before[3]:  # top to bottom
        gap = (x0, before[3], x1, after[1])
    elif before[1] > after[3]:  # bottom to top
        gap = (x0, after[3], x1, before[1])
    else:
        return element
    _box(element, gap)
    return element


def _page(page: Page, processing: list[str]) -> ET.Element:
    number = page.index + 1
    element = ET.Element(
        "Page",
        {
            "ID": f"P{number}",
            "PHYSICAL_IMG_NR": str(number),
            "WIDTH": str(page.width),
            "HEIGHT": str(page.height),
        },
    )
    if processing:
        element.set("PROCESSINGREFS", " ".join(processing))
    if page.error is not None:
        return element
    space = ET.SubElement(element, "PrintSpace", {"ID": f"P{number}_PS"})
    _box(space, (0, 0, page.width, page.height))
    flow, _ = page_flow(page)
    for block_number, rows in enumerate(_rows(flow), start=1):
        block_id = f"P{number}_B{block_number}"
        lines = [item for row in rows for item in row]
        block = ET.SubElement(space, "TextBlock", {"ID": block_id})
        _box(block, _bounds(lines, page))
        angle = mean_angle([text_angle(item.line) for item in lines])
        if abs(angle) >= ROTATION_MIN_DEGREES:
            block.set("ROTATION", decimal(angle))
        kind = lines[0].line.block
        if 0 <= kind < len(page.blocks) and page.blocks[kind].kind == "table":
            block.set("TAGREFS", TABLE_TAG)
        for row_number, row in enumerate(rows, start=1):
            text_line = _text_line(row, page, f"{block_id}_L{row_number}")
            if text_line is not None:
                block.append(text_line)
    return element


def _processing(
    parent: ET.Element, step_id: str, category: str, settings: str, description: str | None = None
) -> ET.Element:
    step = ET.SubElement(parent, "Processing", {"ID": step_id})
    ET.SubElement(step, "processingCategory").text = category
    if description is not None:
        ET.SubElement(step, "processingStepDescription").text = description
    ET.SubElement(step, "processingStepSettings").text = settings
    return step


def render_alto(result: DocumentResult) -> bytes:
    """The ALTO document of ``result``: UTF-8 XML, every page in order."""
    root = ET.Element(
        "alto",
        {
            "xmlns": ALTO_NS,
            "xmlns:xsi": XSI_NS,
            "xsi:schemaLocation": SCHEMA_LOCATION,
            "SCHEMAVERSION": SCHEMA_VERSION,
        },
    )
    description = ET.SubElement(root, "Description")
    ET.SubElement(description, "MeasurementUnit").text = "pixel"
    source = ET.SubElement(description, "sourceImageInformation")
    ET.SubElement(source, "fileName").text = clean_text(result.source.name)
    ocr = ET.SubElement(description, "Processing", {"ID": OCR_STEP})
    ET.SubElement(ocr, "processingCategory").text = "contentGeneration"
    ET.SubElement(ocr, "processingDateTime").text = result.created_at
    models = "; ".join(
        f"{role}={model.name} sha256:{model.sha256}" for role, model in result.models.items()
    )
    ET.SubElement(ocr, "processingStepSettings").text = clean_text(models)
    software = ET.SubElement(ocr, "processingSoftware")
    ET.SubElement(software, "softwareName").text = SOFTWARE
    ET.SubElement(software, "softwareVersion").text = result.pipeline_version
    page_steps: list[list[str]] = []
    for page in result.pages:
        steps = [OCR_STEP] if page.error is None else []
        if page.rotation:
            step_id = f"P{page.index + 1}_ROTATION"
            _processing(
                description,
                step_id,
                "preOperation",
                f"rotation={page.rotation}",
                f"Page {page.index + 1} was turned {page.rotation} degrees clockwise from the "
                "page as stored in the file to be read upright (the file's EXIF orientation or "
                "PDF /Rotate, and the engine's page orientation). Coordinates are pixels of the "
                "page as delivered: EXIF orientation and /Rotate applied, the engine's turn not.",
            )
            steps.append(step_id)
        page_steps.append(steps)
    if any(block.kind == "table" for page in result.pages for block in page.blocks):
        tags = ET.SubElement(root, "Tags")
        ET.SubElement(tags, "LayoutTag", {"ID": TABLE_TAG, "LABEL": "table"})
    layout = ET.SubElement(root, "Layout")
    for page, steps in zip(result.pages, page_steps, strict=True):
        layout.append(_page(page, steps))
    ET.indent(root, space=" ")
    text = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'.encode()


class AltoWriter:
    """ALTO 4 XML."""

    name = "alto"
    suffix = ".alto.xml"
    media_type = "application/xml"
    reads_original = False

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The ALTO document of every page of ``result`` (``original`` is not read)."""
        return render_alto(result)
