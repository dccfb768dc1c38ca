"""Result writers: one per output format, registered by name, all written atomically.

The daemon writes the formats listed in the ``outputs`` setting (``--output``) for every
finished input, through :func:`write_outputs`. Each writer turns a :class:`DocumentResult` (and,
for formats that embed the page images, the original file) into bytes; the bytes reach the
outbox only through :func:`ocr_pipeline.atomic.atomic_write_bytes`. The JSON result is the
record: duplicate detection and the results index read it back, so it is always written, and
written last, so a program that waits for ``<stem>.json`` finds every other format already there.

Formats that embed the original's pages (``reads_original``: the searchable PDF) are rendered
in the worker that read the file (:func:`render_in_worker`), where the pages were just decoded
and the CPU time is a worker's, not the daemon's single main process's; the bytes come back with
the job's outcome and :func:`write_outputs` only writes them. The light formats render at write
time from the result.

A format is one class with ``name``, ``suffix``, ``media_type``, ``reads_original`` and
``render``, added to
:data:`WRITERS` (and its name to :data:`ocr_pipeline.settings.OutputName`); the archival
formats (searchable PDF, hOCR, ALTO) live in :mod:`ocr_pipeline.outputs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.errors import InputError, OutputRenderError
from ocr_pipeline.outputs.alto import AltoWriter
from ocr_pipeline.outputs.hocr import HocrWriter
from ocr_pipeline.outputs.pdf import PdfWriter
from ocr_pipeline.results import DocumentResult, result_json

RECORD_FORMAT = "json"
"""The writer whose file is the result record (read back by duplicate detection)."""


class ResultWriter(Protocol):
    """Turns one document's result into the bytes of one output file."""

    name: str
    """Name in the ``outputs`` setting, e.g. ``json``."""
    suffix: str
    """File name suffix, e.g. ``.json``: the output is ``<stem><suffix>``."""
    media_type: str
    """Media type the HTTP API serves the file as, e.g. ``application/json``."""
    reads_original: bool
    """Whether :meth:`render` reads the original file (to embed its pages): rendered in the
    worker, :func:`render_in_worker`."""

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """The file's bytes.

        Args:
            result: the document's OCR result.
            original: the input file as claimed (readable until the result is written), for
                formats that embed the page images.

        Raises:
            OSError: ``original`` cannot be read (formats that read it).

        """
        ...


class JsonWriter:
    """The result record, UTF-8 JSON, non-ASCII kept, 2-space indent (``ocr-pipeline schema``)."""

    name = "json"
    suffix = ".json"
    media_type = "application/json"
    reads_original = False

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """Serialise ``result`` by alias (``from`` in corrections), as the schema says."""
        return result_json(result)


class TxtWriter:
    """The text for people: lines in reading order, pages separated by form feeds, UTF-8."""

    name = "txt"
    suffix = ".txt"
    media_type = "text/plain; charset=utf-8"
    reads_original = False

    def render(self, result: DocumentResult, original: Path) -> bytes:
        """``result.text`` and a final newline."""
        return (result.text + "\n").encode("utf-8")


WRITERS: dict[str, ResultWriter] = {
    writer.name: writer
    for writer in (JsonWriter(), TxtWriter(), PdfWriter(), HocrWriter(), AltoWriter())
}
"""Every registered writer by name."""


def writers_for(names: Iterable[str]) -> list[ResultWriter]:
    """The writers of ``names`` in writing order: the record (JSON) last, always included.

    Raises:
        KeyError: a name is not registered (settings validation prevents it).

    """
    chosen = [WRITERS[name] for name in dict.fromkeys(names) if name != RECORD_FORMAT]
    return [*chosen, WRITERS[RECORD_FORMAT]]


def output_paths(outbox: Path, stem: str, names: Iterable[str]) -> list[Path]:
    """Where the outputs of ``stem`` (``sub/scan``) go, in writing order."""
    return [outbox / f"{stem}{writer.suffix}" for writer in writers_for(names)]


def render_in_worker(
    result: DocumentResult, original: Path, names: Iterable[str]
) -> dict[str, bytes]:
    """Render the chosen formats that read the original file (``reads_original``).

    Args:
        result: the document's OCR result.
        original: the input file just read (still claimed, so unchanged).
        names: output format names (the ``outputs`` setting).

    Returns:
        The bytes of each such format by name; empty when none is chosen.

    Raises:
        InputError: the original cannot be decoded again for its pages.
        OutputRenderError: a writer failed on a file the engine read; the message names the
            file and the format and says what to do.

    """
    rendered: dict[str, bytes] = {}
    for writer in writers_for(names):
        if not writer.reads_original:
            continue
        try:
            rendered[writer.name] = writer.render(result, original)
        except (InputError, OutputRenderError):
            raise
        except Exception as exc:  # fpdf2, pikepdf and Pillow raise their own types
            raise OutputRenderError(
                f"{result.source.name}: its text was read, but the {writer.name} output cannot "
                f"be made of it ({type(exc).__name__}: {exc}); drop it again with "
                f"{writer.name!r} left out of outputs, or report this with the file"
            ) from exc
    return rendered


def write_outputs(
    result: DocumentResult,
    original: Path,
    outbox: Path,
    stem: str,
    names: Iterable[str],
    rendered: Mapping[str, bytes] | None = None,
) -> list[Path]:
    """Write every chosen output of one input atomically into ``outbox``, the JSON last.

    Args:
        result: the document's OCR result.
        original: the input file (for formats that embed its pages, when not in ``rendered``).
        outbox: the outbox folder.
        stem: the result's stem relative to the outbox, ``sub/scan`` for ``sub/scan.jpg``, as
            :meth:`ocr_pipeline.state.ResultsIndex.stem_for` chooses it: its folders real
            folders, every ``<stem><suffix>`` free of folders and links and within 255 bytes.
            It may hold surrogate escapes (a name that is not valid UTF-8): the files then bear
            the original bytes in their names.
        names: output format names (the ``outputs`` setting).
        rendered: bytes already rendered by the worker (:func:`render_in_worker`), by format
            name; the other formats are rendered here.

    Returns:
        The paths written, in order.

    Raises:
        OSError: a file could not be written (the outbox is full or read-only, or a name is
            longer than 255 bytes: ``ENAMETOOLONG``); files written before it stay, and the
            record is not written, so the input is not done.

    """
    ready = rendered or {}
    written = []
    for writer in writers_for(names):
        path = outbox / f"{stem}{writer.suffix}"
        data = ready.get(writer.name)
        atomic_write_bytes(path, writer.render(result, original) if data is None else data)
        written.append(path)
    return written
