"""The engine: one page image in, recognised lines in reading order out. No files, no processes.

``Engine.from_settings(settings).ocr(image)`` is the library entry point. The parts (page
orientation classifier, detector, line classifier, recognizer) are injected, so tests and other
callers can assemble their own.

Geometry: the page is turned upright (quarter turn, then deskew) before detection; every
transform applied is composed into one affine from the delivered page to the working page, and
its inverse maps the boxes back, so results are always in the pixels of the page as delivered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ocr_pipeline.engine.backend import InferenceBackend, load_model
from ocr_pipeline.engine.classify import LineOrientationClassifier
from ocr_pipeline.engine.detect import TextDetector
from ocr_pipeline.engine.geometry import (
    compose_affine,
    crop_quad,
    crop_turned,
    invert_affine,
    reading_corners,
    transform_quads,
)
from ocr_pipeline.engine.layout import PageLayout, analyse_layout
from ocr_pipeline.engine.orient import (
    PageOrientationClassifier,
    rotate_quarter,
    skew_from_quads,
    upside_down_votes,
    vote_lines,
)
from ocr_pipeline.engine.preprocess import (
    MIN_SKEW_DEGREES,
    estimate_skew,
    merge_one_row,
    pad_line,
    prepare_page,
    rotate_keep_all,
)
from ocr_pipeline.engine.recognize import (
    Recognized,
    TextRecognizer,
    build_charset,
    read_dictionary,
)
from ocr_pipeline.engine.wordboxes import build_words, char_quads
from ocr_pipeline.models import ModelSpec, get_spec, load_registry, require_model
from ocr_pipeline.results import Block, Line, ModelRef, Page, Word
from ocr_pipeline.settings import (
    LayoutSettings,
    OrientSettings,
    PreprocessSettings,
    RecognizeSettings,
    Settings,
)

STAGES = ("orient", "preprocess", "detect", "crop", "classify", "recognize", "layout")
"""The engine's stages, in order: the keys of :attr:`PageOcr.timings_ms`.

``crop`` is cutting the detected lines out of the page (:func:`crop_quad`); the crops that the
line votes of a 180-degree verdict need are timed as ``orient``.
"""


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
    """Page orientation, detection, line orientation, recognition and reading order, per page.

    Args:
        detector: DBNet detector.
        recognizer: CTC recognizer.
        classifier: line 0/180 classifier, or ``None`` to skip that stage.
        preprocess: preprocessing switches.
        recognize: recognition options (``min_confidence`` drops weak lines).
        layout: reading-order options.
        models: the models used, as recorded in results (``detector``, ``recognizer``, ...).
        orienter: page 0/90/180/270 classifier, or ``None`` to leave quarter turns alone.
        orient: orientation and deskew options; ``None`` (the default) turns the whole
            orientation stage off, as ``mode = "off"``.
        line_votes: line 0/180 classifier that confirms a 180-degree page turn, or ``None``
            to trust the page classifier alone.

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
        orienter: PageOrientationClassifier | None = None,
        orient: OrientSettings | None = None,
        line_votes: LineOrientationClassifier | None = None,
    ) -> None:
        self.orienter = orienter
        self.line_votes = line_votes
        self.orient = orient if orient is not None else OrientSettings(mode="off")
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
        models: dict[str, ModelRef] = {}

        def load(role: str, name: str, kind: str) -> tuple[InferenceBackend, ModelSpec]:
            """Load one registered model and record it under ``role`` for the results."""
            spec = get_spec(registry, name, kind)
            models[role] = ModelRef(name=spec.name, sha256=spec.sha256)
            return load_model(require_model(spec, store.dir), settings.runtime), spec

        def line_classifier(role: str) -> LineOrientationClassifier:
            """The 0/180 line classifier of ``settings.classify``, recorded as ``role``."""
            return LineOrientationClassifier(
                load(role, settings.classify.model, "cls")[0], settings.classify
            )

        detector = TextDetector(load("detector", settings.detect.model, "det")[0], settings.detect)
        rec_model, rec_spec = load("recognizer", settings.recognize.model, "rec")
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
        classifier = None
        if settings.classify.enabled:
            classifier = line_classifier("classifier")
        orienter = None
        line_votes = None
        if settings.orient.mode == "auto":
            orienter = PageOrientationClassifier(
                load("orientation", settings.orient.model, "orient")[0]
            )
            if settings.orient.confirm_upside_down:
                # Without classify.enabled the model only votes on upside-down pages: recorded
                # as such, so a result never names a line classifier that did not run.
                line_votes = classifier or line_classifier("upside_down_votes")
        return cls(
            detector,
            recognizer,
            classifier,
            settings.preprocess,
            settings.recognize,
            settings.layout,
            models,
            orienter,
            settings.orient,
            line_votes,
        )

    def ocr(self, image: np.ndarray, index: int = 0, rotation: int = 0) -> PageOcr:
        """Read one page.

        Args:
            image: ``(H, W, 3)`` uint8 BGR page as delivered (after decoding).
            index: page index recorded in the result.
            rotation: clockwise degrees already applied while decoding (EXIF, PDF /Rotate); the
                engine's own quarter turn is added to it in the result, modulo 360.

        Returns:
            The page record (lines in reading order, boxes in ``image`` pixels) and timings.

        """
        timer = StageTimer()
        settings = self.orient
        auto = settings.mode == "auto"
        deskew = auto and settings.deskew
        turned = 0
        skew = 0.0
        straighten = False
        maybe_upside_down = False
        # ``to_work`` maps pixels of ``image`` to pixels of the page being read.
        with timer.stage("preprocess"):
            # A tight crop of one line gets a margin, or DBNet's box runs off its edges.
            line = pad_line(image)
        source = line.image
        upright = source
        to_work = line.affine
        min_skew = max(settings.min_skew_degrees, MIN_SKEW_DEGREES)
        with timer.stage("orient"):
            if auto and self.orienter is not None:
                verdict = self.orienter.classify(source)
                quarter = verdict.rotation in (90, 270) and verdict.confidence >= settings.threshold
                if line.margin and self.line_votes is not None and not quarter:
                    # The page classifier does not tell 0 from 180 on one line (probabilities
                    # 0.3-0.8 either way on the test lines); the line classifier does, from the
                    # one detected line (probabilities above 0.93 on the same lines).
                    maybe_upside_down = True
                elif verdict.rotation and verdict.confidence >= settings.threshold:
                    if verdict.rotation == 180 and self.line_votes is not None:
                        maybe_upside_down = True  # confirmed by the lines after detection
                    else:
                        upright, turn = rotate_quarter(source, verdict.rotation)
                        to_work = compose_affine(to_work, turn)
                        turned = verdict.rotation
            if deskew and settings.skew_from == "image":
                angle = estimate_skew(upright, settings.max_skew_degrees)
                if abs(angle) >= min_skew:
                    straighten = True
                    upright, turn = rotate_keep_all(upright, -angle)
                    to_work = compose_affine(to_work, turn)
                    skew = angle
        with timer.stage("preprocess"):
            prepared = prepare_page(upright, self.preprocess)
            work = prepared.image
            to_work = compose_affine(to_work, prepared.affine)
            skew += prepared.skew_degrees
        with timer.stage("detect"):
            detections = self.detector.detect(work)
        redetect = False
        if maybe_upside_down and self.line_votes is not None:
            with timer.stage("orient"):
                voters = vote_lines(detections.quads, settings.vote_lines)
                crops = [crop_quad(work, detections.quads[i]) for i in voters]
                if upside_down_votes(self.line_votes.predict(crops)) > 0.5:
                    work, turn = rotate_quarter(work, 180)
                    to_work = compose_affine(to_work, turn)
                    turned = 180
                    redetect = True
        if deskew and settings.skew_from == "lines":
            with timer.stage("orient"):
                # A half turn keeps line angles: the skew measured before it still holds.
                angle_or_none = skew_from_quads(detections.quads)
                angle = 0.0 if angle_or_none is None else angle_or_none
                straighten = min_skew <= abs(angle) <= settings.max_skew_degrees
                if straighten:
                    work, turn = rotate_keep_all(work, -angle)
                    to_work = compose_affine(to_work, turn)
                    skew += angle
                    redetect = True
        if redetect:
            with timer.stage("detect"):
                detections = self.detector.detect(work)
        oriented = turned != 0 or straighten
        found = merge_one_row(detections.quads) if line.margin else detections.quads
        with timer.stage("crop"):
            crops = [crop_quad(work, quad) for quad in found]
            flipped = [False] * len(crops)
        if self.classifier is not None:
            with timer.stage("classify"):
                crops, flipped = self.classifier.upright(crops)
        with timer.stage("recognize"):
            readings = self.recognizer.recognize(crops)
        with timer.stage("layout"):
            keep = [
                i
                for i, r in enumerate(readings)
                if r.text.strip() and r.confidence >= self.recognize_settings.min_confidence
            ]
            work_quads = found[keep]
            readings = [readings[i] for i in keep]
            # Which corner of each box is the top-left of its crop as read (words run from it).
            orders = [reading_corners(crop_turned(found[i]), flipped[i]) for i in keep]
            # Reading order is found on the upright page; boxes go back to the delivered one.
            quads = transform_quads(work_quads, invert_affine(to_work))
            np.clip(quads[:, :, 0], 0, image.shape[1] - 1, out=quads[:, :, 0])
            np.clip(quads[:, :, 1], 0, image.shape[0] - 1, out=quads[:, :, 1])
            layout = analyse_layout(
                work_quads if oriented else quads, self.layout.mode, self.layout.row_overlap
            )
            lines, blocks = _records(layout, readings, quads, orders)
            text = layout.text([reading.text for reading in readings])
        page = Page(
            index=index,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            rotation=(rotation + turned) % 360,
            skew=round(skew, 2),
            lines=lines,
            blocks=blocks,
            text=text,
        )
        return PageOcr(page=page, timings_ms={k: round(v, 1) for k, v in timer.ms.items()})


def _records(
    layout: PageLayout,
    readings: list[Recognized],
    quads: np.ndarray,
    orders: list[tuple[int, int, int, int]],
) -> tuple[list[Line], list[Block]]:
    """Line and block records in reading order; ``quads`` ``(N, 4, 2)`` in delivered pixels.

    ``orders``: per line, its box's corners in the reading order of its crop as recognised
    (:func:`~ocr_pipeline.engine.geometry.reading_corners`), where its words are placed.
    """
    lines: list[Line] = []
    blocks: list[Block] = []
    for number, block in enumerate(layout.blocks):
        first = len(lines)
        for i in block.lines:
            words = _words(readings[i], quads[i][list(orders[i])])
            lines.append(_line(readings[i], quads[i], number, layout.vertical[i], words))
        corners = quads[block.lines].reshape(-1, 2)
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        box = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        blocks.append(
            Block(
                kind=block.kind,
                box=tuple((round(float(x)), round(float(y))) for x, y in box),
                lines=list(range(first, len(lines))),
            )
        )
    return lines, blocks


def _words(reading: Recognized, quad: np.ndarray) -> list[Word] | None:
    """The words of a reading, placed along ``quad`` (``(4, 2)``, corners in reading order)."""
    if len(reading.char_spans) != len(reading.text):
        return None
    quads = char_quads(quad, reading.char_spans)
    return build_words(reading.text, quads, reading.char_confidences)


def _line(
    reading: Recognized, quad: np.ndarray, block: int, vertical: bool, words: list[Word] | None
) -> Line:
    corners = tuple((round(float(x)), round(float(y))) for x, y in quad)
    return Line(
        text=reading.text,
        raw_text=reading.text,
        confidence=round(reading.confidence, 4),
        box=corners,
        char_confidences=list(reading.char_confidences),
        block=block,
        vertical=vertical,
        words=words,
    )
