"""The time each result writer adds per page, against the page's OCR time, and its output's size.

Each input (``--receipts`` SROIE dev receipts spread over the 50, and the ``--zh`` zh-dev pages)
is read once by the real engine with the default settings (``ocr_pipeline.jobs.ocr_file``: the
wall time is the page's OCR time, decoding included). Then every registered writer
(``ocr_pipeline.writers.WRITERS``: json, txt, pdf, hocr, alto) renders the result ``--repeat``
times; its time is the median of those, in milliseconds (the PDF writer's includes reading the
original and making the font). A writer that is not written yet, or fails, is reported as
``n/a`` with the reason. The size ratio is the output's bytes over the input file's bytes (for
the PDF: what the searchable PDF costs over the scan).

Prints a Markdown table (medians and maxima over the pages) and writes
``benchmarks/results/writers.json`` (every page's figures).

    .venv/bin/python benchmarks/bench_writers.py [--receipts 10] [--zh 000,003] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from ocr_pipeline.documents import DecodeLimits
from ocr_pipeline.engine import Engine
from ocr_pipeline.jobs import ocr_file
from ocr_pipeline.settings import load_settings
from ocr_pipeline.writers import WRITERS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUTPUT = REPO / "benchmarks" / "results" / "writers.json"
TARGET_SHARE = 0.10
"""The PDF writer's target: under this share of a page's OCR time."""


def inputs(receipts: int, zh: list[str]) -> list[Path]:
    """``receipts`` dev receipts spread evenly over the 50, then the named zh-dev pages."""
    all_receipts = sorted((DATA / "sroie-dev" / "images").glob("*.jpg"))
    step = max(1, len(all_receipts) // max(1, receipts))
    chosen = all_receipts[::step][:receipts]
    return [*chosen, *(DATA / "zh-dev" / "images" / f"{name}.jpg" for name in zh)]


def time_writer(name: str, result: Any, source: Path, repeat: int) -> dict[str, Any]:
    """Median render time of one writer on one result, milliseconds, and its output's size."""
    writer = WRITERS[name]
    times = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            size = len(writer.render(result, source))
        except Exception as exc:  # a writer not written yet: reported, not fatal
            return {"ms": None, "bytes": None, "error": f"{type(exc).__name__}: {exc}"}
        times.append((time.perf_counter() - started) * 1000.0)
    return {"ms": round(statistics.median(times), 2), "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=10, help="dev receipts, spread over 50")
    parser.add_argument("--zh", default="000,003", help="zh-dev pages, comma-separated ('' none)")
    parser.add_argument("--repeat", type=int, default=3, help="renders per writer and page")
    args = parser.parse_args()
    os.environ.setdefault("OCR_PIPELINE_MODELS__DIR", str(REPO / "models"))
    settings = load_settings()
    engine = Engine.from_settings(settings)
    zh = [name for name in args.zh.split(",") if name]
    pages: list[dict[str, Any]] = []
    for source in inputs(args.receipts, zh):
        started = time.perf_counter()
        result = ocr_file(source, engine, DecodeLimits(), source.name)
        ocr_ms = (time.perf_counter() - started) * 1000.0
        row: dict[str, Any] = {
            "page": f"{source.parent.parent.name}/{source.stem}",
            "input_bytes": source.stat().st_size,
            "ocr_ms": round(ocr_ms, 1),
            "writers": {name: time_writer(name, result, source, args.repeat) for name in WRITERS},
        }
        pages.append(row)
        pdf = row["writers"]["pdf"]
        print(f"{row['page']}: OCR {ocr_ms:.0f} ms, pdf {pdf['ms']} ms", flush=True)
    summary = {}
    for name in WRITERS:
        done = [p for p in pages if p["writers"][name]["ms"] is not None]
        if not done:
            errors = {p["writers"][name]["error"] for p in pages}
            summary[name] = {"status": "n/a", "error": sorted(errors)[0]}
            continue
        ms = [p["writers"][name]["ms"] for p in done]
        share = [p["writers"][name]["ms"] / p["ocr_ms"] for p in done]
        ratio = [p["writers"][name]["bytes"] / p["input_bytes"] for p in done]
        summary[name] = {
            "status": "ok",
            "ms_median": round(statistics.median(ms), 2),
            "ms_max": round(max(ms), 2),
            "share_of_ocr_median": round(statistics.median(share), 4),
            "share_of_ocr_max": round(max(share), 4),
            "size_ratio_median": round(statistics.median(ratio), 3),
            "size_ratio_max": round(max(ratio), 3),
        }
    ocr = [p["ocr_ms"] for p in pages]
    print()
    print(f"{len(pages)} pages, OCR median {statistics.median(ocr):.0f} ms/page (1 process)")
    print()
    print(
        "| writer | ms/page median | ms/page max | % of OCR median | % of OCR max "
        "| size / input median | size / input max |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, figures in summary.items():
        if figures["status"] != "ok":
            print(f"| {name} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        share_median = 100 * figures["share_of_ocr_median"]
        share_max = 100 * figures["share_of_ocr_max"]
        print(
            f"| {name} | {figures['ms_median']} | {figures['ms_max']} "
            f"| {share_median:.2f} | {share_max:.2f} "
            f"| {figures['size_ratio_median']} | {figures['size_ratio_max']} |"
        )
    pdf_summary = summary["pdf"]
    if pdf_summary["status"] == "ok":
        met = pdf_summary["share_of_ocr_max"] < TARGET_SHARE
        print(f"\npdf writer under {TARGET_SHARE:.0%} of every page's OCR time: {met}")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": ".venv/bin/python benchmarks/bench_writers.py "
        f"--receipts {args.receipts} --zh {args.zh} --repeat {args.repeat}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "ocr_ms_median": round(statistics.median(ocr), 1),
        "writers": summary,
        "pages": pages,
    }
    OUTPUT.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
