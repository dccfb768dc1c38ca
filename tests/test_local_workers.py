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


def test_each_onnxruntime_worker_may_use_every_cpu_with_spinning_off(settings: Settings) -> None:
    """A lone file gets all the cores; idle intra-op threads sleep instead of spinning."""
    auto = _runtime(settings, intra_op_threads=0)
    runtime = local.with_threads(auto, workers=2).runtime
    assert runtime.intra_op_threads == available_cpus()
    assert session_options(runtime).get_session_config_entry(SPINNING_CONFIG) == "0"
    explicit = local.with_threads(_runtime(settings, intra_op_threads=1), workers=2)
    assert explicit.runtime.intra_op_threads == 1, "an explicit count is kept"


def test_other_backends_split_the_cpus_between_workers(settings: Settings) -> None:
    openvino = _runtime(settings, intra_op_threads=0, backend="openvino", precision="fp32")
    threads = local.with_threads(openvino, workers=2).runtime.intra_op_threads
    assert threads == max(1, available_cpus() // 2)


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
    engine = worker._engine
    assert engine is not None
    local.warm_up_worker(worker, settings, 3, tmp_path)
    assert worker._engine is engine, "a job of the same generation does not load again"


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
    assert local._current_recipe(tmp_path, settings, 0) == (settings, 0), "no recipe yet"
    local.write_recipe(tmp_path, newer, 4)
    chosen, generation = local._current_recipe(tmp_path, settings, 0)
    assert generation == 4 and chosen == newer
    (tmp_path / local.RECIPE_FILE).write_bytes(b"half a pickle")
    assert local._current_recipe(tmp_path, settings, 0) == (settings, 0), "unreadable: the pool's"
