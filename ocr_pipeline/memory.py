"""Keeping a long-lived worker's resident memory flat.

A worker OCRs pages of every size, so what it allocates (decoded pages, detector inputs and
probability maps, recognizer inputs) varies from one page to the next. Two things kept that
memory after each page, measured with the default models over 60-100 receipts in one process:

* ONNX Runtime's CPU arena keeps its high-water mark: 518 MiB after 10 receipts, 1327 MiB
  after 50, 1349 MiB after 100. The run option ``memory.enable_memory_arena_shrinkage``
  (``runtime.arena_shrink``, :func:`ocr_pipeline.engine.onnxruntime_backend.run_options`)
  hands unused chunks back after each run, at about 1% of CPU time.
* glibc's ``malloc`` keeps freed heap memory for reuse, and its arenas fragment as page sizes
  vary: with the arena shrinking, RSS still went from 602 to 1067 MiB (+77%).
  ``malloc_trim(0)`` after each job returns it: 207 MiB after 10 receipts, 208 after 60.

Fixing glibc's mmap threshold instead (``mallopt(M_MMAP_THRESHOLD)``, so large blocks are
unmapped when freed) also kept RSS flat but cost 20% of CPU time in page faults, and switching
the arena off cost 15-60%. The figures are in docs/operations.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has ``malloc_trim``), else ``None`` (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - present only in glibc
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> None:
    """Give the heap's free memory back to the system (glibc ``malloc_trim(0)``).

    Called by a worker after each job; takes a few milliseconds. Does nothing on a C library
    other than glibc.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
