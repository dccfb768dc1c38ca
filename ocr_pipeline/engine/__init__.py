"""The OCR engine: numpy/OpenCV code around an inference backend; no files, folders or processes.

Stages hold an :class:`~ocr_pipeline.engine.backend.InferenceBackend` each (ONNX Runtime today,
:mod:`ocr_pipeline.engine.onnxruntime_backend`), loaded by
:func:`~ocr_pipeline.engine.backend.load_model`.
"""

from __future__ import annotations

from ocr_pipeline.engine.pipeline import Engine, PageOcr

__all__ = ["Engine", "PageOcr"]
