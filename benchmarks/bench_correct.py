"""Spell-correction on sroie-dev: accuracy with and without it, over-corrections, and its cost.

1. Builds a lexicon from ``../shared/data/sroie-train-text`` with ``ocr-pipeline lexicon build``
   (other receipts than the dev ones).
2. OCRs the 50 dev receipts once with the default engine, then scores the text without and with
   correction: case-folded CER (reading order, whitespace-free) and order-free word F1.
3. Counts *over-corrections*: lines whose raw text already equalled a ground-truth line
   (case-folded, whitespace-free) and that correction changed.
4. Computes the ceiling of any per-line correction: every recognised line replaced by its
   nearest ground-truth line (normalised Levenshtein distance below 1/3), order unchanged.
5. Times correction of a page of 100+ lines (two dev receipts stacked) against that page's
   recognition time.

    .venv/bin/python benchmarks/bench_correct.py [--lexicon FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ocr_pipeline.cli import main as cli_main
from ocr_pipeline.correct import correct_page, corrector_from_settings
from ocr_pipeline.engine import Engine
from ocr_pipeline.evaluation import Score, load_ground_truth, squash
from ocr_pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def stacked_page(images: list[np.ndarray]) -> np.ndarray:
    """Images stacked top to bottom on a white page as wide as the widest, ``(H, W, 3)`` uint8."""
    width = max(image.shape[1] for image in images)
    padded = [
        cv2.copyMakeBorder(im, 0, 0, 0, width - im.shape[1], cv2.BORDER_CONSTANT, value=255)
        for im in images
    ]
    return np.vstack(padded)


def oracle_text(text: str, lines: list[str], reference: str) -> str:
    """``text`` with each line replaced by its nearest reference line (the correction ceiling)."""
    truth = [line for line in reference.splitlines() if line.strip()]
    folded = [line.casefold() for line in truth]
    pieces, cursor = [], 0
    for line in lines:
        best = process.extractOne(line.casefold(), folded, scorer=Levenshtein.normalized_distance)
        replacement = truth[best[2]] if best is not None and best[1] < 1 / 3 else line
        position = text.index(line, cursor)
        pieces += [text[cursor:position], replacement]
        cursor = position + len(line)
    return "".join(pieces) + text[cursor:]


def main() -> None:
    """Run the benchmark, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lexicon", type=Path, help="lexicon file (default: built from train)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/correct.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        lexicon = args.lexicon
        if lexicon is None:
            lexicon = Path(scratch) / "sroie-train.txt"
            train = str(SHARED / "sroie-train-text")
            assert cli_main(["lexicon", "build", train, "-o", str(lexicon)]) == 0
        settings = load_settings()
        corrector = corrector_from_settings(
            settings.correct.model_copy(update={"lexicons": [lexicon]})
        )
    engine = Engine.from_settings(settings)

    raw, corrected, ceiling = Score(), Score(), Score()
    changes = over = 0
    rules: dict[str, int] = {}
    images = []
    for record in load_ground_truth(SHARED / "sroie-dev"):
        image = cv2.imread(str(record.image), cv2.IMREAD_COLOR)
        assert image is not None, record.image
        images.append(image)
        page = engine.ocr(image).page
        fixed = correct_page(page, corrector)
        raw.add(page.text, record.text)
        corrected.add(fixed.text, record.text)
        raw_lines = [line.raw_text for line in page.lines]
        ceiling.add(oracle_text(page.text, raw_lines, record.text), record.text)
        truth = {squash(line) for line in record.text.splitlines()}
        for before, after in zip(page.lines, fixed.lines, strict=True):
            changes += len(after.corrections)
            for change in after.corrections:
                rules[change.rule] = rules.get(change.rule, 0) + 1
            over += squash(before.raw_text) in truth and after.text != before.raw_text

    dense = stacked_page(images[:2])
    dense_ocr = engine.ocr(dense)
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        correct_page(dense_ocr.page, corrector)
    correct_ms = (time.perf_counter() - start) * 1000 / repeats
    recognize_ms = dense_ocr.timings_ms["recognize"]

    report = {
        "lexicon_entries": len(corrector.lexicon),
        "without": {"cer": round(raw.cer, 4), "word_f1": round(raw.word_f1, 4)},
        "with": {"cer": round(corrected.cer, 4), "word_f1": round(corrected.word_f1, 4)},
        "cer_relative_reduction": round((raw.cer - corrected.cer) / raw.cer, 4),
        "ceiling": {"cer": round(ceiling.cer, 4), "word_f1": round(ceiling.word_f1, 4)},
        "ceiling_cer_relative_reduction": round((raw.cer - ceiling.cer) / raw.cer, 4),
        "changes": changes,
        "changes_by_rule": rules,
        "over_corrections": over,
        "dense_page_lines": len(dense_ocr.page.lines),
        "dense_page_recognize_ms": round(recognize_ms, 1),
        "dense_page_correct_ms": round(correct_ms, 2),
        "correct_share_of_recognize": round(correct_ms / recognize_ms, 4),
    }
    print("| run | CER | word F1 |")
    print("| --- | --- | --- |")
    print(f"| without correction | {raw.cer:.4f} | {raw.word_f1:.4f} |")
    print(f"| with correction | {corrected.cer:.4f} | {corrected.word_f1:.4f} |")
    print(f"| ceiling: lines = nearest truth | {ceiling.cer:.4f} | {ceiling.word_f1:.4f} |")
    print(
        f"\nCER reduced by {report['cer_relative_reduction']:.1%} (relative); {changes} changes "
        f"{rules}, {over} over-corrections; {report['lexicon_entries']} lexicon entries"
    )
    print(
        f"{report['dense_page_lines']}-line page: correction {correct_ms:.2f} ms vs recognition "
        f"{recognize_ms:.0f} ms ({report['correct_share_of_recognize']:.2%})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
