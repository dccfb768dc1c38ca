"""The result contract: schema in the docs, serialisation by alias, atomic writes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.results import (
    Correction,
    DocumentResult,
    ErrorReport,
    Line,
    ModelRef,
    Page,
    Source,
    result_json,
    result_schema,
    utc_now,
    write_error_report,
)
from ocr_pipeline.writers import write_outputs

DOCS_SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "result-schema.json"


def _result() -> DocumentResult:
    line = Line(
        text="TOTAL 12.50",
        raw_text="T0TAL 12.50",
        confidence=0.9,
        box=((0, 0), (10, 0), (10, 5), (0, 5)),
        char_confidences=[0.9] * 11,
        corrections=[
            Correction(start=0, end=5, from_="T0TAL", to="TOTAL", rule="lexicon", score=0.9)
        ],
    )
    page = Page(index=0, width=20, height=10, lines=[line], text="TOTAL 12.50")
    return DocumentResult(
        source=Source(
            name="a.jpg", relative_path="a.jpg", sha256="0" * 64, bytes=3, media_type="image/jpeg"
        ),
        pages=[page],
        text="TOTAL 12.50",
        models={"detector": ModelRef(name="d", sha256="1" * 64)},
        timings_ms={"total": 1.0},
        created_at=utc_now(),
        pipeline_version="0.1.0",
    )


def test_docs_hold_the_current_schema() -> None:
    assert json.loads(DOCS_SCHEMA.read_text(encoding="utf-8")) == result_schema(), (
        "docs/result-schema.json is stale: run `ocr-pipeline schema > docs/result-schema.json`"
    )


def test_result_json_uses_contract_names_and_round_trips() -> None:
    payload = json.loads(result_json(_result()))
    assert payload["schema_version"] == "1"
    assert payload["pages"][0]["lines"][0]["corrections"][0]["from"] == "T0TAL"
    assert DocumentResult.model_validate(payload) == _result().model_copy(
        update={"created_at": payload["created_at"]}
    )


def test_write_outputs_leaves_only_final_files_record_last(tmp_path: Path) -> None:
    original = tmp_path / "a.png"
    txt_path, json_path = write_outputs(_result(), original, tmp_path, "sub/a", ["json", "txt"])
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.json", "a.txt"]
    assert txt_path.read_text(encoding="utf-8") == "TOTAL 12.50\n"
    assert json.loads(json_path.read_text(encoding="utf-8"))["text"] == "TOTAL 12.50"
    # The record is always written, even when not listed, and always last.
    assert [p.name for p in write_outputs(_result(), original, tmp_path, "b", ["txt"])] == [
        "b.txt",
        "b.json",
    ]


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.json"]


# ----------------------------------------------------------------- undecodable names (issue 16)

BAD_PATH = b"scans/bad\xff\xfe.jpg"


def _bad_result() -> DocumentResult:
    """A result whose source path is not valid UTF-8, made as the worker makes it."""
    relative = os.fsdecode(BAD_PATH)
    source = _result().source.model_dump()
    source.update(name=relative.rsplit("/", 1)[-1], relative_path=relative)
    return _result().model_copy(update={"source": Source.model_validate(source)})


def test_undecodable_source_is_written_in_display_form_with_its_bytes() -> None:
    payload = json.loads(result_json(_bad_result()).decode("utf-8"))  # valid UTF-8
    source = payload["source"]
    assert source["name"] == "bad\\xff\\xfe.jpg"
    assert source["relative_path"] == "scans/bad\\xff\\xfe.jpg"
    assert base64.b64decode(source["relative_path_bytes"]) == BAD_PATH
    again = DocumentResult.model_validate(payload)
    assert again.source.original_relative_path() == os.fsdecode(BAD_PATH)
    assert "relative_path_bytes" not in json.loads(result_json(_result()))["source"]


def test_a_copy_under_another_name_gets_its_own_bytes() -> None:
    bad = _bad_result().source
    plain = bad.model_copy(update={"name": "b.jpg", "relative_path": "b.jpg"})  # as a duplicate
    assert "relative_path_bytes" not in plain.model_dump()
    latin1 = os.fsdecode(b"caf\xe9.jpg")
    copied = bad.model_copy(update={"name": latin1, "relative_path": latin1}).model_dump()
    assert copied["relative_path"] == "caf\\xe9.jpg"
    assert base64.b64decode(copied["relative_path_bytes"]) == b"caf\xe9.jpg"
    renamed = bad.renamed(os.fsdecode(b"x/caf\xe9.jpg"))
    assert renamed.name == "caf\\xe9.jpg" and renamed.relative_path == "x/caf\\xe9.jpg"
    assert renamed.original_relative_path() == os.fsdecode(b"x/caf\xe9.jpg")
    assert bad.renamed("ok.jpg").relative_path_bytes is None


def test_result_files_bear_the_original_bytes(tmp_path: Path) -> None:
    stem = os.fsdecode(BAD_PATH).removesuffix(".jpg")
    written = write_outputs(_bad_result(), tmp_path / "x", tmp_path, stem, ["json", "txt"])
    folder = os.fsencode(tmp_path / "scans")
    assert sorted(os.listdir(folder)) == [b"bad\xff\xfe.json", b"bad\xff\xfe.txt"]
    assert [os.fsencode(p.name) for p in written] == [b"bad\xff\xfe.txt", b"bad\xff\xfe.json"]


def test_error_report_of_an_undecodable_name_is_utf8(tmp_path: Path) -> None:
    relative = os.fsdecode(BAD_PATH)
    report = ErrorReport(
        source=relative,
        error_type="CorruptInputError",
        message=f"{relative}: not an image",
        traceback=[f'  File "x.py", in read {relative}'],
        failed_at=utc_now(),
        pipeline_version="0.1.0",
    )
    path = tmp_path / os.fsdecode(b"bad\xff\xfe.jpg.error.json")
    write_error_report(report, path)
    payload = json.loads(path.read_bytes().decode("utf-8"))
    assert payload["source"] == "scans/bad\\xff\\xfe.jpg"
    assert payload["message"] == "scans/bad\\xff\\xfe.jpg: not an image"
    assert "bad\\xff\\xfe.jpg" in payload["traceback"][0]
    assert base64.b64decode(payload["source_bytes"]) == BAD_PATH
    plain = report.model_copy(update={"source": "a.jpg", "source_bytes": None})
    write_error_report(plain, tmp_path / "a.jpg.error.json")
    assert "source_bytes" not in json.loads((tmp_path / "a.jpg.error.json").read_text("utf-8"))
