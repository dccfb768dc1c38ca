"""The OCR engine: pure numpy/OpenCV/ONNX Runtime code, no files, folders or processes."""

from __future__ import annotations

from ocr_pipeline.engine.pipeline import Engine, PageOcr

__all__ = ["Engine", "PageOcr"]
