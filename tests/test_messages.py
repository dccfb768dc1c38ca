"""What a person reads when a file fails: the message and the report's traceback lines.

Real decoders, a real worker and a real pebble pool; nothing of the engine is replaced.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import struct
import zlib
from concurrent.futures import Future
from pathlib import Path

import pytest
from pebble import ProcessPool

from ocr_pipeline.documents import DecodeLimits, decode_document, open_document
from ocr_pipeline.errors import CorruptInputError, InputTooLargeError
from ocr_pipeline.executors.base import Job, JobError, JobOutcome, JobRecipe
from ocr_pipeline.executors.local import _settle
from ocr_pipeline.executors.serial import SerialExecutor
from ocr_pipeline.settings import Settings

OBJECT_REPR = ("<_io", "object at")


def _caret_only(line: str) -> bool:
    """A line of Python 3.11+'s position markers alone (``^^^^``, ``~~~^^~~``)."""
    return bool(line.strip()) and not line.strip(" ^~")


def _assert_clean(frames: list[str]) -> None:
    assert frames, "the report carries the traceback"
    lines = [line for frame in frames for line in frame.splitlines()]
    assert not any(_caret_only(line) for line in lines), frames
    assert lines[0].lstrip().startswith("File "), frames


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height``; its pixel data is a token few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_a_text_file_named_jpg_says_it_is_not_an_image() -> None:
    data = b"Dear team,\nplease find the invoice attached.\n"
    with pytest.raises(CorruptInputError) as caught:
        open_document(data, "x.jpg")
    message = str(caught.value)
    assert message.startswith("x.jpg is not an image: its bytes look like text"), message
    assert "Dear team" in message
    assert not any(part in message for part in OBJECT_REPR), message
    assert "JPEG image" not in message, "not called a JPEG that failed to decode"


def test_binary_bytes_and_a_pdf_under_an_image_name_say_what_they_are() -> None:
    with pytest.raises(CorruptInputError) as caught:
        decode_document(b"\x00\x01\x02\x03\xfe\xff garbage", "scan.png")
    message = str(caught.value)
    assert "scan.png is not an image: its bytes start with 00 01 02 03 fe ff" in message
    assert not any(part in message for part in OBJECT_REPR), message
    with pytest.raises(CorruptInputError, match=r"letter\.jpg is not an image.*\.pdf"):
        decode_document(b"%PDF-1.7\n% a PDF by another name\n", "letter.jpg")


def test_a_truncated_image_message_has_no_object_repr() -> None:
    with pytest.raises(CorruptInputError) as caught:
        decode_document(_png_header(64, 64)[:40], "cut.png")
    message = str(caught.value)
    assert message.startswith("cut.png: starts like a PNG image"), message
    assert "cut off" in message
    assert not any(part in message for part in OBJECT_REPR), message


@pytest.mark.parametrize("side", [12_000, 20_000])
def test_a_huge_image_names_the_setting_and_splitting_not_rescanning(side: int) -> None:
    # 20000 x 20000 is over Pillow's own "decompression bomb" limit too: the message must
    # still be decode.max_pixels's, found from the header before any pixel is decoded.
    with pytest.raises(InputTooLargeError) as caught:
        open_document(_png_header(side, side), "poster.png")
    message = str(caught.value)
    assert message.startswith(f"poster.png: page 1 is {side}x{side} = {side * side} pixels")
    assert "decode.max_pixels" in message and str(side * side) in message
    assert "split" in message and "scale" in message
    assert "re-scan" not in message and "decompression bomb" not in message


def test_raising_decode_max_pixels_lets_a_page_past_pillows_limit_through() -> None:
    """decode.max_pixels is the only pixel limit: above Pillow's, the header is still read."""
    limits = DecodeLimits(max_pixels=500_000_000, max_total_pixels=500_000_000)
    with open_document(_png_header(20_000, 20_000), "poster.png", limits) as document:
        assert document.sizes == [(20_000, 20_000)]


def _nested_lookup() -> None:
    record: dict[str, dict[str, int] | None] = {"totals": None}
    _ = [record["totals"]["sum"]][0]  # type: ignore[index]  # 3.11 marks it with ^^^^ / ~~~


def _raising_job(recipe: JobRecipe) -> JobOutcome:
    _nested_lookup()
    raise AssertionError("not reached")


def test_serial_job_error_frames_carry_no_caret_lines(settings: Settings, tmp_path: Path) -> None:
    job = Job(path=tmp_path / "a.png", relative="a.png", sha256="0" * 64)
    future = SerialExecutor(settings, run=_raising_job).submit(job)
    error = future.exception()
    assert isinstance(error, JobError) and isinstance(error.error, TypeError)
    _assert_clean(error.frames)
    assert "record[" in error.frames[-1], "the innermost frame, with its source line"


def test_pool_job_error_frames_start_at_a_frame_not_a_caret_line() -> None:
    """A real worker process's traceback (pebble's text) through the local executor's mapping."""
    with ProcessPool(max_workers=1, context=multiprocessing.get_context("spawn")) as pool:
        inner = pool.schedule(json.loads, args=("{not json",))
        assert isinstance(inner.exception(timeout=60), json.JSONDecodeError)
    remote = str(getattr(inner.exception(), "traceback", ""))
    assert any(_caret_only(line) for line in remote.splitlines()), "a caret traceback to clean"
    outer: Future[JobOutcome] = Future()
    _settle(outer, inner)
    error = outer.exception()
    assert isinstance(error, JobError)
    _assert_clean(error.frames)
    assert error.frames[-1].startswith("json.decoder.JSONDecodeError")


def test_a_text_file_named_jpg_through_a_real_worker(settings: Settings, tmp_path: Path) -> None:
    data = b"total 12.50\nthank you\n"
    path = tmp_path / "receipt.jpg"
    path.write_bytes(data)
    job = Job(path=path, relative="receipt.jpg", sha256=hashlib.sha256(data).hexdigest())
    error = SerialExecutor(settings).submit(job).exception()
    assert isinstance(error, JobError) and isinstance(error.error, CorruptInputError)
    message = str(error.error)
    assert "receipt.jpg is not an image: its bytes look like text" in message
    assert not any(part in message for part in OBJECT_REPR), message
    _assert_clean(error.frames)
