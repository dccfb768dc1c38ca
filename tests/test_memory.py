"""A worker's memory: freed heap memory goes back to the system after a job."""

from __future__ import annotations

import numpy as np

from ocr_pipeline.engine.onnxruntime_backend import run_options
from ocr_pipeline.memory import release_free_memory
from ocr_pipeline.settings import RuntimeSettings


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_release_free_memory_returns_freed_heap_blocks() -> None:
    # 64 KiB blocks sit below glibc's mmap threshold, so they come from the heap; a block
    # allocated after them and kept stops glibc from trimming the heap's top by itself, as a
    # worker's long-lived objects do. Without malloc_trim the freed ~190 MiB stay resident.
    blocks = [np.ones(64 * 1024, dtype=np.uint8) for _ in range(3000)]
    pin = np.ones(64 * 1024, dtype=np.uint8)
    del blocks
    before = _rss_mib()
    release_free_memory()
    after = _rss_mib()
    assert pin.sum() == 64 * 1024
    assert before - after > 150, (before, after)


def test_arena_shrinks_after_every_run_by_default() -> None:
    assert _shrink_entry(RuntimeSettings()) == "cpu:0"
    assert _shrink_entry(RuntimeSettings(arena_shrink=False)) is None
    assert _shrink_entry(RuntimeSettings(memory_arena=False)) is None


def _shrink_entry(runtime: RuntimeSettings) -> str | None:
    """The run option's arena-shrinkage entry, ``None`` when it is not set."""
    try:
        entry: str = run_options(runtime).get_run_config_entry(
            "memory.enable_memory_arena_shrinkage"
        )
    except RuntimeError:  # onnxruntime raises when the entry is absent
        return None
    return entry
