"""The engine: one page image in, recognised lines in reading order out. No files, no processes.

``Engine.from_settings(settings).ocr(image)`` is the library entry point. The parts (detector,
classifier, recognizer) are injected, so tests and other callers can assemble their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ocr_pipeline.engine.classify import LineOrientationClassifier
from ocr_pipeline.engine.detect import TextDetector
from ocr_pipeline.engine.geometry import crop_quad, transform_quads
from ocr_pipeline.engine.layout import group_rows, page_text
from ocr_pipeline.engine.preprocess import prepare_page
from ocr_pipeline.engine.recognize import (
    Recognized,
    TextRecognizer,
    build_charset,
    read_dictionary,
)
from ocr_pipeline.engine.session import OnnxModel, session_options
from ocr_pipeline.models import get_spec, load_registry, require_model
from ocr_pipeline.results import Line, ModelRef, Page
from ocr_pipeline.settings import (
    LayoutSettings,
    PreprocessSettings,
    RecognizeSettings,
    Settings,
)

STAGES = ("preprocess", "detect", "classify", "recognize", "layout")


@dataclass
class StageTimer:
    """Accumulates wall-clock milliseconds per stage."""

    ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block and add it to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class PageOcr:
    """The engine's answer for one page: the contract's page record and its stage timings."""

    page: Page
    timings_ms: dict[str, float]


class Engine:
    """Detection, orientation, recognition and reading order for one page at a time.

    Args:
        detector: DBNet detector.
        recognizer: CTC recognizer.
        classifier: line 0/180 classifier, or ``None`` to skip that stage.
        preprocess: preprocessing switches.
        recognize: recognition options (``min_confidence`` drops weak lines).
        layout: reading-order options.
        models: the models used, as recorded in results (``detector``, ``recognizer``, ...).

    """

    def __init__(
        self,
        detector: TextDetector,
        recognizer: TextRecognizer,
        classifier: LineOrientationClassifier | None,
        preprocess: PreprocessSettings,
        recognize: RecognizeSettings,
        layout: LayoutSettings,
        models: dict[str, ModelRef],
    ) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.classifier = classifier
        self.preprocess = preprocess
        self.recognize_settings = recognize
        self.layout = layout
        self.models = models

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """Load the configured models (sha256-verified) and build an engine.

        Raises:
            ModelError: a model is unknown, missing or corrupt (says to run ``models fetch``).

        """
        store = settings.models
        registry = load_registry(store.registry_file)
        options = session_options(settings.runtime)
        det_spec = get_spec(registry, settings.detect.model, "det")
        rec_spec = get_spec(registry, settings.recognize.model, "rec")
        detector = TextDetector(
            OnnxModel(require_model(det_spec, store.dir), options), settings.detect
        )
        rec_model = OnnxModel(require_model(rec_spec, store.dir), options)
        dict_path = rec_spec.dictionary_path(store.dir)
        if dict_path is not None:
            dictionary = read_dictionary(dict_path)
        else:
            dictionary = rec_model.metadata.get("character", "").split("\n")
        num_classes = rec_model.output_shape[-1]
        if not isinstance(num_classes, int):
            num_classes = len(dictionary) + 2
        charset = build_charset(dictionary, num_classes)
        recognizer = TextRecognizer(
            rec_model, charset, rec_spec.input_height or 48, settings.recognize
        )
        models = {
            "detector": ModelRef(name=det_spec.name, sha256=det_spec.sha256),
            "recognizer": ModelRef(name=rec_spec.name, sha256=rec_spec.sha256),
        }
        classifier = None
        if settings.classify.enabled:
            cls_spec = get_spec(registry, settings.classify.model, "cls")
            classifier = LineOrientationClassifier(
                OnnxModel(require_model(cls_spec, store.dir), options), settings.classify
            )
            models["classifier"] = ModelRef(name=cls_spec.name, sha256=cls_spec.sha256)
        return cls(
            detector,
            recognizer,
            classifier,
            settings.preprocess,
            settings.recognize,
            settings.layout,
            models,
        )

    def ocr(self, image: np.ndarray, index: int = 0, rotation: int = 0) -> PageOcr:
        """Read one page.

        Args:
            image: ``(H, W, 3)`` uint8 BGR page as delivered (after decoding).
            index: page index recorded in the result.
            rotation: clockwise degrees already applied while decoding, recorded in the result.

        Returns:
            The page record (lines in reading order, boxes in ``image`` pixels) and timings.

        """
        timer = StageTimer()
        with timer.stage("preprocess"):
            prepared = prepare_page(image, self.preprocess)
        with timer.stage("detect"):
            detections = self.detector.detect(prepared.image)
            crops = [crop_quad(prepared.image, quad) for quad in detections.quads]
        if self.classifier is not None:
            with timer.stage("classify"):
                crops, _ = self.classifier.upright(crops)
        with timer.stage("recognize"):
            readings = self.recognizer.recognize(crops)
        with timer.stage("layout"):
            inverse = _invert_affine(prepared.affine)
            quads = transform_quads(detections.quads, inverse)
            np.clip(quads[:, :, 0], 0, image.shape[1] - 1, out=quads[:, :, 0])
            np.clip(quads[:, :, 1], 0, image.shape[0] - 1, out=quads[:, :, 1])
            keep = [
                i
                for i, r in enumerate(readings)
                if r.text.strip() and r.confidence >= self.recognize_settings.min_confidence
            ]
            quads = quads[keep]
            readings = [readings[i] for i in keep]
            rows = group_rows(quads, self.layout.row_overlap)
            order = [i for row in rows for i in row]
            lines = [_line(readings[i], quads[i]) for i in order]
            positions = {original: new for new, original in enumerate(order)}
            text = page_text(
                [[positions[i] for i in row] for row in rows], [ln.text for ln in lines]
            )
        page = Page(
            index=index,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            rotation=rotation,
            skew=round(prepared.skew_degrees, 2),
            lines=lines,
            text=text,
        )
        return PageOcr(page=page, timings_ms={k: round(v, 1) for k, v in timer.ms.items()})


def _invert_affine(affine: np.ndarray) -> np.ndarray:
    full = np.vstack([affine, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _line(reading: Recognized, quad: np.ndarray) -> Line:
    corners = tuple((round(float(x)), round(float(y))) for x, y in quad)
    return Line(
        text=reading.text,
        raw_text=reading.text,
        confidence=round(reading.confidence, 4),
        box=corners,
        char_confidences=list(reading.char_confidences),
    )
