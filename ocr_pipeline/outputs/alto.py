"""The alto writer: ALTO 4 XML (being written: issue 19)."""

from __future__ import annotations

from pathlib import Path

from ocr_pipeline.results import DocumentResult


class AltoWriter:
    """ALTO 4 XML."""

    name = "alto"
    suffix = ".alto.xml"
    media_type = "application/xml"

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The file's bytes."""
        raise NotImplementedError("the alto writer is not written yet")
