"""One job: one input file through decoding and the engine into a :class:`DocumentResult`.

Pure enough to call in-process in tests: it reads the input file and nothing else; writing
results, moving files and retrying belong to the caller (the daemon). Pages are decoded and
OCRed one at a time, so a job holds about one page's pixels whatever its page count, and a job
can be stopped between pages. A page that cannot be decoded or read becomes a page record with
its error, the other pages are read as usual, and the result's outcome is ``partial``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ocr_pipeline import __version__
from ocr_pipeline.correct import Corrector, correct_page
from ocr_pipeline.documents import (
    DecodedPage,
    DecodeLimits,
    check_byte_limit,
    media_type_for,
    open_document,
)
from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.quality import measure_page, quality_warnings
from ocr_pipeline.errors import (
    InputError,
    JobStoppedError,
    OcrPipelineError,
    SymlinkRefusedError,
    UnreadableInputError,
)
from ocr_pipeline.results import (
    DocumentResult,
    Page,
    PageError,
    PageQualityRecord,
    Source,
    utc_now,
)
from ocr_pipeline.settings import DecodeSettings, QualitySettings, Settings

_READ_CHUNK = 1024 * 1024


def open_input(path: Path, name: str, follow_symlinks: bool = False) -> tuple[int, os.stat_result]:
    """Open an input file for reading, safely: a regular file only, never blocking.

    Opened once, without following a symlink (unless ``follow_symlinks``) and without blocking
    (a FIFO dropped in the inbox must not hang the caller); the checks are made on the open
    descriptor, so the file cannot be swapped between check and read.

    Args:
        path: the input file.
        name: how messages call it (the file name, or its inbox-relative path).
        follow_symlinks: read a symlink's target (setting ``daemon.follow_symlinks``); when
            False a symlink is refused.

    Returns:
        The open descriptor (the caller closes it) and its ``fstat``.

    Raises:
        SymlinkRefusedError: ``path`` is a symlink and ``follow_symlinks`` is False.
        UnreadableInputError: no read permission, or not a regular file (a FIFO, a device, a
            directory, a symlink loop).
        OSError: any other failure to open (the file vanished: ``FileNotFoundError``).

    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _open_error(path, name, exc, follow_symlinks) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnreadableInputError(
            f"{name} is not a regular file ({_file_kind(info.st_mode)}); the daemon reads "
            "only regular files: drop the document itself as a regular file"
        )
    return fd, info


def read_input(path: Path, limits: DecodeLimits, follow_symlinks: bool = False) -> bytes:
    """Read a file's bytes safely (:func:`open_input`), refused before reading when too large.

    At most ``limits.max_bytes`` bytes are read, even if the file grows meanwhile.

    Args:
        path: the input file.
        limits: ``limits.max_bytes`` is the largest file read, bytes.
        follow_symlinks: read a symlink's target (setting ``daemon.follow_symlinks``).

    Returns:
        The file's bytes.

    Raises:
        SymlinkRefusedError: ``path`` is a symlink and ``follow_symlinks`` is False.
        UnreadableInputError: no read permission, or not a regular file.
        InputTooLargeError: the file is larger than ``limits.max_bytes``.
        OSError: any other failure to open or read (the file vanished: ``FileNotFoundError``).

    """
    name = path.name
    fd, info = open_input(path, name, follow_symlinks)
    try:
        check_byte_limit(name, info.st_size, limits)
        chunks: list[bytes] = []
        size = 0
        while size <= limits.max_bytes:
            chunk = os.read(fd, min(_READ_CHUNK, limits.max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        check_byte_limit(name, size, limits)  # it grew while being read
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_error(path: Path, name: str, exc: OSError, follow_symlinks: bool) -> Exception:
    """The error to raise for ``exc`` from opening ``path`` (``exc`` itself if not ours)."""
    if exc.errno == errno.ELOOP and not follow_symlinks and path.is_symlink():
        return SymlinkRefusedError(
            f"{name} is a symlink; the daemon does not follow symlinks (setting "
            "daemon.follow_symlinks = false): drop a copy of the file itself, or set "
            "daemon.follow_symlinks = true"
        )
    if exc.errno == errno.ELOOP:
        return UnreadableInputError(
            f"{name}: too many levels of symlinks (a symlink loop); drop the file itself"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UnreadableInputError(
            f"{name}: permission denied; give the daemon's user read permission on the file "
            "(for example chmod a+r) and drop it again"
        )
    return exc


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def ocr_file(
    path: Path,
    engine: Engine,
    limits: DecodeLimits,
    relative_path: str,
    corrector: Corrector | None = None,
    sha256: str | None = None,
    *,
    follow_symlinks: bool = False,
    should_stop: Callable[[], bool] | None = None,
    quality: QualitySettings | None = None,
) -> DocumentResult:
    """OCR one file page by page, correcting each page's lines; a bad page fails only itself.

    Every limit is checked before any page is decoded (:func:`~ocr_pipeline.documents.
    open_document`); then each page is decoded, OCRed and dropped before the next is decoded,
    so the job holds about one page's pixels at a time (an A4 page at 300 dpi is
    2480x3508x3 bytes, 26 MB). PDF pages are rendered at ``limits.pdf_dpi``, or lower (not
    below ``limits.min_pdf_dpi``) when that would pass ``limits.max_pixels``: the page record
    carries the dpi used and a warning. Each page read is measured for input quality (text
    height, contrast, sharpness: :mod:`ocr_pipeline.engine.quality`); a page below a threshold
    gets a warning after the decoder's, and never fails for it.

    A page that cannot be decoded or rendered (corrupt, truncated, over ``decode.max_pixels``
    at every allowed size), or whose OCR raises, becomes a page record with ``error`` set
    (type and message naming the file and page), no lines and text ``""``; the other pages are
    read as usual and the result's ``outcome`` is ``partial``. ``MemoryError`` and the
    package's own errors that are not the file's (``JobStoppedError``, ``ModelError``, ...)
    are never a page's error: they end the job.

    Args:
        path: the input file.
        engine: a ready engine.
        limits: decoding limits (bytes, pages, pixels per page and per file, PDF resolution).
        relative_path: the path recorded in ``source.relative_path`` (relative to the inbox).
        corrector: spell-correction; ``None`` or an empty lexicon leaves the text as read.
        sha256: hex sha256 of the file when the caller has it already (the daemon hashes each
            claim once, for duplicate detection); ``None`` hashes the bytes read here.
        follow_symlinks: read a symlink's target instead of refusing it (see
            :func:`read_input`).
        should_stop: asked before each page after the first; when it answers True the job
            stops there (an executor closing on SIGTERM). ``None``: never stop.
        quality: the input quality thresholds (settings section ``quality``); ``None``: the
            defaults.

    Returns:
        The result, pages in document order, ``text`` pages joined by form feeds (a failed
        page is an empty page between them); ``outcome`` ``partial`` when a page has an error,
        else ``done``.

    Raises:
        InputError: the file is unsupported, corrupt, over a limit, a refused symlink, or
            unreadable (message names the file and what to do); or no page of it could be
            read (the first page's error).
        JobStoppedError: ``should_stop`` answered True; the message names the file and the
            page reached. Nothing of the document is kept.
        OSError: the file cannot be read for another reason (it vanished).
        Exception: whatever the engine raised on the first page, when it raised on every page.

    """
    started = time.perf_counter()
    media_type = media_type_for(path.name)
    data = read_input(path, limits, follow_symlinks=follow_symlinks)
    timings = {"decode": 0.0, "correct": 0.0, "quality": 0.0}
    thresholds = quality if quality is not None else QualitySettings()
    page_results: list[Page] = []
    failed = 0
    # The first page's error, kept while no page has been read: raised if none can be. Dropped
    # at the first page read (its traceback may hold that page's pixels).
    first_failure: Exception | None = None
    decode_start = time.perf_counter()
    with open_document(data, path.name, limits) as document:
        timings["decode"] += (time.perf_counter() - decode_start) * 1000.0
        total = document.page_count
        for index in range(total):
            if index and should_stop is not None and should_stop():
                raise JobStoppedError(
                    f"{path.name}: stopped before page {index + 1} of {total} ({index} read) "
                    "because the worker is shutting down; nothing of it was kept, the file is "
                    "read again from its first page at the next start"
                )
            decode_start = time.perf_counter()
            try:
                page = document.page(index)
            except Exception as exc:
                _raise_if_not_the_page(exc)
                failed += 1
                if index == 0:
                    first_failure = exc
                plan = document.plans[index]
                page_results.append(
                    _failed_page(
                        exc,
                        path.name,
                        index,
                        total,
                        (plan.width, plan.height),
                        plan.dpi,
                        warnings=plan.warnings,
                    )
                )
                continue
            finally:
                timings["decode"] += (time.perf_counter() - decode_start) * 1000.0
            try:
                page_result = _read_page(page, engine, corrector, timings, thresholds)
                first_failure = None
            except Exception as exc:
                _raise_if_not_the_page(exc)
                failed += 1
                if index == 0:
                    first_failure = exc
                height, width = page.image.shape[:2]
                page_result = _failed_page(
                    exc,
                    path.name,
                    index,
                    total,
                    (width, height),
                    page.dpi,
                    rotation=page.rotation,
                    warnings=page.warnings,
                )
            del page  # the next page is decoded with this one's pixels freed
            page_results.append(page_result)
    if first_failure is not None and failed == total:
        raise first_failure  # nothing to deliver: the file fails as a whole
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
        outcome="partial" if failed else "done",
        models=engine.models,
        timings_ms={k: round(v, 1) for k, v in timings.items()},
        created_at=utc_now(),
        pipeline_version=__version__,
    )


def _read_page(
    page: DecodedPage,
    engine: Engine,
    corrector: Corrector | None,
    timings: dict[str, float],
    quality: QualitySettings,
) -> Page:
    """OCR, correct and measure one decoded page.

    Its record carries the page's dpi, the decoder's warnings then the input quality warnings,
    and (with ``quality.enabled``) the measured quality.

    Adds the engine's stage timings, the correction's and the quality measure's, milliseconds,
    to ``timings``.

    Raises:
        Exception: whatever the engine or the corrector raised on this page.

    """
    page_ocr = engine.ocr(page.image, index=page.index, rotation=page.rotation)
    for stage, ms in page_ocr.timings_ms.items():
        timings[stage] = timings.get(stage, 0.0) + ms
    correct_start = time.perf_counter()
    page_result = page_ocr.page
    if corrector is not None:
        page_result = correct_page(page_result, corrector)
    timings["correct"] += (time.perf_counter() - correct_start) * 1000.0
    update: dict[str, object] = {"dpi": page.dpi, "warnings": list(page.warnings)}
    if quality.enabled:
        quality_start = time.perf_counter()
        boxes = np.array([line.box for line in page_result.lines], dtype=np.float64)
        measured = measure_page(page.image, boxes.reshape(-1, 4, 2))
        update["quality"] = PageQualityRecord(**asdict(measured))
        update["warnings"] = [*page.warnings, *quality_warnings(measured, quality)]
        timings["quality"] += (time.perf_counter() - quality_start) * 1000.0
    return page_result.model_copy(update=update)


def _raise_if_not_the_page(exc: Exception) -> None:
    """Re-raise an error that is not one page's fault: out of memory, or the package's own.

    ``MemoryError`` ends the job (the next page would fail as well); of the package's errors
    only :class:`InputError` (the file's content) is a page's, not ``JobStoppedError``,
    ``ModelError`` or ``ConfigError``. ``KeyboardInterrupt`` and ``SystemExit`` are not
    ``Exception`` and never reach here.
    """
    if isinstance(exc, MemoryError) or (
        isinstance(exc, OcrPipelineError) and not isinstance(exc, InputError)
    ):
        raise exc


def _failed_page(
    exc: Exception,
    name: str,
    index: int,
    total: int,
    size: tuple[int, int],
    dpi: int | None,
    *,
    rotation: int = 0,
    warnings: tuple[str, ...] = (),
) -> Page:
    """The record of a page that could not be read: no lines, text ``""``, and its error.

    Args:
        exc: what the decoder or the engine raised on the page.
        name: the file name.
        index: 0-based page index.
        total: pages in the document.
        size: ``(width, height)`` of the page in pixels as known (0 if not known).
        dpi: the PDF resolution the page was (or would have been) rendered at, else ``None``.
        rotation: clockwise degrees the decoder turned the page (EXIF, PDF ``/Rotate``).
        warnings: the decoder's warnings for the page (rendered below ``decode.pdf_dpi``).

    """
    if isinstance(exc, InputError):
        message = str(exc)  # names the file and page, and what to do
    else:
        message = (
            f"{name}: page {index + 1} of {total} could not be read ({type(exc).__name__}: "
            f"{exc}); the other pages are read as usual. Process the file again; if this page "
            "fails again, re-scan or re-export it, or report the error with the file"
        )
    return Page(
        index=index,
        width=size[0],
        height=size[1],
        rotation=rotation,
        lines=[],
        blocks=[],
        text="",
        dpi=dpi,
        warnings=list(warnings),
        error=PageError(type=type(exc).__name__, message=message),
    )


def decode_limits(settings: DecodeSettings) -> DecodeLimits:
    """The decoding limits of the ``decode`` settings."""
    return DecodeLimits(
        max_bytes=settings.max_bytes,
        max_pixels=settings.max_pixels,
        pdf_dpi=settings.pdf_dpi,
        max_pages=settings.max_pages,
        max_total_pixels=settings.max_total_pixels,
        min_pdf_dpi=settings.min_pdf_dpi,
    )


def read(
    path: str | Path, settings: Settings | None = None, engine: Engine | None = None
) -> DocumentResult:
    """OCR one file, every page, with spell-correction as configured: the library entry point.

    ``ocr_pipeline.read("scan.pdf").text`` needs no folders, daemon or configuration file. It
    loads the models for each call unless ``engine`` is given: to read many files, build
    ``Engine.from_settings(settings)`` once and pass it. A symlink is followed (the caller
    named the path; ``daemon.follow_symlinks`` is the daemon's inbox policy), but only a
    regular file is read.

    Args:
        path: a JPEG, PNG, BMP, TIFF, WebP or PDF file.
        settings: the settings (default: defaults < ``$OCR_PIPELINE_CONFIG`` < environment).
        engine: a loaded engine to reuse (default: one built from ``settings``).

    Returns:
        The result, as written to ``<stem>.json`` by the daemon (``source.relative_path`` is
        the file name).

    Raises:
        InputError: the file is unsupported, corrupt, over a limit or unreadable (no read
            permission, not a regular file).
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
        follow_symlinks=True,
        quality=chosen.quality,
    )
