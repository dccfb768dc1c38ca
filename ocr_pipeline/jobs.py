"""One job: one input file through decoding and the engine into a :class:`DocumentResult`.

Pure enough to call in-process in tests: it reads the input file and nothing else; writing
results, moving files and retrying belong to the caller (the daemon).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ocr_pipeline import __version__
from ocr_pipeline.correct import Corrector, correct_page
from ocr_pipeline.documents import (
    DecodeLimits,
    check_byte_limit,
    decode_document,
    media_type_for,
)
from ocr_pipeline.engine import Engine
from ocr_pipeline.results import DocumentResult, Source, utc_now
from ocr_pipeline.settings import DecodeSettings, Settings


def read_input(path: Path, limits: DecodeLimits) -> bytes:
    """Read a file's bytes, refusing it before reading when it exceeds the byte limit.

    Raises:
        InputTooLargeError: the file is larger than ``limits.max_bytes``.
        OSError: the file cannot be read.

    """
    check_byte_limit(path.name, path.stat().st_size, limits)
    return path.read_bytes()


def ocr_file(
    path: Path,
    engine: Engine,
    limits: DecodeLimits,
    relative_path: str,
    corrector: Corrector | None = None,
    sha256: str | None = None,
) -> DocumentResult:
    """OCR every page of one file, then correct its lines.

    Args:
        path: the input file.
        engine: a ready engine.
        limits: decoding limits (bytes, pixels, PDF resolution).
        relative_path: the path recorded in ``source.relative_path`` (relative to the inbox).
        corrector: spell-correction; ``None`` or an empty lexicon leaves the text as read.
        sha256: hex sha256 of the file when the caller has it already (the daemon hashes each
            claim once, for duplicate detection); ``None`` hashes the bytes read here.

    Returns:
        The result, pages in document order, ``text`` pages joined by form feeds.

    Raises:
        InputError: the file is unsupported, corrupt or over a limit (message names the file).
        OSError: the file cannot be read.

    """
    started = time.perf_counter()
    media_type = media_type_for(path.name)
    data = read_input(path, limits)
    decode_start = time.perf_counter()
    pages = decode_document(data, path.name, limits)
    timings = {"decode": (time.perf_counter() - decode_start) * 1000.0}
    page_results = []
    timings["correct"] = 0.0
    for page in pages:
        page_ocr = engine.ocr(page.image, index=page.index, rotation=page.rotation)
        for stage, ms in page_ocr.timings_ms.items():
            timings[stage] = timings.get(stage, 0.0) + ms
        correct_start = time.perf_counter()
        page_result = page_ocr.page
        if corrector is not None:
            page_result = correct_page(page_result, corrector)
        timings["correct"] += (time.perf_counter() - correct_start) * 1000.0
        page_results.append(page_result)
    timings["total"] = (time.perf_counter() - started) * 1000.0
    source = Source(
        name=path.name,
        relative_path=relative_path,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        media_type=media_type,
    )
    return DocumentResult(
        source=source,
        pages=page_results,
        text="\f".join(p.text for p in page_results),
        models=engine.models,
        timings_ms={k: round(v, 1) for k, v in timings.items()},
        created_at=utc_now(),
        pipeline_version=__version__,
    )


def decode_limits(settings: DecodeSettings) -> DecodeLimits:
    """The decoding limits of the ``decode`` settings."""
    return DecodeLimits(
        max_bytes=settings.max_bytes, max_pixels=settings.max_pixels, pdf_dpi=settings.pdf_dpi
    )


def read(
    path: str | Path, settings: Settings | None = None, engine: Engine | None = None
) -> DocumentResult:
    """OCR one file, every page, with spell-correction as configured: the library entry point.

    ``ocr_pipeline.read("scan.pdf").text`` needs no folders, daemon or configuration file. It
    loads the models for each call unless ``engine`` is given: to read many files, build
    ``Engine.from_settings(settings)`` once and pass it.

    Args:
        path: a JPEG, PNG, BMP, TIFF, WebP or PDF file.
        settings: the settings (default: defaults < ``$OCR_PIPELINE_CONFIG`` < environment).
        engine: a loaded engine to reuse (default: one built from ``settings``).

    Returns:
        The result, as written to ``<stem>.json`` by the daemon (``source.relative_path`` is
        the file name).

    Raises:
        InputError: the file is unsupported, corrupt or over a limit.
        ModelError: a model is missing or corrupt (run ``ocr-pipeline models fetch``).
        ConfigError: the settings or a lexicon are invalid.
        OSError: the file cannot be read.

    """
    from ocr_pipeline.correct import corrector_from_settings
    from ocr_pipeline.settings import load_settings

    chosen = settings if settings is not None else load_settings()
    file = Path(path)
    return ocr_file(
        file,
        engine if engine is not None else Engine.from_settings(chosen),
        decode_limits(chosen.decode),
        file.name,
        corrector_from_settings(chosen.correct),
    )
