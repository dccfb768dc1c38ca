"""The ONNX Runtime backend: a thin session wrapper, built once, run many times.

The only module of the package that imports ``onnxruntime``; stages see it through
:class:`~ocr_pipeline.engine.backend.InferenceBackend` and get it from
:func:`~ocr_pipeline.engine.backend.load_model` when ``runtime.backend = "onnxruntime"``.
Pre- and post-processing are pure numpy functions in the stage modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ocr_pipeline.cpus import available_cpus
from ocr_pipeline.errors import ModelError
from ocr_pipeline.settings import RuntimeSettings

SPINNING_CONFIG = "session.intra_op.allow_spinning"
"""ONNX Runtime session config key: may idle intra-op threads busy-wait ("1", the default)."""

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(runtime: RuntimeSettings) -> ort.SessionOptions:
    """Build ONNX Runtime session options from the runtime settings.

    ``intra_op_threads = 0`` means one thread per CPU this process may use
    (:func:`ocr_pipeline.cpus.available_cpus`: CPU affinity capped by the cgroup quota), never
    ONNX Runtime's own default, which over-subscribes when several workers share a machine.
    Execution is sequential, on ``inter_op_threads`` threads across graph nodes, with the
    ``graph_optimization`` level and ``memory_arena`` switch of the settings; ONNX Runtime logs
    errors only.

    Intra-op threads do not spin while they wait for work (session config
    ``session.intra_op.allow_spinning = "0"``): each daemon worker has a thread per CPU, so a
    lone file gets every core, and when several workers run, or other processes load the
    machine, a spinning thread would burn the core another one needs. Measured on the 2-core
    test machine under load (20 receipts, paired in one process): 2 threads spinning took 1.70 x
    the CPU time of 1 thread, 2 threads not spinning 1.11 x.
    """
    options = ort.SessionOptions()
    threads = runtime.intra_op_threads or available_cpus()
    options.intra_op_num_threads = threads
    options.add_session_config_entry(SPINNING_CONFIG, "0")
    options.inter_op_num_threads = runtime.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = _OPT_LEVELS[runtime.graph_optimization]
    options.enable_cpu_mem_arena = runtime.memory_arena
    options.log_severity_level = 3
    return options


def run_options(runtime: RuntimeSettings) -> ort.RunOptions:
    """Build the options of every ``Run`` call from the runtime settings.

    With ``arena_shrink``, ONNX Runtime hands the CPU arena's unused chunks back at the end of
    each run (run option ``memory.enable_memory_arena_shrinkage``). Without it the arena keeps
    the high-water mark of the largest page seen: a worker's RSS grew from 518 MiB after 10
    receipts to 1327 MiB after 50 (:mod:`ocr_pipeline.memory`).
    """
    options = ort.RunOptions()
    if runtime.memory_arena and runtime.arena_shrink:
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


class OnnxRuntimeModel:
    """One ONNX model loaded in an ONNX Runtime CPU session; an ``InferenceBackend``.

    Single input, single (first) output. :func:`load_onnxruntime` builds one from the runtime
    settings; the constructor takes the options themselves (benchmarks replay with their own).

    Args:
        path: the ``.onnx`` file.
        options: session options from :func:`session_options`.
        run: options of each run from :func:`run_options` (default: ONNX Runtime's).

    Raises:
        ModelError: ONNX Runtime cannot load the file (missing, truncated, not ONNX); the
            message names the file and says to run ``ocr-pipeline models fetch --force``.

    """

    def __init__(
        self, path: Path, options: ort.SessionOptions, run: ort.RunOptions | None = None
    ) -> None:
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelError(
                f"ONNX Runtime cannot load {path}: {exc}; run `ocr-pipeline models fetch --force`"
            ) from exc
        self.path = path
        self._run_options = run
        self.input_name: str = self._session.get_inputs()[0].name
        self.output_name: str = self._session.get_outputs()[0].name
        self.output_shape: list[int | str | None] = list(self._session.get_outputs()[0].shape)
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one float32 batch ``(N, C, H, W)``; return the first output.

        Raises:
            Exception: ONNX Runtime's own, untyped (a batch of the wrong rank, dtype or size):
                a programming error, not a model or input error.

        """
        outputs = self._session.run([self.output_name], {self.input_name: batch}, self._run_options)
        return np.asarray(outputs[0])


def load_onnxruntime(path: Path, runtime: RuntimeSettings) -> OnnxRuntimeModel:
    """Load ``path`` with the session and run options of ``runtime``.

    Raises:
        ModelError: ONNX Runtime cannot load the file (names it, says to fetch again).

    """
    return OnnxRuntimeModel(path, session_options(runtime), run_options(runtime))
