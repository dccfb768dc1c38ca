"""The pdf writer: a searchable PDF, the page images with an invisible text layer."""

from __future__ import annotations

from pathlib import Path

from ocr_pipeline.results import DocumentResult


class PdfWriter:
    """a searchable PDF (the page images with an invisible text layer)."""

    name = "pdf"
    suffix = ".pdf"
    media_type = "application/pdf"

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The file's bytes."""
        raise NotImplementedError("the pdf writer is not written yet")
