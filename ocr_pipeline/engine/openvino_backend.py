"""The OpenVINO backend: each model compiled once per worker, for any input size.

The only module of the package that imports ``openvino`` (an optional extra:
``pip install 'ocr-pipeline[openvino]'``); stages see it through
:class:`~ocr_pipeline.engine.backend.InferenceBackend` and get it from
:func:`~ocr_pipeline.engine.backend.load_model` when ``runtime.backend = "openvino"``.

Shapes: the ONNX models keep their dynamic dimensions (batch, the detector's height and width,
the recognizer's width) and are compiled once; OpenVINO's CPU plugin prepares each new input
shape itself (a fraction of a compilation) and keeps what it prepared. Measured on 12 dev
receipts, one thread, AVX2 CPU without bf16, interleaved with ONNX Runtime
(``benchmarks/bench_backends.py``): exact shapes 0.99x ONNX Runtime's pages/s; padding the
detector's and recognizer's inputs up to multiples of 32, 64 or 128 pixels so that fewer
shapes exist (``shape_step``) 0.96x, 0.91x, 0.90x, and word F1 0.8893 -> 0.8859 at 64 (a
padded line reads differently); a static copy compiled per input shape (``static_shapes``,
what the issue's probe did) 0.19x on 3 receipts. Replaying the same model calls a second
time, once every shape had been prepared, the detector ran 1.7x faster than on ONNX Runtime
(the recognizer as fast): preparing a new shape cost about 0.6 s for the detector and 75 ms
for the recognizer (6 receipts, a loaded machine), which is what holds OpenVINO fp32 back.
Padding and static shapes stay constructor arguments for the benchmark to measure again.

Compiled models are kept in ``runtime.cache_dir`` (OpenVINO's ``CACHE_DIR``: one blob per
model file, precision and OpenVINO version), so a restarted worker loads them instead of
compiling again.
"""

from __future__ import annotations

import functools
import mmap
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from ocr_pipeline.audit import get_logger
from ocr_pipeline.cpus import available_cpus
from ocr_pipeline.errors import ConfigError, ModelError
from ocr_pipeline.settings import RuntimeSettings

_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
"""``runtime.precision`` to OpenVINO's ``INFERENCE_PRECISION_HINT`` value."""
_METADATA_FIELD = 14
"""``ModelProto.metadata_props`` field number (onnx/onnx.proto); entries are
``StringStringEntryProto`` with ``key`` = 1 and ``value`` = 2."""
_warned: set[str] = set()
"""Messages already logged by this process (each is said once, not once per model)."""


@functools.cache
def _core() -> ov.Core:
    """The one OpenVINO ``Core`` of this process (built on first use, never at import)."""
    return ov.Core()


def cpu_capabilities() -> frozenset[str]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (``FP32``, ``BF16``, ``INT8``, ...)."""
    return frozenset(str(c) for c in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _warn_once(message: str, **fields: object) -> None:
    """Log ``message`` as a warning the first time this process says it."""
    if message not in _warned:
        _warned.add(message)
        get_logger(__name__).warning(message, **fields)


def inference_precision(runtime: RuntimeSettings, capabilities: frozenset[str]) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` (``"f32"`` or ``"bf16"``) for the settings.

    ``auto`` is bf16 where ``capabilities`` (:func:`cpu_capabilities`) list ``BF16`` (AVX-512
    BF16 or AMX), else fp32, which is logged once per process. OpenVINO itself would silently
    run a bf16 hint in fp32 on a CPU without bf16.

    Raises:
        ConfigError: ``bf16`` on a CPU without bf16, or ``int8`` (no int8 models yet).

    """
    has_bf16 = "BF16" in capabilities
    if runtime.precision == "auto":
        if has_bf16:
            return "bf16"
        _warn_once(
            "runtime.precision auto: this CPU has no bf16, running fp32",
            capabilities=sorted(capabilities),
        )
        return "f32"
    if runtime.precision == "bf16" and not has_bf16:
        raise ConfigError(
            "runtime.precision = bf16 but this CPU has no bf16 (OpenVINO reports "
            f"{', '.join(sorted(capabilities))}); use auto or fp32"
        )
    if runtime.precision not in _PRECISION_HINTS:
        raise ConfigError(
            f"runtime.precision = {runtime.precision} is not yet available; use auto, fp32 or bf16"
        )
    return _PRECISION_HINTS[runtime.precision]


def compile_config(runtime: RuntimeSettings, precision: str) -> dict[str, Any]:
    """OpenVINO CPU properties for one model from the runtime settings.

    ``intra_op_threads = 0`` means one thread per CPU this process may use
    (:func:`ocr_pipeline.cpus.available_cpus`), as for ONNX Runtime; the executor sets it to
    CPUs // workers. One stream with the latency hint (one page at a time per worker), no
    thread pinning (several worker processes share the cores), the precision hint
    (:func:`inference_precision`), and ``CACHE_DIR`` (empty: no cache).
    """
    return {
        "INFERENCE_NUM_THREADS": runtime.intra_op_threads or available_cpus(),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": precision,
        "CACHE_DIR": str(runtime.cache_dir) if runtime.cache_dir is not None else "",
    }


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, name to value, read without the ``onnx`` package.

    OpenVINO does not carry ONNX metadata into its model; the recognizer's ``character``
    dictionary lives there. Only the top level of the ``ModelProto`` protobuf is walked (the
    graph is skipped by its length).

    Raises:
        ModelError: the file cannot be read or is not a protobuf message (names the file).

    """
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _metadata_props(memoryview(buf))
    except (OSError, ValueError, IndexError) as exc:
        raise ModelError(
            f"cannot read the ONNX metadata of {path}: {exc}; "
            "run `ocr-pipeline models fetch --force`"
        ) from exc


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """A protobuf base-128 varint at ``pos``: its value and the position after it."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> list[tuple[int, memoryview]]:
    """The length-delimited fields of one protobuf message: ``(field number, bytes)``.

    Raises:
        ValueError: a wire type that ONNX files do not use (groups) or a truncated message.

    """
    found = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated protobuf field")
            found.append((tag >> 3, buf[pos : pos + length]))
            pos += length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    return found


def _metadata_props(buf: memoryview) -> dict[str, str]:
    """``metadata_props`` of a serialised ``ModelProto``."""
    metadata = {}
    for number, entry in _fields(buf):
        if number == _METADATA_FIELD:
            parts = dict(_fields(entry))
            key = bytes(parts.get(1, b"")).decode("utf-8")
            metadata[key] = bytes(parts.get(2, b"")).decode("utf-8")
    return metadata


def _shape(partial: ov.PartialShape) -> list[int | str | None]:
    """A model's declared shape: ``int`` per fixed dimension, ``None`` per dynamic one."""
    return [dim.get_length() if dim.is_static else None for dim in partial]


class OpenVinoModel:
    """One ONNX model compiled by OpenVINO for the CPU; an ``InferenceBackend``.

    Single input, single (first) output. :func:`load_openvino` builds one from the runtime
    settings; the constructor takes the compile properties themselves (benchmarks replay
    with their own).

    Args:
        path: the ``.onnx`` file.
        config: OpenVINO CPU properties from :func:`compile_config`.
        static_shapes: 0 (default) compiles the model once with its dynamic dimensions; ``n``
            > 0 compiles a static copy per input shape and keeps the ``n`` most recently used
            (measured 5x slower: the module docstring).
        shape_step: 0 (default) runs each input as it is; ``n`` > 0 pads a detector's height
            and width, or a recognizer's width, with zeros up to multiples of ``n`` pixels and
            crops the output back (measured slower, and less accurate: the module docstring).
            Which kind a model is, is found at load by two small runs
            (:meth:`_output_kind`); any other model (a classifier) is never padded.

    Raises:
        ModelError: OpenVINO cannot read or compile the file (missing, truncated, not ONNX);
            the message names the file and says to run ``ocr-pipeline models fetch --force``.

    """

    def __init__(
        self, path: Path, config: dict[str, Any], static_shapes: int = 0, shape_step: int = 0
    ) -> None:
        core = _core()
        try:
            if static_shapes:
                self._model: ov.Model | None = core.read_model(str(path))
                declared = self._model
            else:
                self._model = None
                # Compiled from the path, so that CACHE_DIR can skip reading the ONNX at all.
                declared = core.compile_model(str(path), "CPU", config)
                self._dynamic = declared.create_infer_request()
        except Exception as exc:  # openvino raises untyped RuntimeErrors
            raise ModelError(
                f"OpenVINO cannot load {path}: {exc}; run `ocr-pipeline models fetch --force`"
            ) from exc
        self.path = path
        self.config = config
        self.static_shapes = static_shapes
        self.loaded_from_cache = bool(
            self._model is None and declared.get_property("LOADED_FROM_CACHE")
        )
        self._declared_input = declared.inputs[0].get_partial_shape()
        self.input_name: str = declared.inputs[0].any_name
        self.output_name: str = declared.outputs[0].any_name
        self.output_shape: list[int | str | None] = _shape(declared.outputs[0].get_partial_shape())
        self.metadata: dict[str, str] = onnx_metadata(path)
        self._static: OrderedDict[tuple[int, ...], ov.InferRequest] = OrderedDict()
        declared_input = _shape(self._declared_input)
        self._padded_axes = [
            axis for axis in (2, 3) if len(declared_input) == 4 and declared_input[axis] is None
        ]
        self.shape_step = shape_step
        self.output_kind = self._output_kind() if shape_step and self._padded_axes else "other"
        if self.output_kind == "other":
            self.shape_step = 0

    def _output_kind(self) -> str:
        """How the output follows the input's size, found by running two small inputs.

        ``"dense"``: the output's last two dimensions are the input's height and width (a
        detector's probability map); ``"sequence"``: the output's second dimension grows with
        the input's width (a recognizer's CTC frames); ``"other"``: neither (a classifier),
        whose input is then never padded.
        """
        sizes = []
        for width in (2 * self.shape_step, 4 * self.shape_step):
            shape = [1, 3, 4 * self.shape_step, width]
            declared = _shape(self._declared_input)
            shape = [d if isinstance(d, int) else s for d, s in zip(declared, shape, strict=True)]
            out = self._raw_run(np.zeros(shape, dtype=np.float32))
            sizes.append((tuple(shape), out.shape))
        (small_in, small_out), (large_in, large_out) = sizes
        if len(small_out) == 4 and small_out[2:] == small_in[2:] and large_out[2:] == large_in[2:]:
            return "dense"
        if len(small_out) == 3 and small_out[1] < large_out[1]:
            return "sequence"
        return "other"

    def _request(self, shape: tuple[int, ...]) -> ov.InferRequest:
        """The infer request for an input ``shape``: the dynamic one, or a static one (LRU)."""
        if self._model is None:
            return self._dynamic
        request = self._static.get(shape)
        if request is not None:
            self._static.move_to_end(shape)
            return request
        model = self._model.clone()
        model.reshape({0: ov.PartialShape(list(shape))})
        request = _core().compile_model(model, "CPU", self.config).create_infer_request()
        self._static[shape] = request
        if len(self._static) > self.static_shapes:
            self._static.popitem(last=False)
        return request

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one float32 batch ``(N, C, H, W)``; return the first output.

        The batch is read in place (shared, not copied); the output is a copy the caller owns.

        Raises:
            Exception: OpenVINO's own, untyped (a batch of the wrong rank, dtype or size): a
                programming error, not a model or input error.

        """
        if not self.shape_step:
            return self._raw_run(batch)
        padded = list(batch.shape)
        for axis in self._padded_axes:
            padded[axis] = -(-batch.shape[axis] // self.shape_step) * self.shape_step
        if padded == list(batch.shape):
            return self._raw_run(batch)
        # Zeros: the value the recognizer's own batches are padded with (line_tensor).
        full = np.zeros(padded, dtype=batch.dtype)
        full[tuple(slice(0, n) for n in batch.shape)] = batch
        out = self._raw_run(full)
        if self.output_kind == "dense":
            return np.ascontiguousarray(out[..., : batch.shape[2], : batch.shape[3]])
        frames = -(-batch.shape[3] * out.shape[1] // padded[3])
        return np.ascontiguousarray(out[:, :frames])

    def _raw_run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on ``batch`` exactly as given; return a copy of the first output."""
        result = self._request(batch.shape).infer({0: batch}, share_inputs=True)
        return np.asarray(result[0])


def load_openvino(path: Path, runtime: RuntimeSettings) -> OpenVinoModel:
    """Load ``path`` with the threads, precision and cache folder of ``runtime``.

    A cache folder that cannot be created is logged (once) and compiling goes on without it.

    Raises:
        ModelError: OpenVINO cannot load the file (names it, says to fetch again).
        ConfigError: the precision is not available on this CPU (:func:`inference_precision`).

    """
    precision = inference_precision(runtime, cpu_capabilities())
    if runtime.cache_dir is not None:
        try:
            runtime.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _warn_once(
                "runtime.cache_dir cannot be created; compiling without a cache",
                cache_dir=str(runtime.cache_dir),
                error=str(exc),
            )
            runtime = runtime.model_copy(update={"cache_dir": None})
    return OpenVinoModel(path, compile_config(runtime, precision))
