"""Inference backends side by side: ONNX Runtime fp32 against OpenVINO fp32 and bf16.

Every configuration (``--configs``) is loaded once per thread count (``--threads``, default
1 and 2) in this one process, as ``Engine.from_settings`` builds it with ``runtime.backend``,
``runtime.precision`` and ``runtime.intra_op_threads`` set (OpenCV gets the same thread
count while that engine runs). The dev receipts are then read page by page, each page by
every engine in an order rotated per page, so load from other processes on a shared machine
hits all configurations alike and the ratios stay fair. One warm-up page per engine first.

Reported per configuration and thread count, on sroie-dev: model-only milliseconds per page
(the ``run`` calls of every model the engine holds: detector, recognizer, page orientation,
line classifier), end-to-end seconds per page of ``Engine.ocr`` (decoding excluded) and
pages per second, the speed-up against ONNX Runtime at the same thread count, case-folded CER
and word F1 (``evaluation.Score``); on zh-dev, with the largest thread count only, character
F1 and CER. Also the model load time, cold (empty OpenVINO cache folder) and warm (the second
load, from the cache). ``openvino-bf16`` is skipped, with the reason, on a CPU whose OpenVINO
``OPTIMIZATION_CAPABILITIES`` lack ``BF16``. Not in the default set, the shape strategies the
backend does not use (:mod:`ocr_pipeline.engine.openvino_backend`): ``openvino-fp32-pad64``
and ``-pad128`` pad the detector's and recognizer's inputs up to multiples of 64 or 128 pixels
(outputs cropped back) so that fewer shapes exist; ``openvino-fp32-static`` compiles a static
copy of each model per input shape (an LRU of 16). Prints a Markdown table, writes JSON
(default ``benchmarks/results/backends.json``).

    .venv/bin/python benchmarks/bench_backends.py                   # 50 receipts, 6 zh pages
    .venv/bin/python benchmarks/bench_backends.py --limit 10 --zh-limit 0 \
        --configs onnxruntime-fp32 openvino-fp32 openvino-fp32-pad64 openvino-fp32-static \
        --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ocr_pipeline.engine import Engine
from ocr_pipeline.engine.backend import LOADERS, InferenceBackend
from ocr_pipeline.evaluation import Score, load_ground_truth
from ocr_pipeline.settings import RuntimeSettings, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CONFIGS: dict[str, dict[str, Any]] = {
    "onnxruntime-fp32": {"backend": "onnxruntime", "precision": "fp32"},
    "openvino-fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino-bf16": {"backend": "openvino", "precision": "bf16"},
    # Shape strategies the backend does not use, as OpenVinoModel arguments (module docstring):
    "openvino-fp32-pad64": {"backend": "openvino", "precision": "fp32", "shape_step": 64},
    "openvino-fp32-pad128": {"backend": "openvino", "precision": "fp32", "shape_step": 128},
    "openvino-fp32-static": {"backend": "openvino", "precision": "fp32", "static_shapes": 16},
}
"""Per configuration: ``runtime`` settings, and ``OpenVinoModel`` arguments of a variant."""
DEFAULT_CONFIGS = ["onnxruntime-fp32", "openvino-fp32", "openvino-bf16"]
VARIANT_ARGS = ("shape_step", "static_shapes")


def variant_loader(options: dict[str, int]) -> Any:
    """A model loader for OpenVINO with ``OpenVinoModel`` arguments the settings do not have."""
    from ocr_pipeline.engine.openvino_backend import (
        OpenVinoModel,
        compile_config,
        cpu_capabilities,
        inference_precision,
    )

    def load(path: Path, runtime: RuntimeSettings) -> InferenceBackend:
        precision = inference_precision(runtime, cpu_capabilities())
        if options.get("static_shapes"):  # one blob per shape would fill the cache folder
            runtime = runtime.model_copy(update={"cache_dir": None})
        return OpenVinoModel(path, compile_config(runtime, precision), **options)

    return load


class TimedModel:
    """An ``InferenceBackend`` that adds the wall time of each ``run`` call to ``seconds``."""

    def __init__(self, model: InferenceBackend) -> None:
        self.model = model
        self.path = model.path
        self.input_name = model.input_name
        self.output_name = model.output_name
        self.output_shape = model.output_shape
        self.metadata = model.metadata
        self.seconds = 0.0

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the wrapped model, timing the call."""
        start = time.perf_counter()
        out = self.model.run(batch)
        self.seconds += time.perf_counter() - start
        return out


@dataclass
class Measured:
    """One engine (configuration x thread count) and what it measured."""

    config: str
    threads: int
    engine: Engine
    timed: list[TimedModel]
    load_seconds: float
    warm_load_seconds: float | None
    score: Score = field(default_factory=Score)
    zh: Score = field(default_factory=Score)
    seconds: list[float] = field(default_factory=list)
    model_seconds: list[float] = field(default_factory=list)
    zh_seconds: list[float] = field(default_factory=list)

    def model_time(self) -> float:
        """Seconds spent in ``run`` by all of the engine's models so far."""
        return sum(t.seconds for t in self.timed)

    def ocr(self, image: np.ndarray) -> tuple[str, float, float]:
        """OCR one page: its text, wall seconds and model-only seconds."""
        cv2.setNumThreads(self.threads)
        before = self.model_time()
        start = time.perf_counter()
        text = self.engine.ocr(image).page.text
        return text, time.perf_counter() - start, self.model_time() - before


def settings_for(config: str, threads: int, cache_dir: Path) -> Settings:
    """The default settings with the configuration's backend, precision and thread count.

    A variant (``VARIANT_ARGS``) runs on its own entry of ``LOADERS``, named after it.
    """
    options = {k: v for k, v in CONFIGS[config].items() if k not in VARIANT_ARGS}
    runtime = {**options, "intra_op_threads": threads, "cache_dir": str(cache_dir)}
    settings = load_settings(runtime=runtime)
    variant = {k: v for k, v in CONFIGS[config].items() if k in VARIANT_ARGS}
    if not variant:
        return settings
    LOADERS[config] = variant_loader(variant)
    # Not a setting: unvalidated on purpose (model_copy), so the variant's loader is used.
    runtime_copy = settings.runtime.model_copy(update={"backend": config})
    return settings.model_copy(update={"runtime": runtime_copy})


def build(config: str, threads: int, cache_dir: Path) -> Measured:
    """Load the engine of one configuration, twice for OpenVINO (cold, then warm cache)."""
    settings = settings_for(config, threads, cache_dir)
    start = time.perf_counter()
    engine = Engine.from_settings(settings)
    load = time.perf_counter() - start
    warm = None
    if settings.runtime.backend != "onnxruntime":
        start = time.perf_counter()
        engine = Engine.from_settings(settings)
        warm = time.perf_counter() - start
    timed: list[TimedModel] = []
    stages = [engine.detector, engine.recognizer, engine.classifier, engine.orienter]
    stages.append(engine.line_votes)
    for stage in {id(s): s for s in stages if s is not None}.values():
        wrapped = TimedModel(stage.model)
        stage.model = wrapped
        timed.append(wrapped)
    return Measured(config, threads, engine, timed, load, warm)


def skip_reason(config: str) -> str | None:
    """Why a configuration cannot run here (no OpenVINO, no bf16 on this CPU), or None."""
    if CONFIGS[config]["backend"] == "onnxruntime":
        return None
    try:
        from ocr_pipeline.engine.openvino_backend import cpu_capabilities
    except ImportError:
        return "OpenVINO is not installed (pip install 'ocr-pipeline[openvino]')"
    if CONFIGS[config]["precision"] == "bf16" and "BF16" not in cpu_capabilities():
        return f"this CPU has no bf16 (OpenVINO reports {', '.join(sorted(cpu_capabilities()))})"
    return None


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot decode {path}")
    return image


def run(args: argparse.Namespace) -> dict[str, Any]:
    skipped = {c: r for c in args.configs if (r := skip_reason(c)) is not None}
    configs = [c for c in args.configs if c not in skipped]
    receipts = load_ground_truth(args.dataset)[: args.limit or None]
    zh_pages = load_ground_truth(args.zh)[: args.zh_limit] if args.zh_limit else []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ov-cache-") as cache:
        engines = [build(c, t, Path(cache)) for t in args.threads for c in configs]
        first = read(receipts[0].image)
        for measured in engines:
            measured.ocr(first)  # warm-up, not counted
        for index, page in enumerate(receipts):
            image = read(page.image)
            shift = index % len(engines)
            for measured in engines[shift:] + engines[:shift]:
                text, wall, model = measured.ocr(image)
                measured.score.add(text, page.text)
                measured.seconds.append(wall)
                measured.model_seconds.append(model)
            print(f"receipt {index + 1}/{len(receipts)}", file=sys.stderr, flush=True)
        top = max(args.threads)
        for index, page in enumerate(zh_pages):
            image = read(page.image)
            chosen = [m for m in engines if m.threads == top]
            shift = index % len(chosen)
            for measured in chosen[shift:] + chosen[:shift]:
                text, wall, _ = measured.ocr(image)
                measured.zh.add(text, page.text)
                measured.zh_seconds.append(wall)
            print(f"zh page {index + 1}/{len(zh_pages)}", file=sys.stderr, flush=True)
    rows = []
    for m in engines:
        base = next(e for e in engines if e.threads == m.threads)
        per_page = float(np.mean(m.seconds))
        rows.append(
            {
                "config": m.config,
                "threads": m.threads,
                "model_ms_per_page": round(1000 * float(np.mean(m.model_seconds)), 1),
                "seconds_per_page": round(per_page, 3),
                "pages_per_second": round(1 / per_page, 3),
                "speedup_vs_first": round(float(np.mean(base.seconds)) / per_page, 3),
                "model_speedup_vs_first": round(
                    float(np.mean(base.model_seconds)) / float(np.mean(m.model_seconds)), 3
                ),
                "cer": round(m.score.cer, 4),
                "word_f1": round(m.score.word_f1, 4),
                "zh_char_f1": round(m.zh.char_f1, 4) if m.zh.pages else None,
                "zh_cer": round(m.zh.cer, 4) if m.zh.pages else None,
                "zh_seconds_per_page": round(float(np.mean(m.zh_seconds)), 2)
                if m.zh_seconds
                else None,
                "load_seconds": round(m.load_seconds, 2),
                "warm_load_seconds": round(m.warm_load_seconds, 2)
                if m.warm_load_seconds is not None
                else None,
                "per_page_seconds": [round(s, 3) for s in m.seconds],
            }
        )
    return {
        "command": "python benchmarks/bench_backends.py " + " ".join(sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "versions": _versions(),
        "receipts": len(receipts),
        "zh_pages": len(zh_pages),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "skipped": skipped,
        "results": rows,
    }


def _versions() -> dict[str, Any]:
    """Versions of ONNX Runtime and OpenVINO, and OpenVINO's view of the CPU."""
    import onnxruntime

    found: dict[str, Any] = {"onnxruntime": onnxruntime.__version__}
    try:
        import openvino

        from ocr_pipeline.engine.openvino_backend import cpu_capabilities
    except ImportError:
        return found
    found["openvino"] = openvino.__version__
    found["cpu_capabilities"] = sorted(cpu_capabilities())
    return found


def table(report: dict[str, Any]) -> str:
    """Markdown table of the measured configurations."""
    lines = [
        "| config | threads | model ms/page | s/page | pages/s | speed-up | model speed-up | "
        "CER | word F1 | zh char F1 | load s cold/warm |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["results"]:
        zh = f"{r['zh_char_f1']:.4f}" if r["zh_char_f1"] is not None else "-"
        warm = f"{r['warm_load_seconds']:.2f}" if r["warm_load_seconds"] is not None else "-"
        lines.append(
            f"| {r['config']} | {r['threads']} | {r['model_ms_per_page']:.0f} | "
            f"{r['seconds_per_page']:.3f} | {r['pages_per_second']:.3f} | "
            f"{r['speedup_vs_first']:.2f}x | {r['model_speedup_vs_first']:.2f}x | "
            f"{r['cer']:.4f} | {r['word_f1']:.4f} | {zh} | {r['load_seconds']:.2f}/{warm} |"
        )
    for config, reason in report["skipped"].items():
        lines.append(f"\nskipped {config}: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--dataset", type=Path, default=SHARED_DATA / "sroie-dev")
    parser.add_argument("--zh", type=Path, default=SHARED_DATA / "zh-dev")
    parser.add_argument("--limit", type=int, default=0, help="first N receipts only (0: all)")
    parser.add_argument("--zh-limit", type=int, default=6, help="first N zh pages (0: none)")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "backends.json"
    )
    args = parser.parse_args()
    report = run(args)
    print(
        f"{report['receipts']} receipts, {report['zh_pages']} zh pages; speed-ups against "
        f"{args.configs[0]} at the same thread count; load average "
        f"{report['loadavg_start']} -> {report['loadavg_end']}; {report['versions']}"
    )
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
