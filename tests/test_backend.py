"""The inference-backend seam: stages run on any InferenceBackend; load_model picks and fails."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import ocr_pipeline
from ocr_pipeline.cpus import available_cpus
from ocr_pipeline.engine.backend import InferenceBackend, load_model
from ocr_pipeline.engine.detect import TextDetector
from ocr_pipeline.engine.onnxruntime_backend import session_options
from ocr_pipeline.engine.orient import PageOrientationClassifier
from ocr_pipeline.engine.recognize import TextRecognizer, build_charset
from ocr_pipeline.errors import ConfigError, ModelError
from ocr_pipeline.models import get_spec, load_registry, require_model
from ocr_pipeline.settings import DetectSettings, RecognizeSettings, RuntimeSettings, Settings


class FakeModel:
    """A stand-in backend: records the batches it is given and returns a fixed output."""

    def __init__(self, output: np.ndarray) -> None:
        self.path = Path("fake.onnx")
        self.input_name = "x"
        self.output_name = "y"
        self.output_shape: list[int | str | None] = ["batch", *output.shape[1:]]
        self.metadata: dict[str, str] = {}
        self.output = output
        self.batches: list[np.ndarray] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch)
        return self.output


def _frames(indices: list[int], classes: int) -> np.ndarray:
    """``(T, classes)`` float32 CTC probabilities: 0.9 on each frame's class."""
    frames = np.full((len(indices), classes), 0.1 / (classes - 1), dtype=np.float32)
    frames[np.arange(len(indices)), indices] = 0.9
    return frames


def test_fake_model_satisfies_the_protocol() -> None:
    assert isinstance(FakeModel(np.zeros((1, 2), np.float32)), InferenceBackend)
    assert not isinstance(object(), InferenceBackend)


def test_recognizer_decodes_what_any_backend_returns() -> None:
    charset = build_charset(list("abc"), num_classes=5)  # blank, a, b, c, space
    # Two lines of 6 frames: "ab c" (a a blank b space c) and "cab" (c blank a b b blank).
    probs = np.stack([_frames([1, 1, 0, 2, 4, 3], 5), _frames([3, 0, 1, 2, 2, 0], 5)])
    model = FakeModel(probs)
    settings = RecognizeSettings(batch_size=2, width_growth=10.0, space_gap=0.0)
    recognizer = TextRecognizer(model, charset, 48, settings)
    crops = [np.full((24, 100, 3), 255, np.uint8), np.full((24, 120, 3), 255, np.uint8)]
    readings = recognizer.recognize(crops)
    assert [r.text for r in readings] == ["ab c", "cab"]
    assert readings[0].char_confidences == (0.9, 0.9, 0.9, 0.9)
    [batch] = model.batches
    assert batch.dtype == np.float32 and batch.shape[:3] == (2, 3, 48)
    assert batch.flags["C_CONTIGUOUS"]


def test_detector_boxes_come_from_the_backends_probability_map() -> None:
    settings = DetectSettings(limit_type="max", limit_side=64, max_side=64, region_side=0)
    prob = np.zeros((1, 1, 64, 64), dtype=np.float32)
    prob[0, 0, 20:30, 10:50] = 0.95
    model = FakeModel(prob)
    found = TextDetector(model, settings).detect(np.full((64, 64, 3), 255, np.uint8))
    assert found.quads.shape == (1, 4, 2)
    assert model.batches[0].shape == (1, 3, 64, 64)


def test_page_classifier_turns_back_what_the_backend_says() -> None:
    model = FakeModel(np.array([[0.05, 0.9, 0.03, 0.02]], dtype=np.float32))  # content at 90
    verdict = PageOrientationClassifier(model).classify(np.zeros((300, 200, 3), np.uint8))
    assert verdict.rotation == 270
    assert verdict.confidence == pytest.approx(0.9)
    assert model.batches[0].shape == (1, 3, 224, 224)


@pytest.mark.parametrize("content", [b"", b"this is not an ONNX model\n"])
def test_load_model_names_an_unloadable_file(tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "broken-det.onnx"
    broken.write_bytes(content)
    with pytest.raises(ModelError, match=re.escape(str(broken))) as caught:
        load_model(broken, RuntimeSettings())
    assert "ocr-pipeline models fetch --force" in str(caught.value)


def test_load_model_names_a_missing_file(tmp_path: Path) -> None:
    absent = tmp_path / "absent.onnx"
    with pytest.raises(ModelError, match=re.escape(str(absent))):
        load_model(absent, RuntimeSettings())


def test_load_model_refuses_an_unknown_backend(tmp_path: Path) -> None:
    runtime = RuntimeSettings().model_copy(update={"backend": "nonesuch"})  # not validated
    with pytest.raises(ConfigError, match="nonesuch"):
        load_model(tmp_path / "any.onnx", runtime)


def test_onnxruntime_backend_loads_a_registered_model(settings: Settings) -> None:
    spec = get_spec(load_registry(settings.models.registry_file), settings.classify.model, "cls")
    model = load_model(require_model(spec, settings.models.dir), settings.runtime)
    assert isinstance(model, InferenceBackend)
    assert model.output_shape[-1] == 2
    out = model.run(np.zeros((3, 3, 48, 192), dtype=np.float32))
    assert out.shape == (3, 2) and out.dtype == np.float32


def test_threads_default_to_the_cpus_this_process_may_use() -> None:
    assert session_options(RuntimeSettings()).intra_op_num_threads == available_cpus()
    assert session_options(RuntimeSettings(intra_op_threads=3)).intra_op_num_threads == 3


@pytest.mark.parametrize(
    ("runtime", "allowed"),
    [
        ("onnxruntime", {"engine/onnxruntime_backend.py"}),
        # backend.py only tries the import, to turn a missing extra into a ConfigError.
        ("openvino", {"engine/openvino_backend.py", "engine/backend.py"}),
    ],
)
def test_a_runtime_is_imported_only_by_its_backend(runtime: str, allowed: set[str]) -> None:
    package = Path(ocr_pipeline.__file__).parent
    importers = set()
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == runtime for name in names):
                importers.add(source.relative_to(package).as_posix())
    assert importers == allowed
