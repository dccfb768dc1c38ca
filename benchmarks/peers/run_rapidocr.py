"""Peer runner for benchmarks/compare.py: RapidOCR over a list of page images, one JSON line each.

Executed by a peer's own virtual environment (``benchmarks/.peers/<name>/bin/python``), never by
ours, so it imports only the standard library and the peer package. Two packages are supported:

* ``rapidocr`` (3.x): ``RapidOCR()`` with its defaults (bundled PP-OCRv6 small det/rec, the
  mobile v2 line classifier on); ``--threads N`` sets ONNX Runtime's intra-op threads;
* ``rapidocr_onnxruntime`` (1.4.x): ``RapidOCR()`` with its defaults (bundled PP-OCRv4 det/rec,
  classifier on); ``--threads N`` sets ``intra_op_num_threads``.

The engine is built once; then each page is read from its path by the engine (decoding included
in ``seconds``, as the engine's own loader does it) and its lines are joined with newlines in the
order the engine returns them. Per page one JSON line is written to ``--out``:
``{"image", "text", "seconds", "start", "end"}`` (``start``/``end``: Unix time, for the
cross-process throughput window). A final line ``{"load_seconds": ...}`` records engine load time.

    benchmarks/.peers/rapidocr/bin/python benchmarks/peers/run_rapidocr.py --package rapidocr
        --images pages.txt --out pages.jsonl --threads 1    # (one command line)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def build_rapidocr(threads: int) -> Callable[[str], list[str]]:
    """RapidOCR 3.x with its defaults; ``threads`` > 0 sets ONNX Runtime intra-op threads."""
    from rapidocr import RapidOCR

    params: dict[str, Any] = {"Global.log_level": "warning"}
    if threads > 0:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    engine = RapidOCR(params=params)

    def read(path: str) -> list[str]:
        output = engine(path)
        return [str(t) for t in (output.txts or ())]

    return read


def build_rapidocr_onnxruntime(threads: int) -> Callable[[str], list[str]]:
    """rapidocr_onnxruntime 1.4.x with its defaults; ``threads`` > 0 sets intra-op threads."""
    from rapidocr_onnxruntime import RapidOCR

    kwargs: dict[str, Any] = {}
    if threads > 0:
        kwargs["intra_op_num_threads"] = threads
    engine = RapidOCR(**kwargs)

    def read(path: str) -> list[str]:
        result, _ = engine(path)
        return [str(item[1]) for item in (result or [])]

    return read


BUILDERS = {"rapidocr": build_rapidocr, "rapidocr_onnxruntime": build_rapidocr_onnxruntime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", choices=list(BUILDERS), required=True)
    parser.add_argument("--images", type=Path, required=True, help="file of image paths")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines written here")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    args = parser.parse_args()
    images = [p for p in args.images.read_text(encoding="utf-8").splitlines() if p.strip()]
    start = time.perf_counter()
    read = BUILDERS[args.package](args.threads)
    load_seconds = time.perf_counter() - start
    with args.out.open("w", encoding="utf-8") as out:
        for image in images:
            began, tick = time.time(), time.perf_counter()
            lines = read(image)
            seconds = time.perf_counter() - tick
            record = {
                "image": image,
                "text": "\n".join(lines),
                "seconds": seconds,
                "start": began,
                "end": time.time(),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
        out.write(json.dumps({"load_seconds": load_seconds}) + "\n")


if __name__ == "__main__":
    main()
