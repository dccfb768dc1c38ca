"""One OCR worker's state: the engines and corrector it loaded, and the generation they belong to.

An executor keeps one :class:`Worker` per worker process (or actor, or the test process) and
calls :meth:`Worker.run` for each job. Models and lexicons load once per settings generation: a
SIGHUP reload bumps the generation and each worker reloads at its next job. A worker may hold
one engine per intra-op thread count its recipes ask for (the local executor sends a lone file
with every CPU's threads, the others with their share), each loaded at the first job that asks.
A worker made with ``should_stop`` ends a running document between two pages when it answers
True (the local executor's stop event, set as it closes).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ocr_pipeline.correct import Corrector, corrector_from_settings
from ocr_pipeline.engine import Engine
from ocr_pipeline.executors.base import JobOutcome, JobRecipe
from ocr_pipeline.jobs import decode_limits, ocr_file
from ocr_pipeline.memory import release_free_memory
from ocr_pipeline.settings import Settings
from ocr_pipeline.writers import render_in_worker


class Worker:
    """Loads the engine for a settings generation and runs jobs with it.

    Args:
        should_stop: asked between the pages of a job; True stops the job with
            :class:`~ocr_pipeline.errors.JobStoppedError`. ``None``: jobs always run to the end.

    """

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self._should_stop = should_stop
        self._engines: dict[int, Engine] = {}
        """Loaded engines by ``runtime.intra_op_threads``."""
        self._corrector: Corrector | None = None
        self._generation = -1

    def load(self, settings: Settings, generation: int) -> Engine:
        """Load the engine and corrector of ``generation``, freeing the old ones first.

        Raises:
            ModelError: a model is missing or corrupt.
            ConfigError: a lexicon or the look-alike table cannot be read.

        """
        self.forget()  # free the old sessions before loading the new ones
        engine = Engine.from_settings(settings)
        self._corrector = corrector_from_settings(settings.correct)
        self._engines = {settings.runtime.intra_op_threads: engine}
        self._generation = generation
        return engine

    def engine_for(self, settings: Settings, generation: int) -> Engine:
        """The engine for ``settings``' thread count in ``generation``, loaded if need be.

        A new generation frees every engine of the old one first; another thread count of the
        same generation loads one more engine beside the others (same models and lexicons).

        Raises:
            ModelError: a model is missing or corrupt.
            ConfigError: a lexicon or the look-alike table cannot be read.

        """
        threads = settings.runtime.intra_op_threads
        if self._generation != generation or not self._engines:
            return self.load(settings, generation)
        engine = self._engines.get(threads)
        if engine is None:
            engine = self._engines[threads] = Engine.from_settings(settings)
        return engine

    def forget(self) -> None:
        """Drop the loaded engines (a failed load leaves the worker empty)."""
        self._engines, self._corrector, self._generation = {}, None, -1

    def run(self, recipe: JobRecipe) -> JobOutcome:
        """OCR one claimed file, loading the recipe's generation first if needed.

        A symlink is read only with ``daemon.follow_symlinks``; the job stops between pages
        when the worker's ``should_stop`` answers True. The chosen outputs that embed the
        original's pages (the searchable PDF) are rendered here and returned with the result.

        Raises:
            InputError: the file is unsupported, corrupt, over a limit, a refused symlink or
                unreadable.
            JobStoppedError: ``should_stop`` answered True before the last page.
            ModelError: a model is missing or corrupt.
            OutputRenderError: a chosen output cannot be made of the file that was read.
            OSError: the file cannot be read.

        """
        engine = self.engine_for(recipe.settings, recipe.generation)
        job = recipe.job
        try:
            result = ocr_file(
                job.path,
                engine,
                decode_limits(recipe.settings.decode),
                job.relative,
                self._corrector,
                sha256=job.sha256,
                follow_symlinks=recipe.settings.daemon.follow_symlinks,
                should_stop=self._should_stop,
                quality=recipe.settings.quality,
            )
            rendered = render_in_worker(result, job.path, recipe.settings.outputs)
        finally:
            release_free_memory()
        return JobOutcome(
            result=result, worker_pid=os.getpid(), generation=self._generation, rendered=rendered
        )
