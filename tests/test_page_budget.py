"""Long documents: page and pixel budgets, page-by-page memory, stopping between pages, safe reads.

Issue 16, item 2: a 62 KB PDF of 500 blank pages took a worker to 12.6 GiB (every page rendered
at 300 dpi before the first was OCRed) and a SIGTERM drain waited for the whole document. The
memory tests run the real ``ocr_file`` and engine in a child process and read its peak RSS.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

from ocr_pipeline.correct import corrector_from_settings
from ocr_pipeline.documents import DecodeLimits, decode_document, open_document
from ocr_pipeline.engine import Engine
from ocr_pipeline.errors import (
    InputTooLargeError,
    JobStoppedError,
    SymlinkRefusedError,
    UnreadableInputError,
)
from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.executors import Job, JobError, JobOutcome, LocalPoolExecutor, SerialExecutor
from ocr_pipeline.executors.local import STARTED_DIR_ENV
from ocr_pipeline.jobs import decode_limits, ocr_file, read_input
from ocr_pipeline.settings import DecodeSettings, Settings
from tests.conftest import REPO, SROIE_DEV
from tests.daemon_harness import wait_until

A4_PT = (595, 842)
"""A4 in PDF points; at 300 dpi a page renders to 2480x3509 pixels, 3 bytes each: 26.1 MB."""
A4_PAGE_MIB = 2480 * 3509 * 3 / 2**20

# Runs ``ocr_file`` with the default settings and the real engine on each file named in argv,
# in order, and prints its own peak RSS after each (VmHWM only grows). Not ru_maxrss: Linux
# carries the parent's peak into it across fork and exec, so a pytest process that once held a
# large page would make every child look that large.
CHILD = """
import json, sys, time
from pathlib import Path
from ocr_pipeline.engine import Engine
from ocr_pipeline.errors import InputError
from ocr_pipeline.jobs import decode_limits, ocr_file
from ocr_pipeline.settings import load_settings

def peak_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")

settings = load_settings()
engine = Engine.from_settings(settings)
limits = decode_limits(settings.decode)
report = {"engine_peak_mib": peak_mib(), "runs": []}
for name in sys.argv[1:]:
    path = Path(name)
    started = time.perf_counter()
    try:
        run = {"pages": len(ocr_file(path, engine, limits, path.name).pages)}
    except InputError as exc:
        run = {"error": type(exc).__name__, "message": str(exc)}
    run.update(seconds=time.perf_counter() - started, peak_mib=peak_mib())
    report["runs"].append(run)
print(json.dumps(report))
"""


def blank_pdf(pages: int, size: tuple[float, float] = A4_PT) -> bytes:
    """A PDF of ``pages`` empty pages of ``size`` points (500 A4 pages: 62 KB)."""
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(*size)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def tiff_frames(count: int, size: tuple[int, int] = (100, 100)) -> bytes:
    """A multi-page TIFF of ``count`` white frames."""
    frames = [Image.new("RGB", size, "white") for _ in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def run_child(*files: Path, timeout: float = 240) -> Any:
    """Run :data:`CHILD` on ``files`` in a fresh interpreter; its JSON report."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_worker(settings: Settings, **daemon: object) -> Settings:
    """``settings`` with one worker and the given ``daemon.*`` values."""
    updated = settings.daemon.model_copy(update={"workers": 1, **daemon})
    return settings.model_copy(update={"daemon": updated})


# --- budgets, checked before any page is rendered ------------------------------------------------


def test_500_blank_pages_are_refused_by_the_pixel_budget_fast_and_small(tmp_path: Path) -> None:
    # Before: every page rendered up front, 500 x 26.1 MB = 12.6 GiB and no answer after minutes
    # (40 of these pages alone took the old decoder to 1032 MiB). Now: refused from the page
    # sizes, nothing rendered; measured 8 ms, and the child's peak stays the engine's, 173 MiB.
    data = blank_pdf(500)
    assert len(data) < 100_000
    path = tmp_path / "blank-500.pdf"
    path.write_bytes(data)
    report = run_child(path)
    [run] = report["runs"]
    assert run["error"] == "InputTooLargeError", run
    message = run["message"]
    for words in ("blank-500.pdf", "500 pages", "decode.max_total_pixels", "2000000000", "split"):
        assert words in message, message
    assert run["seconds"] < 10, run  # milliseconds in practice; rendering took minutes
    assert run["peak_mib"] < 600, report
    assert run["peak_mib"] - report["engine_peak_mib"] < 2 * A4_PAGE_MIB, report


def test_page_count_is_refused_before_rendering_pdf_and_tiff() -> None:
    limits = DecodeLimits(max_pages=3)
    with pytest.raises(InputTooLargeError, match=r"four\.pdf: 4 pages .*decode\.max_pages"):
        open_document(blank_pdf(4, (100, 100)), "four.pdf", limits)
    with open_document(blank_pdf(3, (100, 100)), "three.pdf", limits) as document:
        assert document.page_count == 3  # at the limit: allowed
    with pytest.raises(
        InputTooLargeError, match=r"three\.tif: more than 2 pages.*decode\.max_pages"
    ):
        open_document(tiff_frames(3), "three.tif", DecodeLimits(max_pages=2))
    with open_document(tiff_frames(3), "three.tif", limits) as document:
        assert document.page_count == 3 and document.sizes == [(100, 100)] * 3
        assert [page.index for page in document.pages()] == [0, 1, 2]


def test_a_tiff_of_many_frames_is_refused_without_walking_them_all() -> None:
    data = tiff_frames(800, (1, 1))
    started = time.perf_counter()
    with pytest.raises(InputTooLargeError, match=r"more than 10 pages"):
        open_document(data, "many.tiff", DecodeLimits(max_pages=10))
    small_walk = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(InputTooLargeError, match=r"more than 799 pages"):
        open_document(data, "many.tiff", DecodeLimits(max_pages=799))
    full_walk = time.perf_counter() - started
    assert small_walk < full_walk, (small_walk, full_walk)  # 11 headers read, not 800


def test_pixel_budgets_are_checked_on_every_page_before_the_first_is_decoded() -> None:
    # A huge last page is known to be too large before page 1 is rendered (opening renders
    # nothing): 14000 pt square is 58334 px at 300 dpi and still 29167 px at the 150 dpi floor,
    # 850 million pixels. It is that page's error; the small pages are read (issue 23).
    document = pdfium.PdfDocument.new()
    document.new_page(100, 100)
    document.new_page(100, 100)
    document.new_page(14_000, 14_000)
    buffer = io.BytesIO()
    document.save(buffer)
    with open_document(buffer.getvalue(), "tall.pdf") as opened:
        assert [plan.error is None for plan in opened.plans] == [True, True, False]
        assert opened.sizes == [(417, 417), (417, 417), (0, 0)]
        assert opened.total_pixels == 2 * 417 * 417  # the page not rendered counts nothing
        with pytest.raises(
            InputTooLargeError,
            match=r"tall\.pdf: page 3 is 14000 x 14000 pt .*min_pdf_dpi.*decode\.max_pixels",
        ):
            opened.page(2)
        assert opened.page(1).image.shape == (417, 417, 3)
    # Alone in its file it leaves nothing to read: the whole file is refused, before rendering.
    lone = pdfium.PdfDocument.new()
    lone.new_page(14_000, 14_000)
    buffer = io.BytesIO()
    lone.save(buffer)
    with pytest.raises(InputTooLargeError, match=r"huge\.pdf: page 1 is 14000 x 14000 pt"):
        open_document(buffer.getvalue(), "huge.pdf")
    # All frames together: 3 x 10000 pixels over a budget of 25000.
    with pytest.raises(
        InputTooLargeError, match=r"t\.tiff: its 3 pages are 30000 pixels.*decode\.max_total_pixels"
    ) as refused:
        open_document(tiff_frames(3), "t.tiff", DecodeLimits(max_total_pixels=25_000))
    assert "pdf_dpi" not in str(refused.value)
    # A PDF's budget counts pixels at the render resolution, and says so.
    with pytest.raises(InputTooLargeError, match=r"at 300 dpi.*lower decode\.pdf_dpi"):
        open_document(blank_pdf(2), "two.pdf", DecodeLimits(max_total_pixels=10_000_000))
    with open_document(blank_pdf(2), "two.pdf", DecodeLimits(pdf_dpi=150)) as small:
        # 595 x 842 pt at 150 dpi is 1239.6 x 1754.2: pdfium rounds each side up.
        assert small.total_pixels == 2 * 1240 * 1755


def test_decode_limits_carry_every_decode_setting() -> None:
    limits = decode_limits(
        DecodeSettings(max_pages=7, max_total_pixels=123_456, pdf_dpi=150, min_pdf_dpi=100)
    )
    assert (limits.max_pages, limits.max_total_pixels, limits.pdf_dpi) == (7, 123_456, 150)
    assert limits.min_pdf_dpi == 100
    defaults = decode_limits(DecodeSettings())
    assert defaults == DecodeLimits()  # the dataclass defaults are the settings' defaults


# --- page by page --------------------------------------------------------------------------------


def test_memory_stays_about_one_page_whatever_the_page_count(tmp_path: Path) -> None:
    # 24 blank A4 pages at 300 dpi through the real ocr_file and engine: 24 x 26.1 MB = 626 MB
    # of pixels. Measured (2 cores): one page peaks at 463 MiB (engine and its buffers), the 24
    # pages at 495 MiB now; the old decode-everything-first code peaked at 1069 MiB (+605).
    # About 1 s per blank page: 25-30 s for the test.
    pages = 24
    one, many = tmp_path / "one.pdf", tmp_path / "many.pdf"
    one.write_bytes(blank_pdf(1))
    many.write_bytes(blank_pdf(pages))
    report = run_child(one, many)
    first, second = report["runs"]
    assert first["pages"] == 1 and second["pages"] == pages, report
    growth = second["peak_mib"] - first["peak_mib"]
    assert growth < 4 * A4_PAGE_MIB, report  # all pages at once would add 23 x 25 MiB = 573
    assert second["peak_mib"] < first["peak_mib"] + pages * A4_PAGE_MIB / 4, report


def test_pages_come_out_in_order_with_the_right_text(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    records = load_ground_truth(SROIE_DEV)[:3]
    images = [Image.open(record.image).convert("RGB") for record in records]
    path = tmp_path / "three receipts.pdf"
    # 300 dpi images rendered at 300 dpi: each page comes back at its scan's size.
    images[0].save(path, format="PDF", save_all=True, append_images=images[1:], resolution=300)
    result = ocr_file(
        path,
        engine,
        decode_limits(settings.decode),
        path.name,
        corrector_from_settings(settings.correct),
    )
    assert [page.index for page in result.pages] == [0, 1, 2]
    assert result.text.split("\f") == [page.text for page in result.pages]
    for index, (page, record) in enumerate(zip(result.pages, records, strict=True)):
        own = Score()
        own.add(page.text, record.text)
        assert own.word_f1 > 0.8, (index, page.text)
        for other in records:  # and it is that receipt, in that place
            if other is not record:
                crossed = Score()
                crossed.add(page.text, other.text)
                assert crossed.word_f1 < own.word_f1, (index, other.image.name)


# --- stopping between pages ----------------------------------------------------------------------


def test_should_stop_ends_a_document_between_pages(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "three pages.pdf"
    path.write_bytes(blank_pdf(3, (300, 300)))
    asked: list[int] = []

    def stop_after_first_page() -> bool:
        asked.append(1)
        return True

    with pytest.raises(JobStoppedError, match=r"three pages\.pdf: stopped before page 2 of 3"):
        ocr_file(path, engine, DecodeLimits(), path.name, should_stop=stop_after_first_page)
    assert asked == [1]  # not asked before the first page
    never = ocr_file(path, engine, DecodeLimits(), path.name, should_stop=lambda: False)
    assert len(never.pages) == 3


def test_closing_the_pool_stops_a_long_document_between_pages(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = 30  # about 30 s of OCR on 2 cores; a stop comes after page 1 or 2
    started = tmp_path / "started"
    started.mkdir()
    monkeypatch.setenv(STARTED_DIR_ENV, str(started))
    long_pdf = tmp_path / "long.pdf"
    long_pdf.write_bytes(blank_pdf(pages))
    executor = LocalPoolExecutor(one_worker(settings))
    try:
        future = executor.submit(Job(long_pdf, "long.pdf", "0" * 64))
        wait_until(  # the worker loaded its engine and began
            lambda: any(started.glob("started-*")),
            120,
            "the worker to begin the long document",
            abort=lambda: f"the job ended first: {future.exception()!r}" if future.done() else None,
        )
        assert executor.close(grace_seconds=30) is True
        error = future.exception(timeout=30)
        assert isinstance(error, JobError), error
        assert isinstance(error.error, JobStoppedError), error.error
        reached = re.search(r"long\.pdf: stopped before page (\d+) of (\d+)", str(error.error))
        assert reached is not None, str(error.error)
        assert int(reached[2]) == pages and 2 <= int(reached[1]) < pages, str(error.error)

        # A restart brings a fresh pool whose stop event is clear: documents run to the end.
        executor.restart()
        short_pdf = tmp_path / "short.pdf"
        short_pdf.write_bytes(blank_pdf(2, (300, 300)))
        outcome = executor.submit(Job(short_pdf, "short.pdf", "1" * 64)).result(timeout=180)
        assert isinstance(outcome, JobOutcome) and len(outcome.result.pages) == 2
    finally:
        executor.close(grace_seconds=10)


# --- reading the input safely --------------------------------------------------------------------


@pytest.fixture
def receipt_file(tmp_path: Path) -> Path:
    path = tmp_path / "receipt.jpg"
    path.write_bytes((SROIE_DEV / "images" / "000.jpg").read_bytes())
    return path


def test_a_symlink_is_refused_unless_followed(receipt_file: Path) -> None:
    link = receipt_file.with_name("link.jpg")
    link.symlink_to(receipt_file)
    with pytest.raises(
        SymlinkRefusedError, match=r"link\.jpg is a symlink.*daemon\.follow_symlinks"
    ):
        read_input(link, DecodeLimits())
    assert read_input(link, DecodeLimits(), follow_symlinks=True) == receipt_file.read_bytes()
    assert read_input(receipt_file, DecodeLimits()) == receipt_file.read_bytes()


def test_the_worker_applies_daemon_follow_symlinks(receipt_file: Path, settings: Settings) -> None:
    link = receipt_file.with_name("link.jpg")
    link.symlink_to(receipt_file)
    job = Job(link, "link.jpg", "0" * 64)
    refused = SerialExecutor(settings).submit(job).exception()
    assert isinstance(refused, JobError) and isinstance(refused.error, SymlinkRefusedError)
    following = settings.model_copy(
        update={"daemon": settings.daemon.model_copy(update={"follow_symlinks": True})}
    )
    outcome = SerialExecutor(following).submit(job).result()
    assert outcome.result.source.name == "link.jpg" and outcome.result.pages[0].text


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read_input, fifo, DecodeLimits())
        try:
            error = reading.exception(timeout=10)
        except concurrent.futures.TimeoutError:
            # Blocked in open(): give it a writer so the thread ends, then fail.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            raise AssertionError("read_input blocked on a FIFO") from None
    assert isinstance(error, UnreadableInputError), error
    assert "pipe.pdf is not a regular file (a FIFO)" in str(error)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "scan.pdf"
    folder.mkdir()
    with pytest.raises(
        UnreadableInputError, match=r"scan\.pdf is not a regular file \(a directory\)"
    ):
        read_input(folder, DecodeLimits())


def test_size_is_refused_before_reading(receipt_file: Path) -> None:
    with pytest.raises(InputTooLargeError, match=r"receipt\.jpg: .*decode\.max_bytes"):
        read_input(receipt_file, DecodeLimits(max_bytes=1000))


@pytest.fixture
def unreadable_file() -> Iterator[Path]:
    """A file with mode 000, in a folder anyone may enter (``/tmp``, not pytest's 0700 tree)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder, "secret.pdf")
        path.write_bytes(blank_pdf(1))
        path.chmod(0)
        yield path


def read_as_nobody(path: Path) -> str:
    """``read_input(path)`` in a forked child that gave up root for "nobody": what it raised.

    Root reads any file whatever its mode, so the permission check needs an unprivileged
    process; forking keeps the already imported package (the venv's interpreter may sit in a
    folder "nobody" cannot enter). The child only opens a file and writes to a pipe.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            except OSError as exc:
                os.write(write_end, f"no-setuid {exc}".encode())
                os._exit(0)
            try:
                read_input(path, DecodeLimits())
                answer = "read"
            except Exception as exc:
                answer = f"{type(exc).__name__} {exc}"
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        chunks = []
        while select.select([read_end], [], [], 30)[0]:
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def test_a_file_without_read_permission_is_reported(unreadable_file: Path) -> None:
    if os.geteuid() != 0:
        with pytest.raises(UnreadableInputError, match=r"secret\.pdf: permission denied.*read"):
            read_input(unreadable_file, DecodeLimits())
        return
    answer = read_as_nobody(unreadable_file)
    if answer.startswith("no-setuid"):
        pytest.skip(f"running as root and cannot become nobody: {answer}")
    assert answer.startswith("UnreadableInputError secret.pdf: permission denied"), answer
    assert "give the daemon's user read permission" in answer and "drop it again" in answer


def test_decode_document_still_returns_every_page() -> None:
    pages = decode_document(blank_pdf(3, (72, 144)), "three.pdf", DecodeLimits(pdf_dpi=100))
    assert [page.index for page in pages] == [0, 1, 2]
    assert all(page.image.shape == (200, 100, 3) for page in pages)
