"""Accuracy, speed and memory of each registered det/rec model pair on a ground-truth folder.

For every pair, a fresh worker process (this script with the hidden ``--worker`` flag) loads the
engine once, so peak RSS (``ru_maxrss``) is that pair's alone. It decodes each page with
``cv2.imread`` as it goes (pages are not held in memory) and OCRs it with ONNX Runtime on all cores
(``runtime.intra_op_threads = 0``). Reported per pair: corpus CER (whitespace-free, case-folded,
reading order), order-free word F1 and character F1 (case-folded), as ``evaluation.Score``; wall
seconds per page of ``Engine.ocr`` (decoding excluded), after one warm-up page; model load time
(``Engine.from_settings``); peak RSS in MiB; per page CER, character and word F1, line count and
seconds. Prints a Markdown table (and with ``--per-page`` one per pair's pages), writes JSON.

    .venv/bin/python benchmarks/bench_models.py          # all four pairs on sroie-dev
    .venv/bin/python benchmarks/bench_models.py --pairs ppocrv6-small \
        --set detect.box_thresh=0.5 --json benchmarks/results/v6-small.json
    .venv/bin/python benchmarks/bench_models.py --dataset ../shared/data/zh-dev --per-page
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "data" / "sroie-dev"
PAIRS = {
    "ppocrv4": ("ppocrv4-det", "ppocrv4-rec"),
    "ppocrv5": ("ppocrv5-det", "ppocrv5-rec"),
    "ppocrv6-tiny": ("ppocrv6-tiny-det", "ppocrv6-tiny-rec"),
    "ppocrv6-small": ("ppocrv6-small-det", "ppocrv6-small-rec"),
}


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn ``section.key=value`` strings into nested override dicts (values parsed as JSON)."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, _, raw = item.partition("=")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = overrides
        *sections, leaf = key.split(".")
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = value
    return overrides


def measure(dataset: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Run in the worker process: load the engine, OCR every page, return the figures."""
    import cv2

    from ocr_pipeline.engine import Engine
    from ocr_pipeline.evaluation import Score, load_ground_truth
    from ocr_pipeline.settings import load_settings

    settings = load_settings(**overrides)
    start = time.perf_counter()
    engine = Engine.from_settings(settings)
    load_seconds = time.perf_counter() - start
    pages = load_ground_truth(dataset)
    engine.ocr(cv2.imread(str(pages[0].image), cv2.IMREAD_COLOR))  # warm-up
    score = Score()
    per_page: list[dict[str, Any]] = []
    seconds = 0.0
    for page in pages:
        image = cv2.imread(str(page.image), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot decode {page.image}")
        start = time.perf_counter()
        result = engine.ocr(image).page
        elapsed = time.perf_counter() - start
        seconds += elapsed
        score.add(result.text, page.text)
        one = Score()
        one.add(result.text, page.text)
        per_page.append(
            {
                "image": page.image.name,
                "cer": round(one.cer, 4),
                "word_f1": round(one.word_f1, 4),
                "char_f1": round(one.char_f1, 4),
                "lines": len(result.lines),
                "seconds": round(elapsed, 3),
            }
        )
    return {
        "pages": score.pages,
        "cer": round(score.cer, 4),
        "word_f1": round(score.word_f1, 4),
        "char_f1": round(score.char_f1, 4),
        "seconds_per_page": round(seconds / score.pages, 3),
        "load_seconds": round(load_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "intra_op_threads": settings.runtime.intra_op_threads,
        "per_page": per_page,
    }


def run_pair(name: str, dataset: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Measure one pair in a fresh interpreter and return its figures."""
    det, rec = PAIRS[name]
    overrides = json.loads(json.dumps(extra))
    overrides.setdefault("detect", {})["model"] = det
    overrides.setdefault("recognize", {})["model"] = rec
    overrides.setdefault("runtime", {}).setdefault("intra_op_threads", 0)  # all cores
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(overrides), "--dataset", str(dataset)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker for {name} failed ({proc.returncode}):\n{proc.stderr}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"pair": name, "detector": det, "recognizer": rec, **figures}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the measured pairs."""
    head = "| pair | word F1 | CER | char F1 | s/page | load s | peak RSS MiB |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['word_f1']:.4f} | {r['cer']:.4f} | {r['char_f1']:.4f} | "
            f"{r['seconds_per_page']:.3f} | {r['load_seconds']:.2f} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def page_table(row: dict[str, Any]) -> str:
    """Markdown table of one pair's pages: CER, character F1, lines, seconds."""
    lines = [
        f"{row['pair']}:",
        "| page | CER | char F1 | word F1 | lines | s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for page in row["per_page"]:
        lines.append(
            f"| {page['image']} | {page['cer']:.4f} | {page['char_f1']:.4f} | "
            f"{page['word_f1']:.4f} | {page['lines']} | {page['seconds']:.2f} |"
        )
    lines.append(
        f"| all | {row['cer']:.4f} | {row['char_f1']:.4f} | {row['word_f1']:.4f} | "
        f"{sum(p['lines'] for p in row['per_page'])} | {row['seconds_per_page']:.2f} per page |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "models.json"
    )
    parser.add_argument("--per-page", action="store_true", help="also a table per pair's pages")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args.dataset, json.loads(args.worker))))
        return
    extra = parse_assignments(args.assignments)
    rows = [run_pair(name, args.dataset, extra) for name in args.pairs]
    print(f"dataset: {args.dataset} ({rows[0]['pages']} pages); overrides: {extra or 'none'}")
    print(table(rows))
    if args.per_page:
        for row in rows:
            print()
            print(page_table(row))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"overrides": extra, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
