"""The local executor's workers: their threads, their warm-up page, the settings they start with."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from ocr_pipeline.cpus import available_cpus
from ocr_pipeline.engine.onnxruntime_backend import SPINNING_CONFIG, session_options
from ocr_pipeline.errors import ModelError
from ocr_pipeline.executors import local
from ocr_pipeline.executors.worker import Worker
from ocr_pipeline.settings import Settings


def _runtime(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"runtime": settings.runtime.model_copy(update=update)})


def test_workers_share_the_cpus_and_a_lone_file_gets_them_all(settings: Settings) -> None:
    """Busy workers split the CPUs; a file alone goes with every CPU's threads."""
    auto = _runtime(settings, intra_op_threads=0)
    narrow = local.with_threads(auto, workers=2)
    assert narrow.runtime.intra_op_threads == max(1, available_cpus() // 2)
    assert session_options(narrow.runtime).get_session_config_entry(SPINNING_CONFIG) == "0"
    wide = local.wide_threads(auto, narrow)
    if available_cpus() > narrow.runtime.intra_op_threads:
        assert wide is not None and wide.runtime.intra_op_threads == available_cpus()
    else:
        assert wide is None, "no wider engine on one CPU"
    explicit = _runtime(settings, intra_op_threads=1)
    assert local.with_threads(explicit, workers=2).runtime.intra_op_threads == 1, "kept"
    assert local.wide_threads(explicit, explicit) is None, "an explicit count is never widened"


def test_a_worker_holds_one_engine_per_thread_count_of_a_generation(settings: Settings) -> None:
    worker = Worker()
    one = worker.engine_for(_runtime(settings, intra_op_threads=1), 2)
    two = worker.engine_for(_runtime(settings, intra_op_threads=2), 2)
    assert one is not two
    assert worker.engine_for(_runtime(settings, intra_op_threads=1), 2) is one, "kept"
    newer = worker.engine_for(_runtime(settings, intra_op_threads=1), 3)
    assert newer is not one and worker._engines == {1: newer}, "a new generation starts over"


def test_the_warm_up_page_is_small_rendered_text(tmp_path: Path) -> None:
    path = local.warm_up_page(tmp_path)
    page = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert page is not None and page.shape == (200, 640)
    assert (page < 128).mean() > 0.02, "black text on white"


def test_a_warm_up_loads_the_generation_and_reads_its_page(
    tmp_path: Path, settings: Settings
) -> None:
    worker = Worker()
    outcome = local.warm_up_worker(worker, settings, 3, tmp_path)
    assert outcome.generation == 3
    assert "TOTAL" in outcome.result.text
    assert list(tmp_path.iterdir()) == [], "the page is removed"
    engines = dict(worker._engines)
    assert len(engines) == 1
    local.warm_up_worker(worker, settings, 3, tmp_path)
    assert worker._engines == engines, "a job of the same generation does not load again"


def test_a_warm_up_without_models_raises_the_jobs_error_and_leaves_nothing(
    tmp_path: Path, settings: Settings
) -> None:
    store = settings.models.model_copy(update={"dir": tmp_path / "no-models"})
    missing = settings.model_copy(update={"models": store})
    pages = tmp_path / "pages"
    pages.mkdir()
    with pytest.raises(ModelError):
        local.warm_up_worker(Worker(), missing, 0, pages)
    assert list(pages.iterdir()) == []


def test_a_starting_worker_takes_the_recipe_in_force(tmp_path: Path, settings: Settings) -> None:
    """After a reload, a worker that starts (recycled, replaced) loads the new generation."""
    newer = settings.model_copy(update={"log": settings.log.model_copy(update={"level": "debug"})})
    assert local._current_recipe(tmp_path, settings, 0) == (settings, 0, None), "no recipe yet"
    wide = _runtime(newer, intra_op_threads=available_cpus())
    local.write_recipe(tmp_path, newer, 4, wide)
    chosen, generation, chosen_wide = local._current_recipe(tmp_path, settings, 0)
    assert generation == 4 and chosen == newer and chosen_wide == wide
    (tmp_path / local.RECIPE_FILE).write_bytes(b"half a pickle")
    assert local._current_recipe(tmp_path, settings, 0) == (settings, 0, None), "unreadable"
