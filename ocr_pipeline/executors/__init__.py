"""Executors: where OCR jobs run (see :mod:`ocr_pipeline.executors.base` for the contract).

``local`` (worker processes on this machine) is the daemon's default; ``ray`` runs them on a
Ray cluster's actors (:mod:`ocr_pipeline.executors.cluster`, optional extra); ``serial`` runs
jobs in the calling process (tests, library use). :func:`make_executor` picks one from
``daemon.executor``.
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
from ocr_pipeline.settings import Settings


def make_executor(settings: Settings, generation: int = 0) -> Executor:
    """The executor ``daemon.executor`` names, built from ``settings`` and ``generation``.

    Raises:
        ConfigError: ``ray`` without Ray installed, or no Ray actor ready in time.

    """
    if settings.daemon.executor == "ray":
        from ocr_pipeline.executors.cluster import RayExecutor

        return RayExecutor(settings, generation)
    return LocalPoolExecutor(settings, generation)


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
    "make_executor",
    "traceback_lines",
]
