"""The result contract: schema in the docs, serialisation by alias, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocr_pipeline.atomic import atomic_write_bytes
from ocr_pipeline.results import (
    Correction,
    DocumentResult,
    Line,
    ModelRef,
    Page,
    Source,
    result_json,
    result_schema,
    utc_now,
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
