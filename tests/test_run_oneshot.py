"""The one-shot run end to end on real scans: every format, bad inputs, exit codes, folders.

``run`` goes through the daemon's claim/pool/terminal-state code: results in the outbox,
originals in archive/, bad files in failed/ beside their ``.error.json``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from ocr_pipeline.audit import read_audit
from ocr_pipeline.cli import main
from ocr_pipeline.evaluation import squash
from ocr_pipeline.folders import is_ignored
from ocr_pipeline.state import ResultsIndex
from ocr_pipeline.watcher import scan_inbox
from tests.conftest import SROIE_DEV


def _gt_text(number: int) -> str:
    for raw in (SROIE_DEV / "gt.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        if record["image"] == f"images/{number:03d}.jpg":
            return str(record["text"])
    raise KeyError(number)


def _cer(prediction: str, reference: str) -> float:
    return Levenshtein.distance(squash(prediction), squash(reference)) / len(squash(reference))


def _folders(base: Path) -> tuple[Path, Path]:
    inbox, outbox = base / "inbox", base / "outbox"
    inbox.mkdir()
    return inbox, outbox


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, Path, str]:
    inbox, outbox = _folders(tmp_path_factory.mktemp("run"))
    images = SROIE_DEV / "images"
    shutil.copyfile(images / "000.jpg", inbox / "receipt.jpg")
    (inbox / "sub").mkdir()
    Image.open(images / "005.jpg").save(inbox / "sub" / "receipt.png")
    first, second = Image.open(images / "000.jpg"), Image.open(images / "005.jpg")
    first.save(inbox / "two-pages.tiff", save_all=True, append_images=[second])
    first.convert("RGB").save(
        inbox / "scan.pdf", save_all=True, append_images=[second.convert("RGB")], resolution=150
    )
    (inbox / "empty.jpg").write_bytes(b"")
    data = (images / "002.jpg").read_bytes()
    (inbox / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (inbox / "notes.png").write_text("this is not an image\n", encoding="utf-8")
    (inbox / "report.docx").write_bytes(b"PK\x03\x04")
    (inbox / ".hidden.jpg").write_bytes(data)
    (inbox / "copying.jpg.part").write_bytes(data)
    import pypdfium2 as pdfium

    empty_pdf = pdfium.PdfDocument.new()
    buffer = io.BytesIO()
    empty_pdf.save(buffer)
    (inbox / "no-pages.pdf").write_bytes(buffer.getvalue())
    code = main(["run", str(inbox), str(outbox)])
    return code, inbox, outbox, ""


def test_run_exits_1_and_reports_each_bad_file(batch_run: tuple[int, Path, Path, str]) -> None:
    code, inbox, _, _ = batch_run
    assert code == 1
    failed = inbox.parent / "failed"
    reports = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in failed.glob("*.error.json")
    }
    expected = {
        "empty.jpg": "CorruptInputError",
        "truncated.jpg": "CorruptInputError",
        "notes.png": "CorruptInputError",
        "report.docx": "UnsupportedFormatError",
        "no-pages.pdf": "CorruptInputError",
    }
    for name, error_type in expected.items():
        report = reports[f"{name}.error.json"]
        assert report["error_type"] == error_type, name
        assert name in report["message"], report["message"]
        assert (failed / name).is_file(), f"original of {name} kept in failed/"
    assert "supported: .bmp" in reports["report.docx.error.json"]["message"]


def test_run_moves_every_input_to_one_terminal_state(
    batch_run: tuple[int, Path, Path, str],
) -> None:
    _, inbox, _, _ = batch_run
    left = sorted(p.name for p in scan_inbox(inbox))
    assert left == [], "only hidden and partial names stay in the inbox"
    archived = sorted(
        p.relative_to(inbox.parent / "archive").as_posix()
        for p in (inbox.parent / "archive").rglob("*")
        if p.is_file()
    )
    assert archived == ["receipt.jpg", "scan.pdf", "sub/receipt.png", "two-pages.tiff"]
    events = read_audit(inbox.parent / "logs" / "audit.jsonl")
    terminal = sorted(e["source"] for e in events if e["event"] in {"done", "failed"})
    claimed = sorted(e["source"] for e in events if e["event"] == "claimed")
    assert terminal == claimed and len(claimed) == 9
    assert {e["event"] for e in events} == {"claimed", "done", "failed"}
    done = next(e for e in events if e["event"] == "done" and e["source"] == "receipt.jpg")
    assert done["pages"] == 1 and done["lines"] > 20 and 0 < done["min_confidence"] <= 1
    assert len(done["sha256"]) == 64 and done["result"] == "receipt.json"


def test_run_ocrs_every_good_file_and_format(batch_run: tuple[int, Path, Path, str]) -> None:
    _, _, outbox, _ = batch_run
    receipt = json.loads((outbox / "receipt.json").read_text(encoding="utf-8"))
    assert receipt["schema_version"] == "1"
    assert receipt["source"]["media_type"] == "image/jpeg"
    assert len(receipt["source"]["sha256"]) == 64
    assert _cer(receipt["text"], _gt_text(0)) < 0.12
    assert (outbox / "receipt.txt").read_text(encoding="utf-8") == receipt["text"] + "\n"
    timings = receipt["timings_ms"]
    # The engine's stages are pre-filled with 0.0: these were really timed (rounded to 0.1 ms;
    # a model's pass takes at least a millisecond), and within the job's total.
    assert timings["decode"] > 0, timings
    assert timings["detect"] >= 1.0 and timings["recognize"] >= 1.0, timings
    stages = sum(ms for stage, ms in timings.items() if stage != "total")
    assert timings["total"] >= stages - 1.0, timings

    png = json.loads((outbox / "sub" / "receipt.json").read_text(encoding="utf-8"))
    assert png["source"]["relative_path"] == "sub/receipt.png"
    assert _cer(png["text"], _gt_text(5)) < 0.12

    tiff = json.loads((outbox / "two-pages.json").read_text(encoding="utf-8"))
    # TIFF is lossless: its pages read exactly like the JPEGs they were made from.
    assert tiff["text"] == receipt["text"] + "\f" + png["text"]
    assert tiff["source"]["media_type"] == "image/tiff"

    pdf = json.loads((outbox / "scan.json").read_text(encoding="utf-8"))
    assert [p["index"] for p in pdf["pages"]] == [0, 1]
    assert pdf["pages"][0]["width"] > 1.9 * receipt["pages"][0]["width"]  # 150 dpi -> 300 dpi
    page_texts = pdf["text"].split("\f")
    assert len(page_texts) == 2
    assert _cer(page_texts[0], _gt_text(0)) < 0.12
    assert _cer(page_texts[1], _gt_text(5)) < 0.12


def test_run_ignores_hidden_and_partial_files(batch_run: tuple[int, Path, Path, str]) -> None:
    _, _, outbox, _ = batch_run
    _, inbox, _, _ = batch_run
    names = {p.name for p in outbox.rglob("*")}
    assert not any(".hidden" in n or "copying" in n for n in names)
    assert (inbox / ".hidden.jpg").is_file() and (inbox / "copying.jpg.part").is_file()


def test_pixel_limit_refuses_a_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, outbox = _folders(tmp_path)
    Image.new("L", (4000, 3000), 255).save(inbox / "bomb.png")
    shutil.copyfile(SROIE_DEV / "images" / "005.jpg", inbox / "fine.jpg")
    monkeypatch.setenv("OCR_PIPELINE_DECODE__MAX_PIXELS", "10000000")
    assert main(["run", str(inbox), str(outbox)]) == 1
    report = json.loads((tmp_path / "failed" / "bomb.png.error.json").read_text(encoding="utf-8"))
    assert report["error_type"] == "InputTooLargeError"
    assert "decode.max_pixels" in report["message"]
    assert (outbox / "fine.json").is_file()


def test_outbox_inside_inbox_is_a_config_error(tmp_path: Path) -> None:
    assert main(["run", str(tmp_path), str(tmp_path / "out")]) == 3


def test_ignored_names() -> None:
    assert is_ignored(".DS_Store") and is_ignored("~$doc.pdf") and is_ignored("a.jpg.crdownload")
    assert is_ignored("upload.tmp") and is_ignored("x.pdf.part")
    assert not is_ignored("scan.jpg")


def test_scan_skips_hidden_folders(tmp_path: Path) -> None:
    (tmp_path / ".work").mkdir()
    (tmp_path / ".work" / "x.jpg").write_bytes(b"x")
    (tmp_path / "y.jpg").write_bytes(b"y")
    assert list(scan_inbox(tmp_path)) == [Path("y.jpg")]


def test_result_stems_never_overwrite_another_files_result(tmp_path: Path) -> None:
    outbox, state = tmp_path / "out", tmp_path / "state"
    (outbox / "a").mkdir(parents=True)
    state.mkdir()
    index = ResultsIndex(outbox, state)
    assert index.stem_for(Path("a/scan.jpg"), "1" * 64) == "a/scan"
    (outbox / "a" / "scan.json").write_text(json.dumps({"source": {"sha256": "1" * 64}}))
    index.add("1" * 64, "a/scan")
    assert index.stem_for(Path("a/scan.jpg"), "1" * 64) == "a/scan"  # same bytes: same result
    assert index.stem_for(Path("a/scan.png"), "2" * 64) == "a/scan.22222222"
    assert ResultsIndex(outbox, state).result_for("1" * 64) == "a/scan"  # index persisted


def test_byte_limit_refuses_a_large_file_before_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, outbox = _folders(tmp_path)
    shutil.copyfile(SROIE_DEV / "images" / "023.jpg", inbox / "big.jpg")
    monkeypatch.setenv("OCR_PIPELINE_DECODE__MAX_BYTES", "100000")
    assert main(["run", str(inbox), str(outbox)]) == 1
    report = json.loads((tmp_path / "failed" / "big.jpg.error.json").read_text(encoding="utf-8"))
    assert report["error_type"] == "InputTooLargeError"
    assert "big.jpg" in report["message"] and "decode.max_bytes" in report["message"]
