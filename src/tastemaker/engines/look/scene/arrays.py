"""Array helpers the scene modules share: conversions to float 0..1, thumbnails and linear luminance.

Separate so that light, fit, matte and compositing each read on their own without importing one another
for a resize. Images are RGB; ``uint8`` where a function says so, otherwise ``float32`` in 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Gamma of the sRGB-like encoding used for cheap linear<->encoded conversions of gains.
GAMMA = 2.2
#: Longest side of the working thumbnails for statistics, normals, shadow and the Poisson solve.
LOW_SIDE = 160


def to01(img: np.ndarray) -> np.ndarray:
    """``img`` as float32 0..1 (uint8 scaled, float clipped): every scene module takes either."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1 / 255)
    return np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)


def low(img: np.ndarray, side: int = LOW_SIDE) -> np.ndarray:
    """An area-averaged thumbnail with its longest side at most ``side``: the statistics' working copy."""
    h, w = img.shape[:2]
    s = min(1.0, side / max(h, w))
    if s == 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def up(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """A smooth low-resolution field brought back to ``w`` x ``h`` (bilinear)."""
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def linear_luma(rgb01: np.ndarray) -> np.ndarray:
    """Luminance in linear light (gamma ``GAMMA`` undone): what shading multiplies, for the light fits."""
    return _luma(np.power(np.maximum(rgb01, 0.0), GAMMA))
