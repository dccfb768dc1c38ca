"""ocr-pipeline: a file-watching OCR daemon on ONNX Runtime, and an OCR library.

Importing the package configures nothing (no logging, no model sessions); the entry point does.
Library use: ``ocr_pipeline.read("scan.jpg")`` returns a :class:`~ocr_pipeline.results.
DocumentResult`; ``ocr_pipeline.engine.Engine.from_settings(settings).ocr(image)`` reads one
page image.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

try:
    __version__ = version("ocr-pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from ocr_pipeline.engine import Engine
    from ocr_pipeline.results import DocumentResult
    from ocr_pipeline.settings import Settings


def read(
    path: str | Path, settings: Settings | None = None, engine: Engine | None = None
) -> DocumentResult:
    """OCR one file (every page); see :func:`ocr_pipeline.jobs.read`, imported on first use."""
    from ocr_pipeline.jobs import read as read_document

    return read_document(path, settings, engine)


__all__ = ["__version__", "read"]
