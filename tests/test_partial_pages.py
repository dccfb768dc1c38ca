"""Per-page results: a PDF page too large for 300 dpi is rendered lower, a bad page fails alone.

Issue 23: a 2-page PDF whose second page rendered past ``decode.max_pixels`` at 300 dpi (139
million pixels) failed the whole file, good first page included. Now such a page is rendered at
the highest dpi that fits (not below ``decode.min_pdf_dpi``), and a page that cannot be decoded,
rendered or read is an error of that page alone: the others are read, the result is ``partial``.
Real receipts, real engine; each page's text is compared with its receipt's ground truth.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from ocr_pipeline.correct import Corrector, corrector_from_settings
from ocr_pipeline.documents import DecodeLimits, pdf_page_dpi, rendered_size
from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.pipeline import PageOcr
from ocr_pipeline.errors import (
    CorruptInputError,
    InputTooLargeError,
    JobStoppedError,
    ModelError,
)
from ocr_pipeline.evaluation import GroundTruthPage, Score, load_ground_truth
from ocr_pipeline.jobs import decode_limits, ocr_file
from ocr_pipeline.results import DocumentResult, Page, result_json
from ocr_pipeline.settings import Settings
from ocr_pipeline.writers import TxtWriter
from tests.conftest import SROIE_DEV
from tests.daemon_harness import run_cli

ReadFile = Callable[..., DocumentResult]
"""The ``read_file`` fixture's function: ``read_file(path)``, or ``read_file(path, stand_in)``."""


@pytest.fixture(scope="module")
def limits(settings: Settings) -> DecodeLimits:
    """The settings' decode limits, as the daemon's workers use them."""
    return decode_limits(settings.decode)


@pytest.fixture(scope="module")
def corrector(settings: Settings) -> Corrector:
    """The settings' spell-correction: lexicons and look-alike table, loaded once."""
    return corrector_from_settings(settings.correct)


@pytest.fixture(scope="module")
def read_file(engine: Engine, limits: DecodeLimits, corrector: Corrector) -> ReadFile:
    """``ocr_file`` as the daemon runs it: the settings' decode limits and spell-correction,
    with the real engine unless another is given."""

    def read(path: Path, with_engine: Engine | FailingEngine = engine) -> DocumentResult:
        return ocr_file(path, cast(Engine, with_engine), limits, path.name, corrector)

    return read


@pytest.fixture
def receipts() -> list[tuple[GroundTruthPage, Image.Image]]:
    """The first three dev receipts: ground truth and image (300 dpi scans, about 460x1000).

    Fresh images for each test: saving an image as PDF leaves Pillow's JPEG encoder settings
    on it (``encoderconfig``), which a later TIFF save of the same image trips over.
    """
    return [
        (record, Image.open(record.image).convert("RGB"))
        for record in load_ground_truth(SROIE_DEV)[:3]
    ]


def pdf_of(*pages: tuple[Image.Image, float]) -> bytes:
    """A PDF of one page per ``(image, resolution)``: the page is the image at that many dpi.

    Each page is saved by Pillow (a common image library, as in the issue) on its own, then the
    pages are put together with pypdfium2, so each page keeps its own size.
    """
    merged = pdfium.PdfDocument.new()
    for image, resolution in pages:
        single = io.BytesIO()
        image.save(single, format="PDF", resolution=resolution)
        merged.import_pages(pdfium.PdfDocument(single.getvalue()))
    buffer = io.BytesIO()
    merged.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def two_pdf(tmp_path: Path, receipts: list[tuple[GroundTruthPage, Image.Image]]) -> Path:
    """``two.pdf``: the first two receipts, a page each at 300 dpi."""
    path = tmp_path / "two.pdf"
    path.write_bytes(pdf_of((receipts[0][1], 300), (receipts[1][1], 300)))
    return path


def assert_reads(page: Page, record: GroundTruthPage, records: list[GroundTruthPage]) -> None:
    """The page's text is its receipt's (word F1 > 0.8), and closer to it than to the others."""
    assert page.error is None, page.error
    own = Score()
    own.add(page.text, record.text)
    assert own.word_f1 > 0.8, (page.index, page.text)
    for other in records:
        if other is not record:
            crossed = Score()
            crossed.add(page.text, other.text)
            assert crossed.word_f1 < own.word_f1, (page.index, other.image.name)


def assert_failed(page: Page, error_type: str, *words: str) -> None:
    """The page is an error record: no lines, empty text, the error's type and message words."""
    assert page.error is not None, page
    assert page.error.type == error_type, page.error
    for word in words:
        assert word in page.error.message, (word, page.error.message)
    assert page.lines == [] and page.blocks == [] and page.text == ""


# --- a page too large at 300 dpi -----------------------------------------------------------------


def test_a_page_too_large_at_300_dpi_is_rendered_lower_and_read(
    tmp_path: Path,
    settings: Settings,
    read_file: ReadFile,
    receipts: list[tuple[GroundTruthPage, Image.Image]],
) -> None:
    # The page: a receipt scan saved as a PDF page at 17 dpi, 25.8 x 59.1 inches, is
    # 7748x17718 = 137 million pixels at 300 dpi, over decode.max_pixels (100 million). It is
    # rendered at 256 dpi, 6611x15120 = 99.96 million pixels (measured: 16-24 s and a 1.1 GiB
    # peak for the three pages on 2 busy cores, most of it this page).
    (first, first_image), (second, second_image), (third, third_image) = receipts
    path = tmp_path / "made with Pillow.pdf"
    path.write_bytes(pdf_of((first_image, 300), (second_image, 17), (third_image, 300)))
    decode = settings.decode
    width_pt, height_pt = second_image.width / 17 * 72, second_image.height / 17 * 72
    at_300 = rendered_size(width_pt, height_pt, decode.pdf_dpi)
    assert at_300[0] * at_300[1] > decode.max_pixels  # the page does not fit at 300 dpi

    result = read_file(path)

    assert result.outcome == "done"  # a lower resolution is not an error
    assert [page.dpi for page in result.pages][::2] == [300, 300]
    lowered = result.pages[1]
    assert lowered.dpi is not None and decode.min_pdf_dpi <= lowered.dpi < decode.pdf_dpi
    assert lowered.dpi == pdf_page_dpi(width_pt, height_pt, decode.max_pixels, decode.pdf_dpi)
    assert lowered.width * lowered.height <= decode.max_pixels
    one_more = rendered_size(width_pt, height_pt, lowered.dpi + 1)
    assert one_more[0] * one_more[1] > decode.max_pixels  # the highest dpi that fits
    [warning] = lowered.warnings
    assert f"page 2 rendered at {lowered.dpi} dpi instead of 300" in warning, warning
    assert "decode.max_pixels" in warning, warning
    assert result.pages[0].warnings == [] and result.pages[2].warnings == []
    records = [first, second, third]
    for page, record in zip(result.pages, records, strict=True):
        assert_reads(page, record, records)
    assert result.text.split("\f") == [page.text for page in result.pages]


# --- a page that fails alone ---------------------------------------------------------------------


def test_a_page_needing_less_than_min_pdf_dpi_is_that_pages_error(
    tmp_path: Path,
    settings: Settings,
    read_file: ReadFile,
    receipts: list[tuple[GroundTruthPage, Image.Image]],
) -> None:
    # The middle receipt as a 5 dpi page: 87.8 x 200.8 inches, still 397 million pixels at the
    # 150 dpi floor. Nothing of it is rendered; the other pages are read.
    (first, first_image), (_, second_image), (third, third_image) = receipts
    path = tmp_path / "poster in the middle.pdf"
    path.write_bytes(pdf_of((first_image, 300), (second_image, 5), (third_image, 300)))

    result = read_file(path)

    assert result.outcome == "partial"
    failed = result.pages[1]
    assert_failed(
        failed,
        "InputTooLargeError",
        "poster in the middle.pdf",
        "page 2 is 6322 x 14458 pt (87.8 x 200.8 in)",
        "150 dpi",
        "decode.min_pdf_dpi",
        "decode.max_pixels",
    )
    assert failed.error is not None
    width_pt, height_pt = second_image.width / 5 * 72, second_image.height / 5 * 72
    fits_at = pdf_page_dpi(width_pt, height_pt, settings.decode.max_pixels, 300)
    assert 0 < fits_at < 150 and f"it fits at {fits_at} dpi" in failed.error.message
    assert (failed.width, failed.height, failed.dpi) == (0, 0, None)  # never rendered
    records = [first, third]
    assert_reads(result.pages[0], first, records)
    assert_reads(result.pages[2], third, records)
    assert [page.index for page in result.pages] == [0, 1, 2]

    # An empty page between form feeds keeps the page numbers of the TXT aligned.
    assert result.text == f"{result.pages[0].text}\f\f{result.pages[2].text}"
    txt = TxtWriter().render(result, path).decode("utf-8")
    assert txt.split("\f") == [result.pages[0].text, "", result.pages[2].text + "\n"]
    record = json.loads(result_json(result))
    assert record["outcome"] == "partial"
    assert record["pages"][1]["error"]["type"] == "InputTooLargeError"
    assert record["pages"][0]["error"] is None and record["pages"][0]["dpi"] == 300


def zero_page_object(data: bytes, page: int) -> bytes:
    """``data`` with the page dictionary of ``page`` (0-based) overwritten by NUL bytes.

    The bytes keep their length, so every other object stays where the cross-reference table
    says: only that page is damaged, as by a bad disk block.
    """
    kids = re.search(rb"/Kids \[([^\]]*)\]", data)
    assert kids is not None
    numbers = re.findall(rb"(\d+) 0 R", kids[1])
    start = re.search(rb"(?<!\d)" + numbers[page] + rb" 0 obj", data)
    assert start is not None
    end = data.index(b"endobj", start.start()) + len(b"endobj")
    return data[: start.start()] + b"\0" * (end - start.start()) + data[end:]


@pytest.fixture
def damaged_pdf(receipts: list[tuple[GroundTruthPage, Image.Image]]) -> bytes:
    """The three receipts saved as one PDF by Pillow, the second page's object zeroed."""
    data = io.BytesIO()
    first, *others = [image for _, image in receipts]
    first.save(data, format="PDF", save_all=True, append_images=others, resolution=300)
    return zero_page_object(data.getvalue(), 1)


def test_a_corrupt_middle_pdf_page_is_that_pages_error(
    tmp_path: Path,
    read_file: ReadFile,
    receipts: list[tuple[GroundTruthPage, Image.Image]],
    damaged_pdf: bytes,
) -> None:
    # What PDFium does with damage (pypdfium2 5.x, PDFium 7.x): garbage or zeros in a page's
    # JPEG image stream render that page blank, with no error to catch. A page object that is
    # not a dictionary (here: its bytes zeroed) fails FPDF_GetPageSizeByIndexF and
    # FPDF_LoadPage: that page alone cannot be read, and opening the file still works.
    (first, _), _, (third, _) = receipts
    path = tmp_path / "damaged.pdf"
    path.write_bytes(damaged_pdf)

    result = read_file(path)

    assert result.outcome == "partial" and len(result.pages) == 3
    assert_failed(result.pages[1], "CorruptInputError", "damaged.pdf", "page 2", "export it again")
    assert (result.pages[1].width, result.pages[1].height, result.pages[1].dpi) == (0, 0, None)
    records = [first, third]
    assert_reads(result.pages[0], first, records)
    assert_reads(result.pages[2], third, records)
    assert result.text.split("\f") == [result.pages[0].text, "", result.pages[2].text]


def truncated_frame_tiff(images: list[Image.Image], *frames: int) -> bytes:
    """An uncompressed multi-page TIFF whose ``frames`` (0-based) have their data cut off.

    Pillow writes each frame of these receipts as one strip; that strip's offset (the frame's
    StripOffsets entry, tag 273, one LONG held in the entry) is moved to 1000 bytes before the
    end of the file, so its 1.3 MB run past the end as in a truncated file. The other frames'
    headers and data are untouched: seeking to a later frame still works.
    """
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=True, append_images=images[1:])
    data = buffer.getvalue()
    for frame in frames:
        with Image.open(io.BytesIO(data)) as tiff:
            tiff.seek(frame)
            [offset] = tiff.tag_v2[273]
        entry = struct.pack("<HHII", 273, 4, 1, offset)
        assert data.count(entry) == 1
        data = data.replace(entry, struct.pack("<HHII", 273, 4, 1, len(data) - 1000))
    return data


def test_a_truncated_middle_tiff_frame_is_that_pages_error(
    tmp_path: Path,
    read_file: ReadFile,
    receipts: list[tuple[GroundTruthPage, Image.Image]],
) -> None:
    # Pillow raises OSError "image file is truncated" loading frame 2; frame 3 loads after it.
    (first, _), (_, second_image), (third, _) = receipts
    path = tmp_path / "scan.tif"
    path.write_bytes(truncated_frame_tiff([image for _, image in receipts], 1))

    result = read_file(path)

    assert result.outcome == "partial" and len(result.pages) == 3
    assert_failed(
        result.pages[1], "CorruptInputError", "scan.tif", "page 2 of 3", "image file is truncated"
    )
    # The frame's size is known from its header; images have no dpi.
    assert (result.pages[1].width, result.pages[1].height) == second_image.size
    assert [page.dpi for page in result.pages] == [None, None, None]
    records = [first, third]
    assert_reads(result.pages[0], first, records)
    assert_reads(result.pages[2], third, records)
    assert result.text.split("\f") == [result.pages[0].text, "", result.pages[2].text]


class FailingEngine:
    """The real engine, except that reading the pages at ``indices`` raises ``error``."""

    def __init__(self, engine: Engine, error: BaseException, indices: set[int]) -> None:
        self.engine = engine
        self.error = error
        self.indices = indices
        self.models = engine.models

    def ocr(self, image: np.ndarray, index: int = 0, rotation: int = 0) -> PageOcr:
        if index in self.indices:
            raise self.error
        return self.engine.ocr(image, index=index, rotation=rotation)


def test_an_engine_error_on_one_page_is_that_pages_error(
    engine: Engine,
    read_file: ReadFile,
    receipts: list[tuple[GroundTruthPage, Image.Image]],
    two_pdf: Path,
) -> None:
    (first, _), (_, second_image), _ = receipts
    failing = FailingEngine(engine, RuntimeError("ONNX Runtime: out of workspace"), {1})

    result = read_file(two_pdf, failing)

    assert result.outcome == "partial"
    assert_failed(
        result.pages[1],
        "RuntimeError",
        "two.pdf: page 2 of 2 could not be read",
        "ONNX Runtime: out of workspace",
    )
    # Decoded before the engine failed: its size and dpi are known.
    assert (result.pages[1].width, result.pages[1].height) == rendered_size(
        second_image.width / 300 * 72, second_image.height / 300 * 72, 300
    )
    assert result.pages[1].dpi == 300
    assert_reads(result.pages[0], first, [first])


# --- when no page can be read, or the error is not the page's -------------------------------------


def test_when_every_page_fails_the_whole_file_fails(
    tmp_path: Path,
    settings: Settings,
    engine: Engine,
    limits: DecodeLimits,
    receipts: list[tuple[GroundTruthPage, Image.Image]],
    two_pdf: Path,
) -> None:
    receipt = receipts[0][1]

    # Every page under the dpi floor: refused on opening, nothing rendered.
    posters = tmp_path / "posters.pdf"
    posters.write_bytes(pdf_of((receipt, 5), (receipt, 4)))
    with pytest.raises(InputTooLargeError, match=r"posters\.pdf: page 1 is .*decode\.min_pdf_dpi"):
        ocr_file(posters, engine, limits, posters.name)

    # Every frame's data cut off: each is tried, then the first page's error fails the file.
    both = tmp_path / "both cut.tiff"
    both.write_bytes(truncated_frame_tiff([receipt, receipt], 0, 1))
    with pytest.raises(CorruptInputError, match=r"both cut\.tiff: page 1 of 2 .*truncated"):
        ocr_file(both, engine, limits, both.name)

    # A single image over decode.max_pixels: images are not decoded smaller.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((SROIE_DEV / "images" / "000.jpg").read_bytes())
    small = decode_limits(settings.decode.model_copy(update={"max_pixels": 10_000}))
    with pytest.raises(InputTooLargeError, match=r"photo\.jpg: page 1 is .*decode\.max_pixels"):
        ocr_file(photo, engine, small, photo.name)

    # The engine failing on every page: its own error, as before pages could fail alone.
    failing = FailingEngine(engine, RuntimeError("engine broken"), {0, 1})
    with pytest.raises(RuntimeError, match="engine broken"):
        ocr_file(two_pdf, cast(Engine, failing), limits, two_pdf.name)


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        ModelError("detector.onnx: damaged"),
        JobStoppedError("stopped"),
    ],
    ids=["MemoryError", "ModelError", "JobStoppedError"],
)
def test_errors_that_are_not_the_pages_end_the_job(
    engine: Engine, limits: DecodeLimits, two_pdf: Path, error: Exception
) -> None:
    # Out of memory, a damaged model or a stop is not the page's fault: never a page record.
    failing = FailingEngine(engine, error, {0})
    with pytest.raises(type(error)):
        ocr_file(two_pdf, cast(Engine, failing), limits, two_pdf.name)


# ----------------------------------------------------------------- the daemon: partial everywhere


def test_the_daemon_archives_a_partial_document_and_reports_its_missing_page(
    tmp_path: Path, receipts: list[tuple[GroundTruthPage, Image.Image]], damaged_pdf: bytes
) -> None:
    """``run`` on a PDF with a corrupt middle page: partial in the result, TXT, audit, summary,
    error report and exit code; the original archived like a success."""
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    (inbox / "half.pdf").write_bytes(damaged_pdf)
    env = {"OCR_PIPELINE_DAEMON__SETTLE_SECONDS": "0", "OCR_PIPELINE_DAEMON__WORKERS": "1"}

    finished = run_cli(["run", inbox, outbox], env=env, timeout=600)

    assert finished.returncode == 1, finished.stderr[-2000:]
    assert "1 partial" in finished.stdout and "page 2 of 3" in finished.stdout, finished.stdout
    result = DocumentResult.model_validate_json((outbox / "half.json").read_bytes())
    assert result.outcome == "partial"
    records = [receipts[0][0], receipts[2][0]]
    assert_reads(result.pages[0], records[0], records)
    assert_failed(result.pages[1], "CorruptInputError", "half.pdf", "page 2")
    assert_reads(result.pages[2], records[1], records)
    text = (outbox / "half.txt").read_text(encoding="utf-8")
    assert text.count("\f") == 2 and "\f\f" in text  # page numbers stay aligned
    assert (tmp_path / "archive" / "half.pdf").read_bytes() == damaged_pdf
    report = json.loads((tmp_path / "failed" / "half.pdf.error.json").read_text("utf-8"))
    assert report["failed_pages"] == [2] and report["result"] == "half.json"
    assert not (tmp_path / "failed" / "half.pdf").exists()
    audit = [
        json.loads(line)
        for line in (tmp_path / "logs" / "audit.jsonl").read_text("utf-8").splitlines()
    ]
    terminal = [r for r in audit if r["event"] in {"done", "partial", "failed", "duplicate"}]
    assert [(r["event"], r["failed_pages"]) for r in terminal] == [("partial", [2])]
