"""The inference-backend seam: one loaded model, whichever runtime runs it.

Every stage (detector, recognizer, line classifier, page orientation classifier) holds an
:class:`InferenceBackend` and calls only its :meth:`~InferenceBackend.run`; the pre- and
post-processing around that call are numpy functions of the stage modules. :func:`load_model`
builds one for a model file with the runtime named by ``runtime.backend``, through the
:data:`LOADERS` registry: ONNX Runtime (the default) and OpenVINO (an optional extra) are one
module each implementing the protocol and one entry there. Stages never import a runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ocr_pipeline.errors import ConfigError
from ocr_pipeline.settings import RuntimeSettings


@runtime_checkable
class InferenceBackend(Protocol):
    """One loaded model with a single input and a single (first) output, ready to run.

    Implementations are built once per worker (in its initializer, never at import) and then
    called many times; they need not be picklable or thread-safe.
    """

    @property
    def path(self) -> Path:
        """The model file it was loaded from."""
        ...

    @property
    def input_name(self) -> str:
        """Name of the model's (only) input."""
        ...

    @property
    def output_name(self) -> str:
        """Name of the model's first output, the one :meth:`run` returns."""
        ...

    @property
    def output_shape(self) -> list[int | str | None]:
        """Shape of that output as the model declares it.

        One entry per dimension: an ``int`` for a fixed size, a ``str`` for a named symbolic
        size (``"batch"``), ``None`` for an unnamed dynamic one. A recognizer's last entry is
        its number of CTC classes when fixed.
        """
        ...

    @property
    def metadata(self) -> dict[str, str]:
        """The model's custom metadata (ONNX ``metadata_props``), name to value.

        E.g. the recognizer's ``character`` dictionary (one label per line) or the orientation
        classifier's labels; empty when the model has none.
        """
        ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one batch.

        Args:
            batch: ``(N, C, H, W)`` float32, C-contiguous, as the stage's preprocessing makes
                it (its value range is the model's: [-1, 1] or ImageNet-normalised).

        Returns:
            The first output as a numpy array (float32 for every model of the registry):
            ``(N, 1, H, W)`` probabilities for a detector, ``(N, T, C)`` for a recognizer,
            ``(N, K)`` class scores for a classifier.

        """
        ...


ModelLoader = Callable[[Path, RuntimeSettings], InferenceBackend]
"""Builds one :class:`InferenceBackend` for a model file with the runtime settings.

A loader raises :class:`~ocr_pipeline.errors.ModelError` (naming the file and saying to run
``ocr-pipeline models fetch --force``) when the file cannot be loaded.
"""


def _load_onnxruntime(path: Path, runtime: RuntimeSettings) -> InferenceBackend:
    """ONNX Runtime on the CPU (:mod:`ocr_pipeline.engine.onnxruntime_backend`)."""
    # Imported here, not at the top: a backend's runtime is imported only when it is used, so
    # an installation without one runtime can still run the others.
    from ocr_pipeline.engine.onnxruntime_backend import load_onnxruntime

    return load_onnxruntime(path, runtime)


def _require_openvino() -> None:
    """Raise :class:`ConfigError` (saying how to install the extra) without OpenVINO."""
    try:
        import openvino  # noqa: F401  # the optional extra; its absence is a configuration error
    except ImportError as exc:
        raise ConfigError(
            'runtime.backend = "openvino" but OpenVINO is not installed; install it with '
            "pip install 'ocr-pipeline[openvino]'"
        ) from exc


def _load_openvino(path: Path, runtime: RuntimeSettings) -> InferenceBackend:
    """OpenVINO on the CPU (:mod:`ocr_pipeline.engine.openvino_backend`), an optional extra.

    Raises:
        ConfigError: OpenVINO is not installed (says how to install the extra), or the
            precision is not available on this CPU.

    """
    _require_openvino()
    from ocr_pipeline.engine.openvino_backend import load_openvino

    return load_openvino(path, runtime)


LOADERS: dict[str, ModelLoader] = {"onnxruntime": _load_onnxruntime, "openvino": _load_openvino}
"""Model loaders by ``runtime.backend`` name."""


def load_model(path: Path, runtime: RuntimeSettings) -> InferenceBackend:
    """Load one model file with the backend that ``runtime.backend`` names.

    Args:
        path: the model file (``.onnx``), already verified by
            :func:`ocr_pipeline.models.require_model` when it comes from the registry.
        runtime: backend name and its options (threads, precision, graph optimisation, memory
            arena, compiled-model cache).

    Returns:
        The loaded model.

    Raises:
        ModelError: the backend cannot load the file (missing, corrupt, not a model); the
            message names the file and says to run ``ocr-pipeline models fetch --force``.
        ConfigError: ``runtime.backend`` names no registered backend, its runtime is not
            installed (OpenVINO), or ``runtime.precision`` is not available on this CPU.

    """
    return _loader(runtime.backend)(path, runtime)


def _loader(backend: str) -> ModelLoader:
    """The registered loader of ``backend``.

    Raises:
        ConfigError: ``backend`` names no registered backend (lists the registered ones).

    """
    loader = LOADERS.get(backend)
    if loader is None:
        raise ConfigError(
            f"runtime.backend = {backend!r} is not an inference backend; "
            f"use one of {', '.join(sorted(LOADERS))}"
        )
    return loader


def check_runtime(runtime: RuntimeSettings) -> None:
    """Fail fast, without loading a model, on runtime settings this machine cannot run.

    For a start-up check in the parent process (workers load the models later): the backend
    must be registered and, for OpenVINO, installed, with ``runtime.precision`` available on
    this CPU (``bf16`` needs ``BF16`` among OpenVINO's ``OPTIMIZATION_CAPABILITIES``).

    Raises:
        ConfigError: as :func:`load_model` raises it for these reasons.

    """
    _loader(runtime.backend)
    if runtime.backend == "openvino":
        _require_openvino()
        from ocr_pipeline.engine.openvino_backend import cpu_capabilities, inference_precision

        inference_precision(runtime, cpu_capabilities())
