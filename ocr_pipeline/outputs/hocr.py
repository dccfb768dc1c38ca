"""The hocr writer: hOCR 1.2 (XHTML) (being written: issue 19)."""

from __future__ import annotations

from pathlib import Path

from ocr_pipeline.results import DocumentResult


class HocrWriter:
    """hOCR 1.2 (XHTML)."""

    name = "hocr"
    suffix = ".hocr"
    media_type = "application/xhtml+xml"

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The file's bytes."""
        raise NotImplementedError("the hocr writer is not written yet")
