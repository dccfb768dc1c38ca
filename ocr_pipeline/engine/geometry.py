"""Quadrilateral and affine helpers shared by the engine's stages (pure numpy/OpenCV).

Quads are ``(4, 2)`` (or ``(N, 4, 2)``) corner coordinates in pixels, clockwise from top-left
(:func:`order_quad`); affines are ``(2, 3)`` float64 matrices mapping pixel coordinates
``(x, y)`` of one image to another, ``[x', y'] = A @ [x, y, 1]``.
"""

from __future__ import annotations

import cv2
import numpy as np


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 points clockwise from top-left.

    Args:
        points: ``(4, 2)`` float array of corner coordinates, any order.

    Returns:
        ``(4, 2)`` float32 array: top-left, top-right, bottom-right, bottom-left.

    """
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


TOP, RIGHT, BOTTOM, LEFT = range(4)
"""Indices of the edges in :func:`edge_lengths`' last axis."""


def edge_lengths(quads: np.ndarray) -> np.ndarray:
    """Lengths of the four edges of ordered quads.

    Args:
        quads: ``(..., 4, 2)`` corners clockwise from top-left, pixels, any float or int dtype.

    Returns:
        ``(..., 4)`` float64 lengths in pixels, in the order :data:`TOP` (corner 0 to 1),
        :data:`RIGHT` (1 to 2), :data:`BOTTOM` (2 to 3), :data:`LEFT` (3 to 0).

    """
    corners = np.asarray(quads, dtype=np.float64)
    edges = np.roll(corners, -1, axis=-2) - corners
    lengths: np.ndarray = np.hypot(edges[..., 0], edges[..., 1])
    return lengths


def quad_size(quad: np.ndarray) -> tuple[int, int]:
    """Width and height in pixels of an ordered quad ``(4, 2)``: longer of each opposite pair."""
    top, right, bottom, left = edge_lengths(quad)
    width, height = max(top, bottom), max(left, right)
    return max(1, round(float(width))), max(1, round(float(height)))


VERTICAL_RATIO = 1.5
"""Height / width from which :func:`crop_quad` takes a box for a vertical line and turns it."""


def crop_turned(quad: np.ndarray, vertical_ratio: float = VERTICAL_RATIO) -> bool:
    """Whether :func:`crop_quad` turns the crop of ``quad`` (a vertical line) by 90 degrees."""
    width, height = quad_size(quad)
    return height >= vertical_ratio * width


def reading_corners(turned: bool, flipped: bool) -> tuple[int, int, int, int]:
    """Indices of a box's corners in the reading order of its crop as recognised.

    The crop's top-left corner first, clockwise: the edge from the first to the second runs
    along the text as the recognizer read it, left to right in the crop.

    Args:
        turned: the crop was turned 90 degrees counter-clockwise (:func:`crop_turned`): its
            top-left is the box's top-right corner, and the text runs down the box's right edge.
        flipped: the crop was then turned by 180 degrees (the line classifier).

    Returns:
        Four indices into the box's corners (clockwise from its top-left).
    """
    first = (1 if turned else 0) + (2 if flipped else 0)
    return tuple((first + k) % 4 for k in range(4))  # type: ignore[return-value]


def crop_quad(
    image: np.ndarray, quad: np.ndarray, vertical_ratio: float = VERTICAL_RATIO
) -> np.ndarray:
    """Cut one text line out of a page by a perspective transform.

    Args:
        image: the page, ``(H, W, 3)`` uint8 BGR.
        quad: ``(4, 2)`` float32 corners, clockwise from top-left, page pixels.
        vertical_ratio: a crop whose height/width is at least this is taken as a vertical line
            and turned 90 degrees counter-clockwise so that it reads left to right.

    Returns:
        ``(h, w, 3)`` uint8 BGR crop.

    """
    width, height = quad_size(quad)
    turned = height >= vertical_ratio * width  # crop_turned
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if turned:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def transform_quads(quads: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to ``(N, 4, 2)`` quads; returns float32 ``(N, 4, 2)``."""
    if len(quads) == 0:
        return quads.astype(np.float32)
    ones = np.ones((*quads.shape[:2], 1), dtype=np.float64)
    homogeneous = np.concatenate([quads.astype(np.float64), ones], axis=2)
    mapped: np.ndarray = (homogeneous @ affine.T).astype(np.float32)
    return mapped


def identity_affine() -> np.ndarray:
    """The ``(2, 3)`` float64 identity affine (a new array each call, so callers may modify it)."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _homogeneous(affine: np.ndarray) -> np.ndarray:
    """The ``(3, 3)`` homogeneous matrix of a ``(2, 3)`` affine (last row ``0, 0, 1``)."""
    return np.vstack([affine, [0.0, 0.0, 1.0]])


def compose_affine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` affine that applies ``first`` then ``second`` (both ``(2, 3)`` float)."""
    composed: np.ndarray = (_homogeneous(second) @ _homogeneous(first))[:2]
    return composed


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` float64 inverse of an invertible ``(2, 3)`` affine.

    Raises:
        numpy.linalg.LinAlgError: the affine is singular (it flattens the plane).

    """
    inverse: np.ndarray = np.linalg.inv(_homogeneous(affine))[:2]
    return inverse
