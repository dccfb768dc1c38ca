"""Real receipts for the daemon tests, and the daemon run in-process on a serial executor.

The inputs are the top quarter (the header lines) of SROIE dev receipts: small enough to read
in a fraction of a second, long enough (40+ characters) to check against the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
from rapidfuzz import fuzz

from ocr_pipeline.daemon import Daemon, RunSummary
from ocr_pipeline.evaluation import load_ground_truth, squash
from ocr_pipeline.executors import JobOutcome, JobRecipe, SerialExecutor
from ocr_pipeline.settings import Settings
from tests.conftest import SROIE_DEV

Run = Callable[[JobRecipe], JobOutcome]
"""What a serial executor runs per job (a real worker, possibly wrapped to inject a fault)."""


def receipt_header(number: int, suffix: str = ".png") -> bytes:
    """The top quarter of dev receipt ``number`` (its header lines), encoded as ``suffix``."""
    image = cv2.imread(str(SROIE_DEV / "images" / f"{number:03d}.jpg"))
    assert image is not None
    ok, encoded = cv2.imencode(suffix, image[: image.shape[0] // 4])
    assert ok
    return encoded.tobytes()


def matches_truth(text: str, number: int) -> bool:
    """Whether ``text`` (a receipt's header) is found in receipt ``number``'s ground truth.

    Compared without spaces and case (``squash``), allowing a few misread characters.
    """
    truth = next(r for r in load_ground_truth(SROIE_DEV) if r.image.stem == f"{number:03d}")
    return len(squash(text)) >= 40 and fuzz.partial_ratio(squash(text), squash(truth.text)) >= 85


def daemon_settings(base: Path, **daemon: object) -> Settings:
    """Settings for ``base/inbox`` -> ``base/outbox``: a small detector input, no settling."""
    return Settings(
        inbox=base / "inbox",
        outbox=base / "outbox",
        detect={"limit_type": "max", "limit_side": 640},
        daemon={"settle_seconds": 0.0, "settle_after_close_seconds": 0.0, **daemon},
    )


def run_serial(
    settings: Settings, run: Run | None = None
) -> tuple[RunSummary, list[SerialExecutor]]:
    """``ocr-pipeline run`` in this process on a serial executor (``run``: its job function).

    Returns:
        The run summary, and every executor the daemon built (restarts make new ones).

    """
    made: list[SerialExecutor] = []

    def factory(s: Settings, generation: int) -> SerialExecutor:
        made.append(SerialExecutor(s, generation, run=run))
        return made[-1]

    return Daemon(settings, watch=False, executor=factory).run(), made
