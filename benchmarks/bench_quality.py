"""Input quality thresholds: dev pages degraded along each axis until the OCR breaks.

A bounded sample of dev pages (``--receipts`` SROIE receipts spread over the 50, each cut to its
top ``--lines`` ground-truth lines at a gap between lines; ``--zh`` Chinese pages, cut alike) is
degraded along three axes, each to levels set per page from the page's own measures, so that a
level means the same on a small and a large scan:

- ``text_height``: shrunk (area averaging) so the median line box is ``level`` px high;
- ``contrast``: faded toward the paper colour (the page's per-channel median) so the ink/paper
  spread inside the line boxes is ``level`` grey levels;
- ``blur``: a Gaussian blur of sigma ``level`` times the page's text height.

Each degraded page is read by the real engine (default settings) and measured as the daemon
measures it (``ocr_pipeline.engine.quality.measure_page`` on the engine's boxes). Per axis and
level: the median measured value over the pages, the receipts' corpus CER and the Chinese
pages' character error (1 - order-free character F1), each against the undegraded score of the
same pages. **Rule**: the OCR breaks where the error rises by more than 50% relative to
undegraded (``BREAK_RATIO``); the threshold is the measured value there, interpolated linearly
between the last level under the rule and the first over it, the higher (more cautious) of the
receipts' and the Chinese pages' thresholds, rounded (``--round``). The blur axis gives the
sharpness threshold, the others their own measure's.

Prints a Markdown table and the thresholds; writes ``benchmarks/results/quality.json``.
``benchmarks/figures.json`` (``quality``) carries the thresholds the settings default to.

    .venv/bin/python benchmarks/bench_quality.py [--receipts 6] [--zh 000,003] [--lines 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.quality import PageQuality, measure_page
from ocr_pipeline.evaluation import Score
from ocr_pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BREAK_RATIO = 1.5
"""Error at a level over this times the undegraded error of the same pages: the OCR broke."""
LEVELS: dict[str, tuple[float, ...]] = {
    "text_height": (14.0, 12.0, 10.0, 8.0),
    "contrast": (40.0, 28.0, 20.0, 14.0),
    "blur": (0.05, 0.07, 0.085, 0.1),
}
"""Per axis, the levels from mild to severe (px; grey levels; sigma per text height)."""
MEASURE = {"text_height": "text_height_px", "contrast": "contrast", "blur": "sharpness"}
"""The measure (a :class:`PageQuality` field) each axis's threshold is in."""
ROUNDING = {"text_height_px": 0.5, "contrast": 1.0, "sharpness": 0.1}
"""Thresholds are rounded up to these steps."""


@dataclass
class Sample:
    """One page of the sample: the (cut) image, its reference text, set and undegraded read."""

    name: str
    dataset: str
    image: np.ndarray
    reference: str
    quality: PageQuality = field(default_factory=lambda: PageQuality(None, None, None, None))
    quads: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 2)))
    """The engine's line boxes on the undegraded page, ``(N, 4, 2)`` float64 pixels."""


@dataclass
class Run:
    """One read of one page at one level."""

    page: str
    dataset: str
    axis: str
    level: float
    quality: dict[str, float | None]
    """Measured on the engine's boxes of this (degraded) page, as the daemon measures it."""
    reference_quality: dict[str, float | None]
    """Measured on the undegraded page's boxes (scaled along): the measure of the page's text
    itself, also where the degraded page's boxes are no longer on it (what the thresholds use)."""
    edits: int
    ref_chars: int
    char_hits: int
    pred_chars: int
    seconds: float
    measure_ms: float


def cut_top(image: np.ndarray, page: dict[str, Any], lines: int) -> tuple[np.ndarray, str]:
    """The page's top part holding its first ``lines`` ground-truth lines (by top edge).

    The cut falls halfway in the gap below the last of them; a line it would cross is taken
    whole. Returns the cut ``(h, W, 3)`` image and the text of the lines above the cut, in the
    ground truth's order (the whole page when the cut would keep over 90% of it).
    """
    boxes = [np.asarray(line["box"], dtype=np.float64) for line in page["lines"]]
    tops = np.array([box[:, 1].min() for box in boxes])
    bottoms = np.array([box[:, 1].max() for box in boxes])
    order = np.argsort(tops, kind="stable")
    cut = float(bottoms[order[: max(1, lines)]].max())
    while True:  # take whole every line the cut crosses
        crossing = bottoms[(tops < cut) & (bottoms > cut)]
        if not len(crossing):
            break
        cut = float(crossing.max())
    below = tops[tops >= cut]
    cut = (cut + float(below.min())) / 2 if len(below) else float(image.shape[0])
    if cut >= 0.9 * image.shape[0]:
        return image, "\n".join(line["text"] for line in page["lines"])
    kept = [line["text"] for line, top in zip(page["lines"], tops, strict=True) if top < cut]
    return np.ascontiguousarray(image[: round(cut)]), "\n".join(kept)


def load_samples(receipts: int, zh: list[str], lines: int) -> list[Sample]:
    """``receipts`` dev receipts spread evenly over the 50 and the named zh-dev pages, cut."""
    samples = []
    for dataset, wanted in (("sroie-dev", None), ("zh-dev", zh)):
        records = [
            json.loads(line)
            for line in (DATA / dataset / "gt.jsonl").read_text("utf-8").splitlines()
            if line.strip()
        ]
        if wanted is None:
            step = max(1, len(records) // max(receipts, 1))
            records = records[::step][:receipts]
        else:
            records = [r for r in records if Path(r["image"]).stem in wanted]
        for record in records:
            image = cv2.imread(str(DATA / dataset / record["image"]), cv2.IMREAD_COLOR)
            assert image is not None, record["image"]
            cut, text = cut_top(image, record, lines)
            samples.append(Sample(Path(record["image"]).stem, dataset, cut, text))
    return samples


def degrade(
    image: np.ndarray, axis: str, level: float, base: PageQuality
) -> tuple[np.ndarray, float] | None:
    """The page degraded to ``level`` on ``axis``, and the scale applied (1 but when shrunk).

    None when the page is already at or below the level.
    """
    if axis == "text_height":
        assert base.text_height_px is not None
        scale = level / base.text_height_px
        if scale >= 0.95:
            return None
        return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale
    if axis == "contrast":
        assert base.contrast is not None
        keep = level / base.contrast
        if keep >= 0.95:
            return None
        paper = np.median(image.reshape(-1, 3), axis=0)
        faded = paper + keep * (image.astype(np.float32) - paper)
        return np.clip(np.rint(faded), 0, 255).astype(np.uint8), 1.0
    assert base.text_height_px is not None
    return cv2.GaussianBlur(image, (0, 0), sigmaX=level * base.text_height_px), 1.0


def read(
    engine: Engine, sample: Sample, image: np.ndarray, axis: str, level: float, scale: float
) -> Run:
    """Read ``image`` (``sample`` degraded, shrunk by ``scale``) and measure it."""
    started = time.perf_counter()
    page = engine.ocr(image).page
    seconds = time.perf_counter() - started
    quads = np.array([line.box for line in page.lines], dtype=np.float64).reshape(-1, 4, 2)
    timer = time.perf_counter()
    quality = measure_page(image, quads)
    measure_ms = (time.perf_counter() - timer) * 1000.0
    if axis == "none":
        sample.quads = quads
    reference = measure_page(image, sample.quads * scale)
    score = Score()
    score.add(page.text, sample.reference)
    return Run(
        page=f"{sample.dataset}/{sample.name}",
        dataset=sample.dataset,
        axis=axis,
        level=level,
        quality=asdict(quality),
        reference_quality=asdict(reference),
        edits=score.edits,
        ref_chars=score.ref_chars,
        char_hits=score.char_hits,
        pred_chars=score.pred_chars,
        seconds=round(seconds, 2),
        measure_ms=round(measure_ms, 2),
    )


def error(runs: list[Run], dataset: str) -> float | None:
    """Corpus error of runs: CER for receipts, 1 - character F1 for the Chinese pages."""
    picked = [run for run in runs if run.dataset == dataset]
    if not picked:
        return None
    if dataset == "sroie-dev":
        return sum(r.edits for r in picked) / max(1, sum(r.ref_chars for r in picked))
    hits = sum(r.char_hits for r in picked)
    predicted, reference = sum(r.pred_chars for r in picked), sum(r.ref_chars for r in picked)
    f1 = 2 * hits / (predicted + reference) if predicted + reference else 0.0
    return 1.0 - f1


def axis_rows(runs: list[Run], axis: str) -> list[dict[str, Any]]:
    """Per level of ``axis`` (undegraded first): median measures and errors against baseline."""
    baseline = {run.page: run for run in runs if run.axis == "none"}
    rows = []
    for level in (0.0, *LEVELS[axis]):
        at = [run for run in runs if run.axis == axis and run.level == level]
        if level == 0.0:
            at = list(baseline.values())
        if not at:
            continue
        base = [baseline[run.page] for run in at]
        row: dict[str, Any] = {"level": level, "pages": len(at)}
        for measure in ("text_height_px", "contrast", "sharpness"):
            for key, label in (("reference_quality", ""), ("quality", "engine ")):
                values = [getattr(run, key)[measure] for run in at]
                known = [value for value in values if value is not None]
                row[label + measure] = statistics.median(known) if known else None
        for dataset in ("sroie-dev", "zh-dev"):
            now, then = error(at, dataset), error(base, dataset)
            row[dataset] = None if now is None else round(now, 4)
            row[f"{dataset} ratio"] = (
                None if now is None or then is None else round(now / max(then, 1e-6), 2)
            )
        rows.append(row)
    return rows


def threshold(rows: list[dict[str, Any]], measure: str, dataset: str) -> float | None:
    """Measured value where the error ratio crosses :data:`BREAK_RATIO` (linear), or None."""
    ratio = f"{dataset} ratio"
    usable = [row for row in rows if row[ratio] is not None and row[measure] is not None]
    for good, bad in itertools.pairwise(usable):
        if good[ratio] <= BREAK_RATIO < bad[ratio]:
            share = (BREAK_RATIO - good[ratio]) / (bad[ratio] - good[ratio])
            return float(good[measure] + share * (bad[measure] - good[measure]))
    return None


def round_up(value: float, step: float) -> float:
    """``value`` rounded up to a multiple of ``step``."""
    return round(float(np.ceil(value / step - 1e-9) * step), 3)


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=6, help="dev receipts (spread evenly)")
    parser.add_argument("--zh", default="000,003", help="zh-dev pages ('' for none)")
    parser.add_argument("--lines", type=int, default=10, help="ground-truth lines kept per page")
    args = parser.parse_args()
    started = time.perf_counter()
    engine = Engine.from_settings(load_settings())
    samples = load_samples(args.receipts, [s for s in args.zh.split(",") if s], args.lines)
    runs: list[Run] = []
    for number, sample in enumerate(samples, 1):
        base = read(engine, sample, sample.image, "none", 0.0, 1.0)
        sample.quality = PageQuality(**base.quality)
        runs.append(base)
        if sample.quality.text_height_px is None or sample.quality.contrast is None:
            continue  # nothing read: no levels to set
        for axis, levels in LEVELS.items():
            for level in levels:
                degraded = degrade(sample.image, axis, level, sample.quality)
                if degraded is not None:
                    runs.append(read(engine, sample, *degraded[:1], axis, level, degraded[1]))
        print(
            f"[{number}/{len(samples)}] {sample.dataset}/{sample.name} {sample.quality} "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    report: dict[str, Any] = {
        "command": ".venv/bin/python benchmarks/bench_quality.py",
        "rule": f"error over {BREAK_RATIO}x undegraded; interpolated; higher of the two sets",
        "pages": [f"{s.dataset}/{s.name}" for s in samples],
        "measure_ms_median": round(statistics.median(r.measure_ms for r in runs), 2),
        "axes": {},
        "thresholds": {},
    }
    print(
        "\nMeasures: median over the pages, of the text (the undegraded page's boxes) and, in "
        "brackets, on the engine's boxes of the degraded page.\n\n| axis | level | pages "
        "| text height px | contrast | sharpness | receipts CER (x undegraded) "
        "| zh 1 - char F1 (x undegraded) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for axis in LEVELS:
        rows = axis_rows(runs, axis)
        measure = MEASURE[axis]
        found = {d: threshold(rows, measure, d) for d in ("sroie-dev", "zh-dev")}
        known = [value for value in found.values() if value is not None]
        chosen = round_up(max(known), ROUNDING[measure]) if known else None
        report["axes"][axis] = {"rows": rows, "break_at": found}
        report["thresholds"][measure] = chosen
        for row in rows:
            measures = " | ".join(
                f"{_fmt(row[m])} ({_fmt(row['engine ' + m])})"
                for m in ("text_height_px", "contrast", "sharpness")
            )
            print(
                f"| {axis} | {row['level']:g} | {row['pages']} | {measures} "
                f"| {_fmt(row['sroie-dev'], 4)} ({_fmt(row['sroie-dev ratio'], 2)}) "
                f"| {_fmt(row['zh-dev'], 4)} ({_fmt(row['zh-dev ratio'], 2)}) |"
            )
        print(
            f"| {axis} | breaks at {measure} | receipts {_fmt(found['sroie-dev'], 2)}, "
            f"zh {_fmt(found['zh-dev'], 2)}: threshold {chosen} | | | | | |"
        )
    report["runs"] = [asdict(run) for run in runs]
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"\nthresholds: {report['thresholds']}; measure_page median "
        f"{report['measure_ms_median']} ms; {report['seconds']} s"
    )
    out = REPO / "benchmarks" / "results" / "quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
