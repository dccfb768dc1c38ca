"""Executors: where OCR jobs run (see :mod:`ocr_pipeline.executors.base` for the contract).

``local`` (worker processes on this machine) is the daemon's; ``serial`` runs jobs in the
calling process (tests, library use). A cluster executor plugs in beside them.
"""

from __future__ import annotations

from ocr_pipeline.executors.base import (
    Executor,
    ExecutorFactory,
    Job,
    JobError,
    JobOutcome,
    JobRecipe,
    WorkerSilence,
    traceback_lines,
)
from ocr_pipeline.executors.local import LocalPoolExecutor
from ocr_pipeline.executors.serial import SerialExecutor

__all__ = [
    "Executor",
    "ExecutorFactory",
    "Job",
    "JobError",
    "JobOutcome",
    "JobRecipe",
    "LocalPoolExecutor",
    "SerialExecutor",
    "WorkerSilence",
    "traceback_lines",
]
