"""The hocr writer: hOCR 1.2 in XHTML (HTML5 in XML syntax), every page of a document in one file.

hOCR (kba.github.io/hocr-spec/1.2) marks OCR results up in (X)HTML: the element is the ``class``
(``ocr_page``, ``ocr_carea``, ``ocr_par``, ``ocr_line``, ``ocrx_word``), its properties are in
``title`` (``bbox x0 y0 x1 y1; x_wconf 97``). Per page of the result:

- ``<div class="ocr_page">``: ``image "<file name>"; bbox 0 0 W H; ppageno N`` (0-based), and
  ``scan_res`` when the page was rendered from a PDF at a known dpi; its attribute
  ``data-rotation`` is the page's ``rotation``, the clockwise quarter turn from the page as
  stored in the file to the upright page that was read (hOCR has no property for it, and the
  spec's validator refuses properties it does not define).
- ``<div class="ocr_carea">`` with one ``<p class="ocr_par">`` per layout block.
- ``<span class="ocr_line">`` per line in reading order: its ``bbox``; ``textangle`` (degrees,
  counter-clockwise, as the spec says: 90 is Latin text running from bottom to top) when the
  line's text is turned more than 45 degrees from the page's upright, else ``baseline`` (slope
  and offset from the bbox's bottom left, along the line box's bottom edge); ``x_wconf``;
  ``lang="zh"`` on lines mostly of Chinese characters; vertical lines (read top to bottom) carry
  ``style="writing-mode: vertical-rl"`` and no baseline.
- ``<span class="ocrx_word">`` per word (the recognizer's word boxes, else the line's tokens
  split along its box, :func:`~ocr_pipeline.outputs.words.line_words`): ``bbox`` and
  ``x_wconf`` (0..100).

Every box is axis-aligned, in pixels of the page as delivered (EXIF orientation and PDF
``/Rotate`` applied), inside ``0 0 W H``. The whitespace between elements is the TXT's: words of
a line are separated as in the line's text, lines of one row by a space, rows by a newline,
blocks by a blank line. So the text content of each ``ocr_page`` element is the page's text,
character for character, and the pages' texts joined by form feeds are the TXT file (without
its final newline). A page that could not be read is an empty ``ocr_page``.

The whitespace and the words come from :func:`ocr_pipeline.outputs.flow.page_flow`, shared with
the ALTO writer.
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
    page_flow,
    text_angle,
    union_bounds,
)
from ocr_pipeline.results import DocumentResult, Line, Page

XHTML_NS = "http://www.w3.org/1999/xhtml"

DOCTYPE = "<!DOCTYPE html>"
"""HTML5's: ``data-`` attributes are valid HTML5, not XHTML 1.0."""

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf ocrp_lang"
"""What this writer can produce (the spec's ``ocr-capabilities``; ``ocrp_wconf`` as Tesseract
writes it for ``x_wconf``)."""

TURNED_DEGREES = 45.0
"""A line whose text is turned more than this (degrees) from upright gets ``textangle``; others
get ``baseline``."""

LANGUAGES = "zh en"
"""``ocr-langs``: the recognizer reads Chinese and English (ISO 639-1)."""

SCRIPTS = "Hani Latn"
"""``ocr-scripts``: Han and Latin (ISO 15924)."""

ROTATION_NOTE = (
    " ocr-pipeline: bbox values are pixels of the page as delivered (EXIF orientation and PDF "
    "/Rotate applied). data-rotation on ocr_page is the clockwise quarter turn (0, 90, 180, "
    "270) from the page as stored in the file to the upright page that was read (the decoder's "
    "turn plus the engine's). textangle on ocr_line is, as in the hOCR spec, the "
    "counter-clockwise angle in degrees of the line's text on the page as delivered. "
)

# --- hOCR ---------------------------------------------------------------------------------------


def _bbox(box: tuple[int, int, int, int]) -> str:
    return "bbox {} {} {} {}".format(*box)


def _quoted(name: str) -> str:
    r"""``name`` in double quotes, as Tesseract writes ``image``, with ``"`` and ``\`` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wconf(confidence: float) -> str:
    return f"x_wconf {round(max(0.0, min(1.0, confidence)) * 100)}"


def _baseline(line: Line, box: tuple[int, int, int, int]) -> str | None:
    """``baseline p1 p0`` along the bottom edge of the line box, from the bbox's bottom left."""
    (x3, y3), (x2, y2) = line.box[3], line.box[2]
    if x2 == x3:
        return None
    slope = (y2 - y3) / (x2 - x3)
    offset = y3 + slope * (box[0] - x3) - box[3]
    return f"baseline {decimal(slope, 3)} {decimal(offset, 1)}"


def _line_element(flow: FlowLine, number_: str, page: Page, word_ids: list[int]) -> ET.Element:
    line = flow.line
    box = clamp_bounds(line.box, page.width, page.height)
    title = [_bbox(box)]
    angle = text_angle(line)
    if abs(angle) > TURNED_DEGREES:
        title.append(f"textangle {decimal(angle % 360.0)}")
    elif not line.vertical:
        baseline = _baseline(line, box)
        if baseline is not None:
            title.append(baseline)
    title.append(_wconf(line.confidence))
    element = ET.Element(
        "span", {"class": "ocr_line", "id": f"line_{number_}", "title": "; ".join(title)}
    )
    lang = language(line.text)
    if lang is not None:
        element.set("lang", lang)
        element.set("xml:lang", lang)
    if line.vertical:
        element.set("style", "writing-mode: vertical-rl")
    element.text = flow.gaps[0] or None
    for word, gap in zip(flow.words, flow.gaps[1:], strict=True):
        word_ids[0] += 1
        word_box = clamp_bounds(word.box, page.width, page.height)
        span = ET.SubElement(
            element,
            "span",
            {
                "class": "ocrx_word",
                "id": f"word_{page.index + 1}_{word_ids[0]}",
                "title": f"{_bbox(word_box)}; {_wconf(word.confidence)}",
            },
        )
        span.text = clean_text(word.text)
        span.tail = gap or None
    if not flow.words:
        element.text = clean_text(line.text) or None
    return element


def _page_element(page: Page, name: str) -> ET.Element:
    """One ``ocr_page``; its text content is the page's text."""
    title = [f"image {_quoted(name)}", _bbox((0, 0, page.width, page.height))]
    title.append(f"ppageno {page.index}")
    if page.dpi is not None:
        title.append(f"scan_res {page.dpi} {page.dpi}")
    number_ = page.index + 1
    element = ET.Element(
        "div",
        {
            "class": "ocr_page",
            "id": f"page_{number_}",
            "title": "; ".join(title),
            "data-rotation": str(page.rotation),
        },
    )
    flow, after = page_flow(page)
    word_ids = [0]
    area: ET.Element | None = None
    paragraph: ET.Element | None = None
    previous: ET.Element | None = None
    blocks = 0
    for index, item in enumerate(flow):
        if item.new_block or paragraph is None:
            if area is not None:
                area.tail = item.before or None
            else:
                element.text = item.before or None
            blocks += 1
            block_box = _block_bounds(page, flow, index)
            area = ET.SubElement(
                element,
                "div",
                {
                    "class": "ocr_carea",
                    "id": f"block_{number_}_{blocks}",
                    "title": _bbox(block_box),
                },
            )
            paragraph = ET.SubElement(
                area,
                "p",
                {"class": "ocr_par", "id": f"par_{number_}_{blocks}", "title": _bbox(block_box)},
            )
        elif previous is not None:
            previous.tail = item.before or None
        previous = _line_element(item, f"{number_}_{index + 1}", page, word_ids)
        paragraph.append(previous)
    if area is not None:
        area.tail = after or None
    return element


def _block_bounds(page: Page, flow: list[FlowLine], start: int) -> tuple[int, int, int, int]:
    """Bounds of the lines of the block that starts at ``flow[start]``."""
    boxes = [clamp_bounds(flow[start].line.box, page.width, page.height)]
    for item in flow[start + 1 :]:
        if item.new_block:
            break
        boxes.append(clamp_bounds(item.line.box, page.width, page.height))
    return union_bounds(boxes)


def render_hocr(result: DocumentResult) -> bytes:
    """The hOCR document of ``result``: UTF-8 XHTML, every page in order."""
    root = ET.Element("html", {"xmlns": XHTML_NS})
    root.text = "\n "
    head = ET.SubElement(root, "head")
    head.text = "\n  "
    head.tail = "\n "
    title = ET.SubElement(head, "title")
    title.text = clean_text(result.source.name)
    metas = [
        {"charset": "utf-8"},
        {"name": "ocr-system", "content": f"{SOFTWARE} {result.pipeline_version}"},
        {"name": "ocr-capabilities", "content": CAPABILITIES},
        {"name": "ocr-number-of-pages", "content": str(len(result.pages))},
        {"name": "ocr-langs", "content": LANGUAGES},
        {"name": "ocr-scripts", "content": SCRIPTS},
    ]
    previous = title
    for attributes in metas:
        previous.tail = "\n  "
        previous = ET.SubElement(head, "meta", attributes)
    previous.tail = "\n  "
    comment = ET.Comment(ROTATION_NOTE)
    comment.tail = "\n "
    head.append(comment)
    body = ET.SubElement(root, "body")
    body.tail = "\n"
    body.text = "\n  "
    name = clean_text(result.source.name)
    pages = [_page_element(page, name) for page in result.pages]
    for number_, page_element in enumerate(pages):
        page_element.tail = "\n  " if number_ + 1 < len(pages) else "\n "
        body.append(page_element)
    # HTML parsers read <div/> as an open div and refuse </meta>: every element gets an end tag
    # but the void meta, written <meta ... />. No text holds "></meta>" (ElementTree escapes
    # "<" in text and attributes).
    text = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    text = text.replace("></meta>", " />")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{DOCTYPE}\n{text}'.encode()


class HocrWriter:
    """hOCR 1.2 (XHTML)."""

    name = "hocr"
    suffix = ".hocr"
    media_type = "application/xhtml+xml"
    reads_original = False

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The hOCR document of every page of ``result`` (``original`` is not read)."""
        return render_hocr(result)
