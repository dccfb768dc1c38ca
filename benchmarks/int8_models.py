"""Post-training static int8 quantization of the detector and the recognizer.

:func:`build_int8_models` turns the configured fp32 DBNet detector and CTC recognizer into int8
ONNX models (QDQ format: ``QuantizeLinear``/``DequantizeLinear`` pairs around each quantized
operator, which ONNX Runtime's CPU provider fuses into integer kernels and OpenVINO runs as
int8). Weights are quantized per output channel (symmetric int8), activations per tensor
(asymmetric uint8) with ranges measured on calibration pages.

Calibration inputs are exactly what the models see in production: the calibration pages go
through the engine itself (:meth:`~ocr_pipeline.engine.Engine.ocr`) with its models wrapped in a
:class:`RecordingModel`, so detector inputs have the engine's sizes (the coarse region pass and
the full pass) and its normalisation, and recognizer inputs are the line crops the detector
finds on those pages, resized and batched as the recognizer does. Calibration pages must not be
the pages accuracy is measured on.

Nodes listed in :attr:`QuantizeOptions.keep_fp32` (or chosen by :func:`sensitive_nodes`: the
first convolution, the detector's output layers, the recognizer's CTC head) stay in fp32.

Nothing here runs at import; ``onnx`` and ``onnxruntime.quantization`` are imported when a
model is built (``pip install onnx``). Files are written only to the paths given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ocr_pipeline.engine.backend import InferenceBackend
from ocr_pipeline.engine.detect import TextDetector
from ocr_pipeline.engine.pipeline import Engine
from ocr_pipeline.engine.recognize import TextRecognizer
from ocr_pipeline.errors import ModelError

QUANT_OPSET = 13
"""ONNX opset the models are converted to first: per-channel ``DequantizeLinear`` needs 13."""


class RecordingModel:
    """An :class:`~ocr_pipeline.engine.backend.InferenceBackend` that keeps every batch it runs.

    Delegates to ``model`` and appends a copy of each input batch to :attr:`batches`.

    Args:
        model: the model to run.

    """

    def __init__(self, model: InferenceBackend) -> None:
        self.model = model
        self.batches: list[np.ndarray] = []
        """Every input batch seen, in call order (copies)."""

    @property
    def path(self) -> Path:
        """The wrapped model's file."""
        return self.model.path

    @property
    def input_name(self) -> str:
        """The wrapped model's input name."""
        return self.model.input_name

    @property
    def output_name(self) -> str:
        """The wrapped model's output name."""
        return self.model.output_name

    @property
    def output_shape(self) -> list[int | str | None]:
        """The wrapped model's output shape."""
        return self.model.output_shape

    @property
    def metadata(self) -> dict[str, str]:
        """The wrapped model's metadata."""
        return self.model.metadata

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Record ``batch``, then run the wrapped model on it."""
        self.batches.append(batch.copy())
        return self.model.run(batch)


def with_models(
    engine: Engine,
    detector: InferenceBackend | None = None,
    recognizer: InferenceBackend | None = None,
) -> Engine:
    """A new engine like ``engine`` whose detector and/or recognizer run other models.

    Everything else (settings, charset, classifiers, recorded model names) is shared; ``engine``
    itself is not changed.

    Args:
        engine: the engine to copy.
        detector: the detector model to use instead (``None``: keep the engine's).
        recognizer: the recognizer model to use instead (``None``: keep the engine's).

    Returns:
        The new engine.

    """
    old_det, old_rec = engine.detector, engine.recognizer
    return Engine(
        TextDetector(detector or old_det.model, old_det.settings),
        TextRecognizer(
            recognizer or old_rec.model, old_rec.charset, old_rec.height, old_rec.settings
        ),
        engine.classifier,
        engine.preprocess,
        engine.recognize_settings,
        engine.layout,
        dict(engine.models),
        engine.orienter,
        engine.orient,
        engine.line_votes,
    )


@dataclass(frozen=True)
class Calibration:
    """Model inputs recorded while the engine read the calibration pages."""

    detector: list[np.ndarray]
    """Detector batches ``(1, 3, h, w)`` float32, as :func:`detector_input` makes them."""
    recognizer: list[np.ndarray]
    """Recognizer batches ``(n, 3, 48, w)`` float32 in [-1, 1], as the recognizer makes them."""


def record_calibration(engine: Engine, pages: Iterable[np.ndarray]) -> Calibration:
    """Run ``engine`` over ``pages`` and record what its detector and recognizer are given.

    Args:
        engine: the fp32 engine (its own preprocessing, sizes and line crops are used).
        pages: ``(H, W, 3)`` uint8 BGR calibration pages, none of them an evaluation page.

    Returns:
        The recorded inputs, in call order.

    """
    det = RecordingModel(engine.detector.model)
    rec = RecordingModel(engine.recognizer.model)
    recording = with_models(engine, det, rec)
    for page in pages:
        recording.ocr(page)
    return Calibration(detector=det.batches, recognizer=rec.batches)


def spread(batches: Sequence[np.ndarray], limit: int) -> list[np.ndarray]:
    """At most ``limit`` of ``batches``, evenly spaced over the sequence (all when fewer)."""
    if len(batches) <= limit:
        return list(batches)
    picks = np.linspace(0, len(batches) - 1, limit).round().astype(int)
    return [batches[int(i)] for i in picks]


@dataclass(frozen=True)
class QuantizeOptions:
    """How a model is quantized (ONNX Runtime ``quantize_static`` parameters)."""

    per_channel: bool = True
    """Weight scales per output channel (else one per tensor)."""
    reduce_range: bool = False
    """7-bit weights: avoids ``VPMADDUBSW`` saturation on CPUs without VNNI (AVX2 only)."""
    method: Literal["minmax", "percentile", "entropy"] = "minmax"
    """Activation range estimator over the calibration tensors."""
    percentile: float = 99.999
    """With ``method = "percentile"``: the percentile of absolute values kept."""
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    """QDQ (Q/DQ pairs, portable to OpenVINO) or QOperator (``QLinearConv``, ONNX Runtime only)."""
    keep_fp32: tuple[str, ...] = ()
    """Names of nodes (of the preprocessed graph, :func:`prepare`) left in fp32."""
    op_types: tuple[str, ...] = ("Conv", "MatMul")
    """Operator types to quantize (empty: ONNX Runtime's default set, which also quantizes the
    element-wise ``Add``/``Mul``/``Sigmoid`` of HardSwish, GELU and the recognizer's
    LayerNorm: on 12 sroie-dev receipts the int8 recognizer's word F1 fell from fp32's 0.889 to
    0.754 that way, to 0.862 with Conv and MatMul only and the CTC head in fp32)."""
    max_batches: int = 200
    """Most calibration batches used (evenly spaced over the recorded ones)."""
    extra: dict[str, object] = field(default_factory=dict)
    """Further ``extra_options`` for ``quantize_static``."""


def prepare(source: Path, target: Path) -> Path:
    """Write ``source`` converted to opset :data:`QUANT_OPSET`, optimised and shape-inferred.

    ONNX Runtime's ``quant_pre_process`` (constant folding, BatchNorm fusion, symbolic shapes);
    node names in :attr:`QuantizeOptions.keep_fp32` refer to this graph.

    Returns:
        ``target``.

    Raises:
        ModelError: the model cannot be converted.

    """
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < QUANT_OPSET:
        try:
            model = version_converter.convert_version(model, QUANT_OPSET)
        except Exception as exc:  # onnx raises untyped errors from its C++ converter
            raise ModelError(f"cannot convert {source} to opset {QUANT_OPSET}: {exc}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / "converted.onnx"
        onnx.save(model, str(converted))
        quant_pre_process(str(converted), str(target), skip_symbolic_shape=True)
    return target


def sensitive_nodes(prepared: Path, kind: Literal["det", "rec"]) -> tuple[str, ...]:
    """Names of the layers commonly kept in fp32: the ends of the network.

    The first convolution (it sees the raw [-1, 1] pixels) for both; for a detector the
    ``ConvTranspose`` and ``Conv`` nodes of the probability head (the last three weighted
    layers); for a recognizer the last ``MatMul``/``Gemm`` (the CTC head over the classes).

    Args:
        prepared: a model written by :func:`prepare`.
        kind: ``det`` or ``rec``.

    Returns:
        Node names, in graph order.

    """
    import onnx

    weighted = [
        node.name
        for node in onnx.load(str(prepared)).graph.node
        if node.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")
    ]
    if not weighted:
        return ()
    tail = weighted[-3:] if kind == "det" else weighted[-1:]
    return tuple(dict.fromkeys([weighted[0], *tail]))


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader`` interface over recorded batches.

    With ``len`` and ``set_range`` it also serves ``CalibStridedMinMax``: ranges are then
    computed and merged stride by stride, so the histogram estimators (percentile, entropy),
    which keep whole intermediate tensors, never hold more than one stride's.
    """

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._input_name = input_name
        self._batches = batches
        self._iterator: Iterator[np.ndarray] = iter(batches)

    def __len__(self) -> int:
        return len(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next input feed, or ``None`` at the end (of the range, when one is set)."""
        batch = next(self._iterator, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._iterator = iter(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve only ``batches[start_index:end_index]`` from now on."""
        self._iterator = iter(self._batches[start_index:end_index])


def quantize_model(
    prepared: Path, target: Path, batches: Sequence[np.ndarray], options: QuantizeOptions
) -> Path:
    """Quantize one prepared model statically with calibration batches.

    Args:
        prepared: the fp32 model from :func:`prepare`.
        target: where the int8 model is written.
        batches: calibration inputs for its (only) input, as the engine makes them.
        options: format, granularity, range estimator, nodes left in fp32.

    Returns:
        ``target``.

    Raises:
        ModelError: no calibration batches.

    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not batches:
        raise ModelError(f"no calibration inputs for {prepared}: give pages with text")
    input_name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
    reader = _Batches(input_name, spread(batches, options.max_batches))
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    # One batch per stride: ranges merge batch by batch. (``CalibMaxIntermediateOutputs`` would
    # bound memory too, but ONNX Runtime 1.32 drops the held outputs without computing their
    # ranges when it reaches that bound, so only the last few batches would count.)
    extra: dict[str, object] = {"CalibStridedMinMax": 1, **options.extra}
    if options.method == "percentile":
        extra["CalibPercentile"] = options.percentile
    quantize_static(
        str(prepared),
        str(target),
        reader,  # duck-typed: ``get_next`` and ``rewind``, as ``CalibrationDataReader``
        quant_format=QuantFormat.QDQ if options.quant_format == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=list(options.op_types) or None,
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(options.keep_fp32),
        calibrate_method=methods[options.method],
        extra_options=extra,
    )
    return target


@dataclass(frozen=True)
class Int8Models:
    """The files :func:`build_int8_models` wrote."""

    detector: Path
    """The int8 detector (QDQ or QOperator ONNX)."""
    recognizer: Path
    """The int8 recognizer."""
    detector_fp32_nodes: tuple[str, ...]
    """Detector nodes left in fp32."""
    recognizer_fp32_nodes: tuple[str, ...]
    """Recognizer nodes left in fp32."""
    detector_batches: int
    """Calibration batches recorded for the detector."""
    recognizer_batches: int
    """Calibration batches (lines, with ``recognize.batch_size = 1``) for the recognizer."""


def build_int8_models(
    engine: Engine,
    pages: Iterable[np.ndarray],
    out_dir: Path,
    detector: QuantizeOptions | None = None,
    recognizer: QuantizeOptions | None = None,
    *,
    keep_sensitive: bool = True,
) -> Int8Models:
    """Build int8 models of ``engine``'s detector and recognizer from calibration pages.

    Args:
        engine: an fp32 engine (:meth:`Engine.from_settings`); its models' files are read.
        pages: ``(H, W, 3)`` uint8 BGR calibration pages; never the evaluation pages.
        out_dir: folder the models are written to (``<stem>.int8.onnx``), created if needed.
        detector: detector options (default :class:`QuantizeOptions`).
        recognizer: recognizer options (default :class:`QuantizeOptions`).
        keep_sensitive: also leave :func:`sensitive_nodes` in fp32 (the default: quantized
            logits of the CTC head change which class wins a frame).

    Returns:
        The written models and what was kept in fp32.

    Raises:
        ModelError: a model cannot be converted, or the pages gave no inputs.

    """
    calibration = record_calibration(engine, pages)
    out_dir.mkdir(parents=True, exist_ok=True)
    built: dict[str, tuple[Path, tuple[str, ...]]] = {}
    stages: tuple[
        tuple[Literal["det", "rec"], InferenceBackend, QuantizeOptions, list[np.ndarray]], ...
    ] = (
        ("det", engine.detector.model, detector or QuantizeOptions(), calibration.detector),
        ("rec", engine.recognizer.model, recognizer or QuantizeOptions(), calibration.recognizer),
    )
    for kind, model, options, batches in stages:
        prepared = prepare(model.path, out_dir / f"{model.path.stem}.prepared.onnx")
        keep = options.keep_fp32
        if keep_sensitive:
            keep = tuple(dict.fromkeys([*keep, *sensitive_nodes(prepared, kind)]))
        options = replace(options, keep_fp32=keep)
        target = out_dir / f"{model.path.stem}.int8.onnx"
        built[kind] = (quantize_model(prepared, target, batches, options), keep)
    return Int8Models(
        detector=built["det"][0],
        recognizer=built["rec"][0],
        detector_fp32_nodes=built["det"][1],
        recognizer_fp32_nodes=built["rec"][1],
        detector_batches=len(calibration.detector),
        recognizer_batches=len(calibration.recognizer),
    )
