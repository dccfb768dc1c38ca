"""Quadrilateral helpers shared by detection, recognition and layout (pure numpy/OpenCV)."""

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


def quad_size(quad: np.ndarray) -> tuple[int, int]:
    """Width and height in pixels of an ordered quad ``(4, 2)``: longer of each opposite pair."""
    width = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))
    height = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return max(1, round(float(width))), max(1, round(float(height)))


def crop_quad(image: np.ndarray, quad: np.ndarray, vertical_ratio: float = 1.5) -> np.ndarray:
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
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= vertical_ratio * width:
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
