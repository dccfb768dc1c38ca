"""Each headline figure has one source, ``benchmarks/figures.json``, and the docs quote it.

The accuracy tests compare their measurements with the same file (tests/test_accuracy.py,
tests/test_zh_layout.py); the speed and correction figures come from their benchmarks, whose
commands the file names. A figure quoted differently anywhere below fails here, naming the file.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import REPO

FIGURES: dict[str, Any] = json.loads((REPO / "benchmarks" / "figures.json").read_text("utf-8"))


def _quotes() -> list[tuple[str, str]]:
    """(file, text it must contain), the figures formatted as the docs print them."""
    sroie, zh = FIGURES["sroie_dev"], FIGURES["zh_dev"]
    correction, speed, peer = FIGURES["correction"], FIGURES["speed"], FIGURES["rapidocr_3_10"]
    quality, ray = FIGURES["quality"], FIGURES["ray"]
    return [
        ("README.md", f"CER {sroie['cer']:.4f}, word F1 {sroie['word_f1']:.4f}"),
        ("README.md", f"CER {peer['cer']:.3f}, word F1 {peer['word_f1']:.3f}"),
        (
            "README.md",
            f"| **{sroie['word_f1']:.4f}** | **{sroie['cer']:.4f}** | "
            f"**{speed['pages_per_second_2_cores']:.3f}** | "
            f"**{speed['seconds_per_page_1_core']:.2f}** | {speed['peak_rss_mib']} |",
        ),
        ("README.md", f"| {peer['word_f1']:.4f} | {peer['cer']:.4f} |"),
        ("README.md", f"reads {speed['times_rapidocr']:.2f}x the pages per second"),
        (
            "docs/correction.md",
            f"| without correction | {sroie['cer']:.4f} | {sroie['word_f1']:.4f} |",
        ),
        (
            "docs/correction.md",
            f"| with correction | {correction['cer']:.4f} | {correction['word_f1']:.4f} |",
        ),
        (
            "docs/models.md",
            f"CER {sroie['cer']:.4f}, word F1 {sroie['word_f1']:.4f} and character F1 "
            f"{zh['char_f1']:.4f}",
        ),
        ("docs/models.md", f"word F1 {peer['word_f1']:.3f} and CER {peer['cer']:.3f}"),
        *(
            ("docs/engine.md", f"| {quality[key]:g}{unit} | `quality.{key}` |")
            for key, unit in (
                ("min_text_height_px", " px"),
                ("min_contrast", ""),
                ("min_sharpness", ""),
            )
        ),
        (
            "docs/api.md",
            "| {uploads} | {clients} | {wall_seconds} | {burst_uploads_per_second:.1f} | "
            "{jobs_per_second:.3f} | {upload_request_ms_p50} / {upload_request_ms_p95} | "
            "{result_latency_s_p50} / {result_latency_s_p95} | {answers_429} | "
            "{lost} / {duplicated} |".format(**FIGURES["api_load"]),
        ),
        ("docs/scale-out.md", f"| local (2 workers) | {ray['local_pages_per_second']:.3f} |"),
        (
            "docs/scale-out.md",
            f"| Ray, 2 nodes x 1 CPU | {ray['ray_2_nodes_pages_per_second']:.3f} |",
        ),
        (
            "docs/scale-out.md",
            f"| Ray, 1 node x 1 CPU | {ray['ray_1_node_pages_per_second']:.3f} |",
        ),
        ("docs/scale-out.md", f"reads {ray['ray_over_local']:.3f} of the local executor's"),
        ("docs/scale-out.md", f"two nodes read {ray['scaling_1_to_2_nodes']:.2f}x one node"),
        ("docs/backends.md", f"ONNX Runtime {speed['pages_per_second_2_cores']:.3f} pages/s"),
        (
            "docs/backends.md",
            f"OpenVINO fp32 {speed['openvino_fp32_pages_per_second_2_cores']:.3f} pages/s",
        ),
        ("README.md", f"is {speed['fraction_of_floor']:.3f} of the model-only floor"),
        ("README.md", f"({speed['times_rapidocr_defaults']:.2f}x RapidOCR with its own threading"),
    ]


@pytest.mark.parametrize(("name", "quote"), _quotes())
def test_docs_quote_the_benchmark_figures(name: str, quote: str) -> None:
    text = re.sub(r"\s+", " ", (REPO / name).read_text(encoding="utf-8"))
    assert quote in text, f"{name} should say {quote!r} (benchmarks/figures.json)"


def test_every_figure_names_the_command_that_measures_it() -> None:
    for key, entry in FIGURES.items():
        if key != "about":
            assert entry["command"].startswith(".venv/bin/python "), key
