"""Settings sweep on a ground-truth folder: corpus CER and word F1 per configuration.

All configurations run in one process. Model outputs are memoised by a digest of their input
tensor (detector probability maps; recognizer batches decoded to text), so configurations that
share a detector input or a recognition batch do not pay for it twice; the figures are exactly
those of ``Engine.ocr``. Timings here are therefore not meaningful: use bench_models.py for speed.

    /work/venv/bin/python benchmarks/sweep.py --base recognize.min_confidence=0.5 \
        --grid detect.thresh=0.2,0.3 --grid detect.box_thresh=0.4,0.5

Each result (overrides, CER, word F1, per-page CER) is appended as one JSON line to ``--out``;
``--dump`` pickles every page's lines (quads, texts, confidences) of each configuration, for
reading-order experiments.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.backend import InferenceBackend
from ocr_pipeline.engine.recognize import (
    Recognized,
    TextRecognizer,
)
from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import DEFAULT_DATASET, REPO, parse_assignments

_DET_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_DET_CACHE_ITEMS = 200
_REC_CACHE: dict[tuple[str, str, float], list[Recognized]] = {}


def _digest(array: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).hexdigest()


def _memo_run(model: InferenceBackend, name: str) -> None:
    """Memoise a detector's ``run`` by input digest (LRU, bounded)."""
    original = model.run

    def run(batch: np.ndarray) -> np.ndarray:
        key = (name, _digest(batch))
        if key in _DET_CACHE:
            _DET_CACHE.move_to_end(key)
            return _DET_CACHE[key]
        out = original(batch)
        _DET_CACHE[key] = out
        while len(_DET_CACHE) > _DET_CACHE_ITEMS:
            _DET_CACHE.popitem(last=False)
        return out

    model.run = run  # type: ignore[method-assign]


def _memo_recognize(recognizer: TextRecognizer, name: str) -> None:
    """Wrap ``read_batch`` so each batch's decoded readings are memoised by its digest."""
    read_batch = recognizer.read_batch
    space_gap = recognizer.settings.space_gap

    def memo(batch: np.ndarray, resized: list[np.ndarray]) -> list[Recognized]:
        key = (name, _digest(batch), space_gap)
        if key not in _REC_CACHE:
            _REC_CACHE[key] = read_batch(batch, resized)
        return _REC_CACHE[key]

    recognizer.read_batch = memo  # type: ignore[method-assign]


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested override dicts (``extra`` wins)."""
    out = json.loads(json.dumps(base))
    for section, values in extra.items():
        if isinstance(values, dict):
            out.setdefault(section, {}).update(values)
        else:
            out[section] = values
    return out


def evaluate(
    overrides: dict[str, Any], pages: list[Any], images: list[np.ndarray]
) -> tuple[dict[str, Any], list[Any]]:
    """OCR every page with one configuration; return its figures and the page records."""
    settings = load_settings(**merge({"runtime": {"intra_op_threads": 0}}, overrides))
    engine = Engine.from_settings(settings)
    _memo_run(engine.detector.model, settings.detect.model)
    _memo_recognize(engine.recognizer, settings.recognize.model)
    score = Score()
    per_page: list[float] = []
    records = []
    for page, image in zip(pages, images, strict=True):
        result = engine.ocr(image).page
        score.add(result.text, page.text)
        one = Score()
        one.add(result.text, page.text)
        per_page.append(round(one.cer, 4))
        records.append(result)
    figures = {
        "overrides": overrides,
        "cer": round(score.cer, 4),
        "word_f1": round(score.word_f1, 4),
        "char_f1": round(score.char_f1, 4),
        "per_page_cer": per_page,
    }
    return figures, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--base", action="append", default=[], help="section.key=value")
    parser.add_argument("--grid", action="append", default=[], help="section.key=v1,v2,...")
    parser.add_argument("--configs", type=Path, help="JSON list of override dicts")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sweep.jsonl")
    parser.add_argument(
        "--dump", type=Path, help="pickle each configuration's pages to DUMP-<number>.pkl"
    )
    args = parser.parse_args()
    base = parse_assignments(args.base)
    configs: list[dict[str, Any]] = []
    if args.configs is not None:
        configs = [merge(base, c) for c in json.loads(args.configs.read_text())]
    else:
        axes = [(key, raw.split(",")) for key, _, raw in (g.partition("=") for g in args.grid)]
        for combo in itertools.product(*(values for _, values in axes)):
            assignments = [f"{key}={v}" for (key, _), v in zip(axes, combo, strict=True)]
            configs.append(merge(base, parse_assignments(assignments)))
    pages = load_ground_truth(args.dataset)
    images = [cv2.imread(str(page.image), cv2.IMREAD_COLOR) for page in pages]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for number, overrides in enumerate(configs or [base]):
        start = time.perf_counter()
        figures, records = evaluate(overrides, pages, images)
        with args.out.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(figures) + "\n")
        print(
            f"F1 {figures['word_f1']:.4f}  char F1 {figures['char_f1']:.4f}  "
            f"CER {figures['cer']:.4f}  "
            f"({time.perf_counter() - start:.0f} s)  {json.dumps(overrides)}",
            flush=True,
        )
        if args.dump is not None:
            dump(args.dump.with_name(f"{args.dump.stem}-{number}.pkl"), pages, records, overrides)


def dump(path: Path, pages: list[Any], records: list[Any], overrides: dict[str, Any]) -> None:
    """Pickle each page's lines in reading order (quads, texts, confidences) and ground truth."""
    data = [
        {
            "image": page.image.name,
            "gt": page.text,
            "overrides": overrides,
            "quads": np.array([ln.box for ln in rec.lines], dtype=np.float32).reshape(-1, 4, 2),
            "texts": [ln.text for ln in rec.lines],
            "confidences": [ln.confidence for ln in rec.lines],
        }
        for page, rec in zip(pages, records, strict=True)
    ]
    path.write_bytes(pickle.dumps(data))


if __name__ == "__main__":
    main()
