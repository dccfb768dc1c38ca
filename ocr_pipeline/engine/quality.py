"""Input quality of one page: text height, resolution, contrast and sharpness, and warnings.

Pure numpy/OpenCV, measured on the detected line boxes (not the whole page), so it costs a few
milliseconds per page whatever its size: at most :data:`SAMPLE_LINES` windows of lines are
looked at. The measures and why each was chosen:

- **Text height**, pixels: the median over the lines of the short side of each line box (its
  height for a horizontal line, its width for a vertical one). DBNet boxes are unclipped: on
  rendered Latin text a box is 1.1 to 1.2 times the font size, on Chinese 1.3 to 1.45. The
  recognizer resizes every line to 48 px high, so small text is upscaled there: below the
  threshold strokes merge and characters are missed or misread.
- **Resolution**, dots per inch: the *effective* resolution, from the text height, of a page whose
  text were :data:`NOMINAL_TEXT_POINTS` pt body text (:data:`BOX_HEIGHT_PER_POINT`). What a file
  states is not used: the dev receipts state none (37 of 50) or 96, 150 or 200 dpi whatever
  their real size, phones write 72, the decoder does not pass it on, and a PDF page's dpi is the
  render resolution chosen by ``decode.pdf_dpi``, not the scan's. It is the text height in other
  units, so it has no threshold of its own: the text-height warning quotes it and says to scan
  at a higher resolution.
- **Contrast**, grey levels 0..255: the median over the lines of the spread between the dark and
  the light end of the grey levels inside each line box (95th minus 5th percentile): ink against
  paper, whichever is darker. Faded print and grey-on-grey scans have a small spread.
- **Sharpness**, dimensionless: the text height divided by the blur of the text's edges (as a
  Gaussian sigma, pixels), the median over the lines. A step edge of contrast ``C`` blurred by a
  Gaussian of ``sigma`` px has a peak gradient of ``C / (sigma * sqrt(2 pi))``, so a line's
  strongest gradient (99th percentile of the Sobel magnitude in its box) over its contrast gives
  its edge width independent of contrast (:func:`blur_width`, which also takes out the spread
  of a perfectly sharp edge over a pixel). Divided into the text height it is independent of
  scale, as the recognizer sees the line after resizing it to 48 px high: ``sigma / height``
  is what blurs the characters. (The variance of the Laplacian, the usual focus measure, grows
  with contrast and falls with scale, so no one threshold would fit pages of different contrast
  or text size.) On the dev pages a Gaussian blur of ``k`` times the text height reads as about
  ``1 / k``: 0.05 as 31, 0.1 as 13.5. Small sharp text still loses sharpness to its pixels
  (8 px text reads as about 16), so below the text-height threshold only the text-height
  warning is given.

Thresholds come from ``benchmarks/bench_quality.py``: dev pages degraded along each axis until
CER breaks (docs/engine.md, "Input quality warnings").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ocr_pipeline.engine.geometry import BOTTOM, LEFT, RIGHT, TOP, edge_lengths
from ocr_pipeline.settings import QualitySettings

SAMPLE_LINES = 32
"""Most line crops measured for contrast and sharpness (spread evenly over the page's lines)."""
WINDOW_ASPECT = 8.0
"""A line longer than this many times its height is measured on a window of that length in its
middle (a line's print is alike along it)."""
NOMINAL_TEXT_POINTS = 10.0
"""Body text size the effective resolution assumes, points (1/72 inch)."""
BOX_HEIGHT_PER_POINT = 1.15
"""Line box height (DBNet, unclipped) of 1 pt text, points: measured 1.10 to 1.19 on Latin text
rendered at 10 pt (Liberation, DejaVu) at 150 and 300 dpi."""
DARK_PERCENTILE = 5.0
LIGHT_PERCENTILE = 95.0
EDGE_PERCENTILE = 99.0
MEASURE_HEIGHT = 32.0
"""Lines at least twice this high, pixels, are shrunk by a whole factor to between one and two
times it before contrast and sharpness are measured (a bounded cost; both are scale-free)."""
MIN_CONTRAST = 1.0
"""Grey levels below which a line has no edges worth measuring sharpness on (a flat crop)."""
PIXEL_EDGE_WIDTH = 0.6
"""Edge width (as a Gaussian sigma, pixels) of the sharpest dev scans: what sampling alone gives
(0.6 to 0.8 px measured on the undegraded dev pages)."""
MIN_BLUR_WIDTH = 0.3
"""Smallest blur taken, pixels: sharper than this is not told apart (it caps the sharpness)."""
MAX_SHARPNESS = 99.0
"""Sharpness reported for a line whose edges are as sharp as can be measured."""
_SOBEL_SCALE = 1.0 / 8.0
"""A 3x3 Sobel kernel gives 8 times the grey-level slope of a ramp; this makes it levels/px."""


@dataclass(frozen=True)
class PageQuality:
    """Measured input quality of one page; ``None`` where not measurable (no lines)."""

    text_height_px: float | None
    """Median short side of the line boxes, pixels of the page as delivered."""
    resolution_dpi: float | None
    """Effective resolution, dots per inch, of the page's text taken as 10 pt body text."""
    contrast: float | None
    """Median spread of grey levels inside the line boxes (95th - 5th percentile), 0..255."""
    sharpness: float | None
    """Median text height over the blur of its edges (a Gaussian sigma, pixels), dimensionless;
    higher is sharper, at most :data:`MAX_SHARPNESS`."""


EMPTY = PageQuality(None, None, None, None)
"""The quality of a page without lines: nothing measured."""


def measure_page(image: np.ndarray, quads: np.ndarray) -> PageQuality:
    """Measure a page's text height, effective resolution, contrast and sharpness.

    Args:
        image: the page, ``(H, W, 3)`` uint8 BGR (or ``(H, W)`` uint8 grey), as delivered.
        quads: ``(N, 4, 2)`` line box corners clockwise from the text's top-left, pixels of
            ``image`` (any numeric dtype).

    Returns:
        The page's measures; all ``None`` when there are no lines.

    """
    boxes = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    if len(boxes) == 0:
        return EMPTY
    heights = line_heights(boxes)
    text_height = float(np.median(heights))
    contrasts: list[float] = []
    sharpness: list[float] = []
    for index in _sample(len(boxes)):
        crop = _grey_crop(image, boxes[index], float(heights[index]))
        if crop is None:
            continue
        grey, scale = crop
        spread = grey_spread(grey)
        contrasts.append(spread)
        if spread >= MIN_CONTRAST:
            blur = blur_width(spread, edge_strength(grey))
            sharpness.append(min(MAX_SHARPNESS, float(heights[index]) * scale / blur))
    return PageQuality(
        text_height_px=round(text_height, 1),
        resolution_dpi=round(effective_dpi(text_height), 0),
        contrast=round(float(np.median(contrasts)), 1) if contrasts else None,
        sharpness=round(float(np.median(sharpness)), 1) if sharpness else None,
    )


def line_heights(quads: np.ndarray) -> np.ndarray:
    """Short side of each line box: ``(N, 4, 2)`` corners to ``(N,)`` float64 pixels."""
    edges = edge_lengths(quads)
    width = (edges[:, TOP] + edges[:, BOTTOM]) / 2.0
    height = (edges[:, LEFT] + edges[:, RIGHT]) / 2.0
    shortest: np.ndarray = np.minimum(width, height)
    return shortest


def effective_dpi(text_height_px: float) -> float:
    """Dots per inch at which :data:`NOMINAL_TEXT_POINTS` pt text has this line box height."""
    box_inches = NOMINAL_TEXT_POINTS * BOX_HEIGHT_PER_POINT / 72.0
    return text_height_px / box_inches


def grey_spread(grey: np.ndarray) -> float:
    """Light minus dark percentile of a ``(h, w)`` uint8 crop, grey levels 0..255."""
    dark, light = _percentiles(grey, (DARK_PERCENTILE, LIGHT_PERCENTILE))
    return light - dark


def blur_width(contrast: float, gradient: float) -> float:
    """The Gaussian blur of a line's edges, pixels, from its contrast and peak gradient.

    A step edge of contrast ``C`` blurred by a Gaussian of ``sigma`` px has a peak slope of
    ``C / (sigma * sqrt(2 pi))``, so ``C / (slope * sqrt(2 pi))`` is the edge width as a sigma.
    A perfectly sharp edge still spreads over a pixel (:data:`PIXEL_EDGE_WIDTH`), which is
    taken out in quadrature (Gaussian widths add so), leaving the blur of the optics or the
    motion; not less than :data:`MIN_BLUR_WIDTH`.

    Args:
        contrast: grey-level spread of the line (:func:`grey_spread`), > 0.
        gradient: its peak gradient (:func:`edge_strength`), grey levels per pixel.

    """
    width = contrast / max(gradient * math.sqrt(2.0 * math.pi), 1e-6)
    return math.sqrt(max(width * width - PIXEL_EDGE_WIDTH**2, MIN_BLUR_WIDTH**2))


def edge_strength(grey: np.ndarray) -> float:
    """The :data:`EDGE_PERCENTILE` of the gradient magnitude of a ``(h, w)`` uint8 crop.

    Returns:
        Grey levels per pixel (3x3 Sobel, scaled to the slope of a ramp).

    """
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy).ravel()
    rank = min(len(magnitude) - 1, int(len(magnitude) * EDGE_PERCENTILE / 100.0))
    return float(np.partition(magnitude, rank)[rank]) * _SOBEL_SCALE


def quality_warnings(quality: PageQuality, settings: QualitySettings) -> list[str]:
    """The warnings of a page whose measures are below the thresholds.

    Each names the measured value, the threshold and what to do; a measure that is ``None``
    (a page without lines) gives none, and so does ``settings.enabled = False``.

    Args:
        quality: the page's measures (:func:`measure_page`).
        settings: the thresholds (section ``quality``).

    Returns:
        Zero to three messages: text height (quoting the effective resolution), contrast,
        sharpness, in that order; no sharpness warning below the text-height threshold, where
        the pixels, not the focus, limit the sharpness.

    """
    if not settings.enabled:
        return []
    warnings: list[str] = []
    height = quality.text_height_px
    small = height is not None and height < settings.min_text_height_px
    if height is not None and small:
        needed = effective_dpi(settings.min_text_height_px)
        warnings.append(
            f"text height {height:.1f} px is below {settings.min_text_height_px:g} px "
            f"(quality.min_text_height_px; for {NOMINAL_TEXT_POINTS:g} pt text that is about "
            f"{effective_dpi(height):.0f} dpi, {needed:.0f} needed): OCR may miss or misread "
            "characters; scan at a higher resolution"
        )
    if quality.contrast is not None and quality.contrast < settings.min_contrast:
        warnings.append(
            f"contrast {quality.contrast:.1f} grey levels is below {settings.min_contrast:g} "
            "(quality.min_contrast): faint or faded text may be missed; scan darker, or with "
            "more contrast"
        )
    if quality.sharpness is not None and quality.sharpness < settings.min_sharpness and not small:
        warnings.append(
            f"sharpness {quality.sharpness:.1f} is below {settings.min_sharpness:g} "
            "(quality.min_sharpness: the text height over the blur of its edges): blurred text "
            "may be misread; rescan, or photograph in focus and without motion"
        )
    return warnings


def _sample(count: int) -> np.ndarray:
    """Indices of at most :data:`SAMPLE_LINES` lines spread evenly over ``count``."""
    if count <= SAMPLE_LINES:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, SAMPLE_LINES).round().astype(np.intp))


def _grey_crop(
    image: np.ndarray, quad: np.ndarray, line_height: float
) -> tuple[np.ndarray, float] | None:
    """The grey axis-aligned crop around a ``(4, 2)`` quad, shrunk to a bounded text height.

    Args:
        image: the page, ``(H, W, 3)`` uint8 BGR or ``(H, W)`` uint8 grey.
        quad: the line's corners, pixels of ``image``.
        line_height: the line's short side, pixels.

    Returns:
        ``(h, w)`` uint8 crop and the scale applied to it (1, or 1/k for a line at least
        ``k`` times :data:`MEASURE_HEIGHT` px high, shrunk by area averaging so that big text
        costs no more than small); ``None`` for a crop under 3x3 pixels.

    """
    height, width = image.shape[:2]
    low, high = quad.min(axis=0).tolist(), quad.max(axis=0).tolist()
    x0, y0 = max(math.floor(low[0]), 0), max(math.floor(low[1]), 0)
    x1, y1 = min(math.ceil(high[0]), width), min(math.ceil(high[1]), height)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    longest = max(3, round(WINDOW_ASPECT * line_height))
    if x1 - x0 >= y1 - y0 and x1 - x0 > longest:  # a long horizontal line: its middle
        x0 += (x1 - x0 - longest) // 2
        x1 = x0 + longest
    elif y1 - y0 > x1 - x0 and y1 - y0 > longest:  # a long vertical line
        y0 += (y1 - y0 - longest) // 2
        y1 = y0 + longest
    crop = image[y0:y1, x0:x1]
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    factor = max(1, min(int(line_height // MEASURE_HEIGHT), (x1 - x0) // 3, (y1 - y0) // 3))
    if factor > 1:  # an integer factor: OpenCV's fast path of area averaging
        crop = cv2.resize(crop, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop), 1.0 / factor


def _percentiles(grey: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """Percentiles of a uint8 array from its histogram (the lowest level reaching each)."""
    counts = np.bincount(grey.ravel(), minlength=256).cumsum()
    ranks = np.ceil(np.asarray(percents) * (float(counts[-1]) / 100.0))
    levels: list[float] = np.searchsorted(counts, ranks).astype(np.float64).tolist()
    return levels
