"""Static int8 models of the detector and recognizer: model speed against fp32, and accuracy.

Calibration pages are never evaluation pages: receipts rendered from the text of SROIE receipts
050-499 (``shared/data/sroie-train-text``, monospace and sans fonts, mild scan degradation),
two Chinese pages rendered from the Chinese lines of ``examples/`` and ``tests/`` (Noto CJK),
and the two sample scans of ``examples/``. They go through the default engine
(:func:`benchmarks.int8_models.record_calibration`), so the detector sees the engine's own input
sizes and the recognizer the line crops found on those pages. Each variant is built with ONNX
Runtime's ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations) by
:mod:`benchmarks.int8_models`.

Measured, in this one process (the machine is shared: ratios are taken from runs alternated
round by round, medians over rounds):

- model-only speed of each int8 model against its fp32 model on ONNX Runtime (the engine's
  session options, all cores), over recorded inputs of the dev-like sizes (the calibration
  inputs: detector pages, recognizer lines); with ``--openvino`` also OpenVINO fp32, OpenVINO
  with ``INFERENCE_PRECISION_HINT = bf16`` and OpenVINO on the int8 QDQ model;
- end-to-end accuracy with the int8 detector alone, the int8 recognizer alone, and both: sroie-dev
  corpus CER and word F1 (50 receipts), zh-dev character F1 (6 pages), against the floors
  CER <= 0.120, word F1 >= 0.870, char F1 >= 0.954.

Prints Markdown tables, writes JSON to benchmarks/results/bench_int8.json; models go to
``models/int8/`` (git-ignored).

    .venv/bin/python -m benchmarks.bench_int8             # all variants
    .venv/bin/python -m benchmarks.bench_int8 --variants minmax --openvino --rounds 5
    .venv/bin/python -m benchmarks.bench_int8 --no-accuracy          # speed only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
os.environ.setdefault("OCR_PIPELINE_MODELS__DIR", str(REPO / "models"))

from benchmarks.int8_models import (  # noqa: E402
    Calibration,
    QuantizeOptions,
    prepare,
    quantize_model,
    record_calibration,
    sensitive_nodes,
    spread,
    with_models,
)
from ocr_pipeline.engine import Engine  # noqa: E402  (after the model store is chosen)
from ocr_pipeline.engine.backend import InferenceBackend  # noqa: E402
from ocr_pipeline.engine.onnxruntime_backend import (  # noqa: E402
    OnnxRuntimeModel,
    run_options,
    session_options,
)
from ocr_pipeline.evaluation import Score, load_ground_truth  # noqa: E402
from ocr_pipeline.settings import Settings, load_settings  # noqa: E402

SEED = 20261126
LATIN_FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
]
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
CJK_SC = 2  # Simplified Chinese face of the Noto CJK collection
FLOORS = {"cer": 0.120, "word_f1": 0.870, "char_f1": 0.954}
VARIANTS: dict[str, dict[str, Any]] = {
    "all-ops": {"op_types": ()},
    "conv-matmul": {"op_types": ("Conv", "MatMul")},
    "conv-matmul-keep-ends": {"op_types": ("Conv", "MatMul"), "keep_sensitive": True},
    "conv-keep-ends": {"op_types": ("Conv",), "keep_sensitive": True},
    "conv-matmul-keep-ends-constb": {
        "op_types": ("Conv", "MatMul"),
        "keep_sensitive": True,
        "extra": {"MatMulConstBOnly": True},
    },
    "conv-matmul-keep-ends-pct": {
        "op_types": ("Conv", "MatMul"),
        "keep_sensitive": True,
        "method": "percentile",
    },
    "conv-matmul-keep-ends-rr": {
        "op_types": ("Conv", "MatMul"),
        "keep_sensitive": True,
        "reduce_range": True,
    },
}
"""Quantization variants: :class:`QuantizeOptions` fields, plus ``keep_sensitive``."""


def degrade(page: Image.Image, rng: random.Random) -> np.ndarray:
    """A rendered grey page made to look scanned: tilt, blur, noise, paper tone, JPEG."""
    grey: np.ndarray = np.asarray(page.convert("L"), dtype=np.float32)
    height, width = grey.shape
    angle = rng.uniform(-1.5, 1.5)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    grey = cv2.warpAffine(grey, matrix, (width, height), borderValue=255.0)
    grey = cv2.GaussianBlur(grey, (0, 0), rng.uniform(0.5, 1.1))
    tone = np.linspace(rng.uniform(215, 245), rng.uniform(225, 255), width, dtype=np.float32)
    grey = grey / 255.0 * tone[np.newaxis, :]
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(3, 9), grey.shape)
    grey = np.clip(grey + noise, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, rng.randrange(70, 92)])
    if not ok:
        raise SystemExit("cannot encode a rendered page")
    decoded: np.ndarray | None = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if decoded is None:
        raise SystemExit("cannot decode a rendered page")
    return decoded


def render_receipt(lines: list[str], rng: random.Random) -> np.ndarray:
    """One receipt of ``lines`` (left, centred or right-aligned), 420-820 px wide, as BGR."""
    size = rng.randrange(15, 25)
    font = ImageFont.truetype(rng.choice(LATIN_FONTS), size)
    width = rng.randrange(420, 820)
    margin = rng.randrange(15, 60)
    step = int(size * rng.uniform(1.25, 1.7))
    page = Image.new("L", (width, margin * 2 + step * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for row, text in enumerate(lines):
        text_width = draw.textlength(text, font=font)
        align = rng.choice(("l", "l", "m", "r")) if text_width < width - 2 * margin else "l"
        x = {"l": margin, "m": (width - text_width) / 2, "r": width - margin - text_width}[align]
        draw.text((x, margin + row * step), text, fill=rng.randrange(0, 70), font=font)
    return degrade(page, rng)


def cjk_lines() -> list[str]:
    """Lines with Chinese text from the examples' ground truth and the tests' strings."""
    cjk = re.compile(r"[\u4e00-\u9fff]")
    lines: list[str] = []
    sources = sorted((REPO / "examples").glob("*.gt.txt")) + sorted((REPO / "tests").glob("*.py"))
    for path in sources:
        for raw in path.read_text(encoding="utf-8").splitlines():
            found = re.findall(r'"([^"\n]*)"', raw) if path.suffix == ".py" else [raw]
            lines += [text.strip() for text in found if len(cjk.findall(text)) >= 4]
    return list(dict.fromkeys(lines))


def render_cjk_page(lines: list[str], rng: random.Random, columns: int) -> np.ndarray:
    """A Chinese page of ``lines`` (shuffled) in ``columns`` columns, as BGR."""
    size = rng.randrange(16, 30) if columns == 1 else rng.randrange(13, 18)
    font = ImageFont.truetype(CJK_FONT, size, index=CJK_SC)
    width, margin, gutter = (1100, 70, 40) if columns == 1 else (1300, 50, 30)
    column_width = (width - 2 * margin - gutter * (columns - 1)) // columns
    step = int(size * 1.5)
    text = "".join(rng.sample(lines, len(lines)))
    chars_per_row = max(1, column_width // size)
    rows = [text[i : i + chars_per_row] for i in range(0, len(text), chars_per_row)]
    per_column = -(-len(rows) // columns)
    page = Image.new("L", (width, 2 * margin + step * per_column), 255)
    draw = ImageDraw.Draw(page)
    for index, row in enumerate(rows):
        column, line = divmod(index, per_column)
        x = margin + column * (column_width + gutter)
        draw.text((x, margin + line * step), row, fill=20, font=font)
    return degrade(page, rng)


def calibration_pages(receipts: int) -> list[tuple[str, np.ndarray]]:
    """The calibration pages: rendered receipts, rendered Chinese pages, the sample scans."""
    rng = random.Random(SEED)
    texts = sorted((DATA / "sroie-train-text").glob("*.txt"))
    pages = []
    for path in rng.sample(texts, receipts):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        pages.append((f"rendered {path.name}", render_receipt(lines, rng)))
    chinese = cjk_lines()
    for columns in (1, 2):
        pages.append((f"rendered zh {columns} col", render_cjk_page(chinese, rng, columns)))
    for path in sorted((REPO / "examples").glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot decode {path}")
        pages.append((f"examples/{path.name}", image))
    return pages


def build_variant(
    name: str, engine: Engine, calibration: Calibration, work: Path
) -> tuple[Path, Path, dict[str, Any]]:
    """Build the int8 detector and recognizer of one variant; return their paths and details."""
    spec = dict(VARIANTS[name])
    keep_sensitive = bool(spec.pop("keep_sensitive", False))
    paths = []
    details: dict[str, Any] = {"options": VARIANTS[name]}
    kinds: tuple[tuple[Literal["det", "rec"], InferenceBackend, list[np.ndarray]], ...] = (
        ("det", engine.detector.model, calibration.detector),
        ("rec", engine.recognizer.model, calibration.recognizer),
    )
    for kind, model, batches in kinds:
        prepared = work / f"{model.path.stem}.prepared.onnx"
        if not prepared.exists():
            prepare(model.path, prepared)
        keep = sensitive_nodes(prepared, kind) if keep_sensitive else ()
        options = QuantizeOptions(keep_fp32=keep, **spec)
        target = work / f"{model.path.stem}.{name}.int8.onnx"
        start = time.perf_counter()
        quantize_model(prepared, target, batches, options)
        details[kind] = {
            "file": str(target.relative_to(REPO)) if target.is_relative_to(REPO) else str(target),
            "fp32_nodes": list(keep),
            "calibration_batches": min(len(batches), options.max_batches),
            "build_seconds": round(time.perf_counter() - start, 1),
            "mib": round(target.stat().st_size / 2**20, 2),
        }
        paths.append(target)
        print(f"built {target.name} in {details[kind]['build_seconds']} s", flush=True)
    return paths[0], paths[1], details


class OpenVinoModel:
    """A minimal OpenVINO model for this study (the backend module is written elsewhere)."""

    def __init__(self, path: Path, config: dict[str, str]) -> None:
        import openvino as ov

        core = ov.Core()
        self.path = path
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run on one batch; the first output."""
        return np.asarray(self.request.infer({0: batch})[0])


Runner = Callable[[np.ndarray], np.ndarray]


def time_alternated(
    runners: dict[str, Runner], inputs: list[np.ndarray], rounds: int
) -> dict[str, dict[str, float]]:
    """Seconds per pass over ``inputs`` for each runner, alternated round by round.

    Every runner first runs every input once (warm-up: shapes, kernels, arenas). Then in each
    round each runner makes one timed pass, in rotated order so none always goes first.

    Returns:
        Per runner: median and minimum seconds per pass.
    """
    for run in runners.values():
        for batch in inputs:
            run(batch)
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            start = time.perf_counter()
            for batch in inputs:
                runners[name](batch)
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "min_s": min(t)} for name, t in times.items()}


def speed(
    engine: Engine,
    settings: Settings,
    calibration: Calibration,
    built: dict[str, tuple[Path, Path]],
    rounds: int,
    openvino: bool,
) -> dict[str, Any]:
    """Model-only seconds per pass of every runtime/precision over recorded inputs."""
    options, run = session_options(settings.runtime), run_options(settings.runtime)
    results: dict[str, Any] = {}
    for kind, index, fp32_path, inputs in (
        ("det", 0, engine.detector.model.path, spread(calibration.detector, 8)),
        ("rec", 1, engine.recognizer.model.path, spread(calibration.recognizer, 60)),
    ):
        runners: dict[str, Runner] = {"ort-fp32": OnnxRuntimeModel(fp32_path, options, run).run}
        for name, paths in built.items():
            runners[f"ort-int8-{name}"] = OnnxRuntimeModel(paths[index], options, run).run
        precisions: dict[str, str] = {}
        if openvino:
            threads = str(settings.runtime.intra_op_threads or os.cpu_count() or 1)
            base = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            for name, path, hint in (
                ("ov-fp32", fp32_path, "f32"),
                ("ov-bf16", fp32_path, "bf16"),
                *((f"ov-int8-{n}", p[index], "f32") for n, p in built.items()),
            ):
                model = OpenVinoModel(path, {**base, "INFERENCE_PRECISION_HINT": hint})
                runners[name] = model.run
                precisions[name] = model.precision
        timed = time_alternated(runners, inputs, rounds)
        reference = timed["ort-fp32"]["median_s"]
        results[kind] = {
            "inputs": len(inputs),
            "input_shapes": sorted({str(tuple(b.shape)) for b in inputs})[:12],
            "rounds": rounds,
            "openvino_inference_precision": precisions,
            "runners": {
                name: {
                    "median_s": round(t["median_s"], 4),
                    "min_s": round(t["min_s"], 4),
                    "speedup_vs_ort_fp32": round(reference / t["median_s"], 3),
                }
                for name, t in timed.items()
            },
        }
        print(f"timed {kind}: {json.dumps(results[kind]['runners'])}", flush=True)
    return results


def accuracy(engine: Engine) -> dict[str, Any]:
    """sroie-dev CER and word F1 (50 receipts) and zh-dev character F1 (6 pages) of ``engine``."""
    figures: dict[str, Any] = {}
    for dataset in ("sroie-dev", "zh-dev"):
        score = Score()
        per_page = {}
        for page in load_ground_truth(DATA / dataset):
            image = cv2.imread(str(page.image), cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f"cannot decode {page.image}")
            text = engine.ocr(image).page.text
            score.add(text, page.text)
            one = Score()
            one.add(text, page.text)
            per_page[page.image.stem] = round(one.char_f1, 4)
        figures[dataset] = {
            "pages": score.pages,
            "cer": round(score.cer, 4),
            "word_f1": round(score.word_f1, 4),
            "char_f1": round(score.char_f1, 4),
        }
        if dataset == "zh-dev":
            figures[dataset]["per_page_char_f1"] = per_page
    sroie, zh = figures["sroie-dev"], figures["zh-dev"]
    figures["keeps_floors"] = (
        sroie["cer"] <= FLOORS["cer"]
        and sroie["word_f1"] >= FLOORS["word_f1"]
        and zh["char_f1"] >= FLOORS["char_f1"]
    )
    return figures


def loaded(path: Path, settings: Settings) -> InferenceBackend:
    """An ONNX Runtime model with the engine's session and run options."""
    runtime = settings.runtime
    return OnnxRuntimeModel(path, session_options(runtime), run_options(runtime))


def speed_table(results: dict[str, Any]) -> str:
    """Markdown: per model and runner, median seconds per pass and speed-up against ORT fp32."""
    lines = ["| model | runner | median s/pass | x ORT fp32 |", "| --- | --- | --- | --- |"]
    for kind, figures in results.items():
        for name, t in figures["runners"].items():
            lines.append(
                f"| {kind} ({figures['inputs']} inputs) | {name} | {t['median_s']:.3f} | "
                f"{t['speedup_vs_ort_fp32']:.2f} |"
            )
    return "\n".join(lines)


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per variant and swapped models, the three accuracy figures and the verdict."""
    lines = [
        "| variant | int8 models | sroie CER | sroie word F1 | zh char F1 | floors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        s, z = r["sroie-dev"], r["zh-dev"]
        lines.append(
            f"| {r['variant']} | {r['int8']} | {s['cer']:.4f} | {s['word_f1']:.4f} | "
            f"{z['char_f1']:.4f} | {'kept' if r['keeps_floors'] else 'missed'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--receipts", type=int, default=16, help="rendered calibration receipts")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per runner")
    parser.add_argument("--openvino", action="store_true", help="also time OpenVINO")
    parser.add_argument("--no-accuracy", action="store_true", help="speed only")
    parser.add_argument(
        "--runs",
        nargs="*",
        default=None,
        metavar="VARIANT:det|rec|both",
        help="accuracy runs: which variant's models are swapped in (default: every variant, "
        "det, rec and both)",
    )
    parser.add_argument("--fp32", action="store_true", help="also measure fp32 accuracy")
    parser.add_argument("--work", type=Path, default=REPO / "models" / "int8")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_int8.json"
    )
    args = parser.parse_args()
    settings = load_settings()
    engine = Engine.from_settings(settings)
    pages = calibration_pages(args.receipts)
    start = time.perf_counter()
    calibration = record_calibration(engine, (image for _, image in pages))
    print(
        f"calibration: {len(pages)} pages, {len(calibration.detector)} detector inputs, "
        f"{len(calibration.recognizer)} recognizer inputs "
        f"({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    args.work.mkdir(parents=True, exist_ok=True)
    built: dict[str, tuple[Path, Path]] = {}
    details: dict[str, Any] = {}
    for name in args.variants:
        det, rec, details[name] = build_variant(name, engine, calibration, args.work)
        built[name] = (det, rec)
    timing = speed(engine, settings, calibration, built, args.rounds, args.openvino)
    print(speed_table(timing), flush=True)
    rows: list[dict[str, Any]] = []
    if not args.no_accuracy:
        runs: list[tuple[str, str, Engine]] = []
        if args.fp32:
            runs.append(("fp32", "none", engine))
        wanted = args.runs or [f"{n}:{swap}" for n in built for swap in ("det", "rec", "both")]
        for item in wanted:
            name, _, swap = item.partition(":")
            if name not in built or swap not in ("det", "rec", "both"):
                raise SystemExit(f"--runs {item}: expected a built VARIANT and det, rec or both")
            det, rec = built[name]
            det_model = loaded(det, settings) if swap in ("det", "both") else None
            rec_model = loaded(rec, settings) if swap in ("rec", "both") else None
            runs.append((name, swap, with_models(engine, det_model, rec_model)))
        for name, swap, variant in runs:
            start = time.perf_counter()
            row = {"variant": name, "int8": swap, **accuracy(variant)}
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(accuracy_table([row]).splitlines()[-1], flush=True)
        print(accuracy_table(rows))
    report = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_flags_vnni_bf16": cpu_flags(),
        "threads": settings.runtime.intra_op_threads or os.cpu_count(),
        "floors": FLOORS,
        "calibration_pages": [name for name, _ in pages],
        "calibration_inputs": {
            "detector": len(calibration.detector),
            "recognizer": len(calibration.recognizer),
        },
        "variants": details,
        "speed": timing,
        "accuracy": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


def cpu_flags() -> list[str]:
    """The CPU's VNNI, BF16, AMX and AVX-512 flags from /proc/cpuinfo (empty when none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return sorted(f for f in flags if re.search(r"vnni|bf16|amx|avx512", f))


if __name__ == "__main__":
    main()
