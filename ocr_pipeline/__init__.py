"""ocr-pipeline: a file-watching OCR daemon on ONNX Runtime.

Importing the package configures nothing (no logging, no model sessions); the entry point does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ocr-pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
