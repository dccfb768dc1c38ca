"""File names as scanners and shares write them: undecodable bytes, 255-byte names, collisions.

From issue 16: a name that is not valid UTF-8 stopped the daemon (the audit log could not
encode it); names of 250-255 bytes made temporary, result and report names too long, so the file
was retried forever; a folder where a file was expected (or the reverse) left files stuck; a
symlinked folder in the outbox or archive had results and originals written through it. The
daemon runs here on a serial executor with the real engine and real receipts, as in
``tests/test_daemon_logic.py``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from ocr_pipeline.audit import AuditLog, configure_logging, get_logger
from ocr_pipeline.names import (
    NAME_MAX,
    byte_length,
    decode_name_bytes,
    display_name,
    encode_name_bytes,
    fit_name,
    is_valid_utf8,
    name_bytes,
    name_hash,
    printable,
)
from ocr_pipeline.state import KeptLedger, ResultsIndex, write_status
from tests.receipts import daemon_settings, matches_truth, receipt_header, run_serial

BAD = b"bad\xff\xfe.jpg"
GBK = "增值税发票.jpg".encode("gbk")
LATIN1 = "café.jpg".encode("latin-1")
SHIFT_JIS = "請求書.jpg".encode("shift_jis")

# ----------------------------------------------------------------- names.py


@pytest.mark.parametrize("raw", [BAD, GBK, LATIN1, SHIFT_JIS])
def test_undecodable_names_have_a_utf8_display_form_and_their_bytes(raw: bytes) -> None:
    name = os.fsdecode(raw)
    assert not is_valid_utf8(name)
    assert name_bytes(name) == raw
    shown = display_name(name)
    shown.encode("utf-8")  # valid UTF-8: never raises
    assert "\\x" in shown and shown.endswith(".jpg")
    assert decode_name_bytes(encode_name_bytes(name)) == name


def test_display_form_shows_each_undecodable_byte_as_backslash_x() -> None:
    assert display_name(os.fsdecode(BAD)) == "bad\\xff\\xfe.jpg"
    assert display_name(os.fsdecode(LATIN1)) == "caf\\xe9.jpg"
    assert display_name("增值税发票.jpg") == "增值税发票.jpg"  # valid names are unchanged
    assert is_valid_utf8("增值税发票.jpg") and is_valid_utf8("a\\xff.jpg")
    with pytest.raises(ValueError, match="base64"):
        decode_name_bytes("not base64!")


def test_printable_reaches_nested_values_and_keys() -> None:
    bad = os.fsdecode(BAD)
    value = {bad: [bad, (1, Path(bad))], "n": {"deep": bad}, "x": 1.5}
    shown = printable(value)
    assert json.dumps(shown, ensure_ascii=False).encode("utf-8")
    assert shown == {
        "bad\\xff\\xfe.jpg": ["bad\\xff\\xfe.jpg", [1, "bad\\xff\\xfe.jpg"]],
        "n": {"deep": "bad\\xff\\xfe.jpg"},
        "x": 1.5,
    }


LONG_NAMES = [
    "a" * 300 + ".jpg",
    "增" * 100 + ".jpg",  # 3 bytes per character
    "😀" * 70 + ".png",  # 4 bytes per character
    os.fsdecode(b"\xff" * 300 + b".jpg"),  # one surrogate escape per byte
    os.fsdecode("增".encode() * 40 + b"\xfe" * 150 + b".tiff"),
    "x" * 400,  # no extension
    "y" * 240 + ".an-extension-far-too-long-to-keep",
]


@pytest.mark.parametrize("name", LONG_NAMES)
@pytest.mark.parametrize("reserve", [0, 5, len(".error.json")])
def test_fit_name_fits_and_cuts_between_characters(name: str, reserve: int) -> None:
    fitted = fit_name(name, reserve)
    assert byte_length(fitted) + reserve <= NAME_MAX
    assert byte_length(fitted) + reserve >= NAME_MAX - 4  # uses the room (minus one character)
    assert fit_name(name, reserve) == fitted  # deterministic
    beginning, _, rest = fitted.rpartition("~")
    assert name.startswith(beginning) and byte_length(beginning) > 150  # whole characters
    assert rest[:12] == name_hash(name)  # the hash of the full name
    if is_valid_utf8(name):
        assert is_valid_utf8(fitted)  # no multi-byte character was split
    assert name_bytes(fitted).startswith(name_bytes(beginning))
    suffix = os.path.splitext(name)[1]
    if len(suffix) <= 16:
        assert fitted.endswith(suffix)


def test_fit_name_leaves_short_names_and_separates_long_ones() -> None:
    exact = "e" * 250 + ".json"
    assert fit_name(exact) == exact
    assert fit_name(exact, reserve=1) != exact
    first, second = "s" * 300 + "1.jpg", "s" * 300 + "2.jpg"  # same beginning, other ends
    assert fit_name(first) != fit_name(second)
    assert len({fit_name(name) for name in LONG_NAMES}) == len(LONG_NAMES)
    with pytest.raises(ValueError, match="no room"):
        fit_name("z" * 300, reserve=250)


# ----------------------------------------------------------------- state files and logs


def _strict_utf8(path: Path) -> str:
    """The file's text; fails when it is not valid UTF-8."""
    return path.read_bytes().decode("utf-8")


def test_index_ledger_and_status_are_utf8_and_keep_the_bytes(tmp_path: Path) -> None:
    outbox, state = tmp_path / "out", tmp_path / "out" / ".ocr-pipeline"
    state.mkdir(parents=True)
    bad = os.fsdecode(b"sub/" + BAD)
    stem = bad.removesuffix(".jpg")
    index = ResultsIndex(outbox, state)
    index.add("1" * 64, stem)
    (outbox / "sub").mkdir()
    (outbox / f"{stem}.json").write_text(json.dumps({"source": {"sha256": "1" * 64}}))
    [record] = [json.loads(line) for line in _strict_utf8(state / "index.jsonl").splitlines()]
    assert record["stem"] == "sub/bad\\xff\\xfe"
    assert base64.b64decode(record["stem_bytes"]) == b"sub/bad\xff\xfe"
    assert ResultsIndex(outbox, state).result_for("1" * 64) == stem  # read back exactly

    kept = KeptLedger(state, "default")
    original = tmp_path / "original"
    original.write_bytes(b"x")
    kept.add(Path(bad), original.stat())
    _strict_utf8(kept.path)
    assert KeptLedger(state, "default").matches(Path(bad), original.stat())

    status_file = state / "status.json"
    write_status(status_file, {"last_error": {"file": bad, "error": f"{bad}: cannot read"}})
    status = json.loads(_strict_utf8(status_file))
    assert status["last_error"]["file"] == "sub/bad\\xff\\xfe.jpg"


def test_audit_record_is_utf8_with_the_source_bytes(tmp_path: Path) -> None:
    bad = os.fsdecode(GBK)
    audit = AuditLog(tmp_path / "audit.jsonl", "default")
    audit.record("failed", source=bad, message=f"{bad}: corrupt", models={bad: [bad]})
    audit.close()
    [record] = [json.loads(line) for line in _strict_utf8(tmp_path / "audit.jsonl").splitlines()]
    assert record["source"] == display_name(bad) and "\\xd4\\xf6" in record["source"]
    assert base64.b64decode(record["source_bytes"]) == GBK
    assert record["models"] == {display_name(bad): [display_name(bad)]}


@pytest.fixture
def reset_logging() -> Iterator[None]:
    """structlog back to its defaults after the test."""
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("reset_logging")
@pytest.mark.parametrize("fmt", ["console", "json"])
def test_log_lines_with_undecodable_names_are_utf8(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    raw = io.BytesIO()
    # stderr as a strict UTF-8 stream: a line that cannot be encoded raises. Patched in the
    # test itself, as pytest's capture resets sys.stderr between fixture set-up and the call.
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(fmt)  # type: ignore[arg-type]
    bad = os.fsdecode(BAD)
    get_logger("test").error("failed", file=bad, error=f"{bad}: corrupt", path=Path(bad))
    text = raw.getvalue().decode("utf-8")
    assert "bad\\xff\\xfe.jpg" in text.replace("\\\\", "\\")


# ----------------------------------------------------------------- the daemon on real receipts


def _drop(folder: Path, raw: bytes, data: bytes) -> None:
    """Write ``data`` as ``folder/raw`` (a name given as bytes, made exactly so)."""
    path = os.fsencode(folder) + b"/" + raw
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _audit(base: Path) -> list[dict[str, object]]:
    """The audit log; fails unless every line is valid UTF-8 JSON."""
    text = (base / "logs" / "audit.jsonl").read_bytes().decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _terminal(base: Path) -> dict[str, list[str]]:
    """Terminal events (done, duplicate, failed) by source as shown in the audit log."""
    found: dict[str, list[str]] = {}
    for record in _audit(base):
        if record["event"] in ("done", "duplicate", "failed"):
            found.setdefault(str(record["source"]), []).append(str(record["event"]))
    return found


def _names(folder: Path) -> set[bytes]:
    """Every name (bytes) under ``folder``, recursively, relative to it."""
    root = os.fsencode(folder)
    return {
        os.path.relpath(os.path.join(top, name), root)
        for top, dirs, files in os.walk(root)
        for name in [*dirs, *files]
    }


def test_undecodable_names_are_ocred_and_findable(tmp_path: Path) -> None:
    drops = {BAD: 0, GBK: 1, LATIN1: 2, b"plain.jpg": 3, SHIFT_JIS: 0}  # Shift-JIS: BAD's bytes
    for raw, number in drops.items():
        _drop(tmp_path / "inbox", raw, receipt_header(number, ".jpg"))

    summary, _ = run_serial(daemon_settings(tmp_path))

    assert not summary.failed and len(summary.done) == 4 and len(summary.duplicates) == 1
    assert {*summary.done, *summary.duplicates} == {os.fsdecode(raw) for raw in drops}
    terminal = _terminal(tmp_path)
    assert set(terminal) == {display_name(os.fsdecode(raw)) for raw in drops}
    assert all(len(events) == 1 for events in terminal.values())  # exactly one each
    outbox = os.fsencode(tmp_path / "outbox")
    index = ResultsIndex(tmp_path / "outbox", tmp_path / "outbox" / ".ocr-pipeline")
    for raw, number in drops.items():
        stem = raw.removesuffix(b".jpg")
        record = json.loads(Path(os.fsdecode(outbox + b"/" + stem + b".json")).read_bytes())
        source = record["source"]
        assert source["relative_path"] == display_name(os.fsdecode(raw))
        if raw == b"plain.jpg":
            assert "relative_path_bytes" not in source
        else:
            assert base64.b64decode(source["relative_path_bytes"]) == raw
        assert matches_truth(record["text"], number), record["text"]
        txt = Path(os.fsdecode(outbox + b"/" + stem + b".txt")).read_text(encoding="utf-8")
        assert txt == record["text"] + "\n"
        if raw != SHIFT_JIS and raw != BAD:  # those two share one sha256: either may own it
            assert index.result_for(source["sha256"]) == os.fsdecode(stem)
    assert _names(tmp_path / "archive") == set(drops)
    for record in _audit(tmp_path):
        if record["event"] in ("done", "duplicate") and record["source"] != "plain.jpg":
            assert base64.b64decode(str(record["source_bytes"])) in drops


def test_255_byte_names_give_results_archive_and_reports(tmp_path: Path) -> None:
    ascii_name = "a" * 251 + ".jpg"
    multibyte = "增" * 83 + ".jpg"  # 253 bytes
    undecodable = b"\xfe" * 240 + b"broken.jpg"  # 250 bytes, not an image
    assert byte_length(ascii_name) == 255 and byte_length(multibyte) == 253
    _drop(tmp_path / "inbox", ascii_name.encode(), receipt_header(4, ".jpg"))
    _drop(tmp_path / "inbox", multibyte.encode(), receipt_header(5, ".jpg"))
    _drop(tmp_path / "inbox", undecodable, b"not an image at all")

    summary, _ = run_serial(daemon_settings(tmp_path))

    assert sorted(summary.done) == sorted([ascii_name, multibyte])
    assert list(summary.failed) == [os.fsdecode(undecodable)]
    every = [*_names(tmp_path / "outbox"), *_names(tmp_path / "archive")]
    every += _names(tmp_path / "failed")
    assert all(len(os.path.basename(name)) <= NAME_MAX for name in every)
    results = sorted((tmp_path / "outbox").glob("*.json"))
    assert len(results) == 2 and len(list((tmp_path / "outbox").glob("*.txt"))) == 2
    by_name = {}
    for path in results:
        record = json.loads(path.read_text(encoding="utf-8"))
        by_name[record["source"]["name"]] = record
        assert path.read_text(encoding="utf-8") and path.with_suffix(".txt").is_file()
    assert set(by_name) == {ascii_name, multibyte}  # the full names, in the JSON
    assert matches_truth(by_name[ascii_name]["text"], 4)
    assert matches_truth(by_name[multibyte]["text"], 5)
    assert {p.name for p in (tmp_path / "archive").iterdir()} == {ascii_name, multibyte}
    [report_path] = (tmp_path / "failed").glob("*.error.json")
    report = json.loads(report_path.read_bytes().decode("utf-8"))
    assert base64.b64decode(report["source_bytes"]) == undecodable
    assert report["error_type"] == "CorruptInputError"
    original = report_path.with_name(report_path.name.removesuffix(".error.json"))
    assert original.read_bytes() == b"not an image at all"
    assert _terminal(tmp_path)[display_name(os.fsdecode(undecodable))] == ["failed"]


def test_collisions_with_folders_and_symlinked_folders(tmp_path: Path) -> None:
    outside_out, outside_archive = tmp_path / "outside-out", tmp_path / "outside-archive"
    for folder in (outside_out, outside_archive, tmp_path / "outbox" / "x.json"):
        folder.mkdir(parents=True)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "d.jpg").write_bytes(b"an earlier archived file")
    (tmp_path / "outbox" / "sub").symlink_to(outside_out, target_is_directory=True)
    (tmp_path / "archive" / "sub").symlink_to(outside_archive, target_is_directory=True)
    _drop(tmp_path / "inbox", b"d.jpg/e.jpg", receipt_header(6, ".jpg"))
    _drop(tmp_path / "inbox", b"x.jpg", receipt_header(7, ".jpg"))
    _drop(tmp_path / "inbox", b"sub/a.jpg", receipt_header(8, ".jpg"))

    summary, _ = run_serial(daemon_settings(tmp_path))

    assert sorted(summary.done) == ["d.jpg/e.jpg", "sub/a.jpg", "x.jpg"]
    assert _terminal(tmp_path) == {s: ["done"] for s in summary.done}
    assert list(outside_out.iterdir()) == [] and list(outside_archive.iterdir()) == []
    archive, outbox = tmp_path / "archive", tmp_path / "outbox"
    assert (archive / "d.jpg").read_bytes() == b"an earlier archived file"
    [e_folder] = [p for p in archive.glob("d.jpg.*") if p.is_dir() and not p.is_symlink()]
    assert (e_folder / "e.jpg").read_bytes() == receipt_header(6, ".jpg")
    [a_folder] = [p for p in archive.glob("sub.*") if p.is_dir() and not p.is_symlink()]
    assert (a_folder / "a.jpg").read_bytes() == receipt_header(8, ".jpg")
    assert list((outbox / "x.json").iterdir()) == []
    records = {}
    for path in outbox.rglob("*.json"):
        if path.is_file() and ".ocr-pipeline" not in path.parts:
            records[json.loads(path.read_text("utf-8"))["source"]["relative_path"]] = path
    assert records["x.jpg"].parent == outbox and records["x.jpg"].name.startswith("x.")
    assert records["x.jpg"].name != "x.json" and matches_truth(
        json.loads(records["x.jpg"].read_text("utf-8"))["text"], 7
    )
    sub_result = records["sub/a.jpg"]
    assert sub_result.name == "a.json" and not sub_result.parent.is_symlink()
    assert sub_result.parent.parent == outbox and sub_result.parent.name.startswith("sub.")
    assert records["d.jpg/e.jpg"] == outbox / "d.jpg" / "e.json"


def test_stem_for_avoids_folders_links_and_long_names(tmp_path: Path) -> None:
    outbox, state = tmp_path / "out", tmp_path / "state"
    (outbox / "x.txt").mkdir(parents=True)
    state.mkdir()
    (outbox / "link").symlink_to(tmp_path, target_is_directory=True)
    (outbox / "file").write_bytes(b"")
    index = ResultsIndex(outbox, state)
    assert index.stem_for(Path("x.jpg"), "ab" * 32) == "x.abababab"  # x.txt/ is a folder
    assert index.stem_for(Path("x.jpg"), "ab" * 32, [".json"]) == "x"  # txt not written
    assert index.stem_for(Path("link/y.jpg"), "cd" * 32) == "link.cdcdcdcd/y"
    assert index.stem_for(Path("file/y.jpg"), "cd" * 32) == "file.cdcdcdcd/y"
    long = index.stem_for(Path("z" * 255), "ef" * 32)
    assert byte_length(long) + len(".json") <= NAME_MAX and long.startswith("z" * 200)
