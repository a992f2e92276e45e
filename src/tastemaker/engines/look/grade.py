"""Colour grading by optimal transport, baked into a 3D LUT.

The transfer is the iterative distribution transfer of Pitié et al. (2007), a sliced optimal
transport: in CIE Lab, repeatedly pick a random orthonormal basis (fixed seed), project source and
target colour samples on each axis and move the source along it by the 1D optimal map (quantile
matching). After a few rounds the source samples follow the target distribution. The same moves are
applied to the vertices of a 33^3 RGB lattice, the displacement field is smoothed (no tearing) and
scaled by the grade's strength, and the lattice becomes a 3D LUT. Fitting runs on a few thousand
samples from thumbnails; applying the LUT at full size is one trilinear lookup per pixel
(two ``cv2.remap`` calls over a tiled 2D layout of the cube).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

LUT_SIZE = 33
_QUANTILES = np.linspace(0.0, 1.0, 65)


def _rgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    flat = np.asarray(rgb01, dtype=np.float32).reshape(1, -1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    flat = np.asarray(lab, dtype=np.float32).reshape(1, -1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_Lab2RGB).reshape(-1, 3).astype(np.float64)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def fit_lut(
    source_rgb: np.ndarray,
    target_rgb: np.ndarray,
    *,
    seed: int = 0,
    iterations: int = 10,
    size: int = LUT_SIZE,
    smooth: float = 1.0,
) -> np.ndarray:
    """Fit a full-strength LUT moving ``source`` colours (uint8 (n,3)) to the ``target`` distribution.

    Returns a float32 ``(size, size, size, 3)`` array indexed ``[b, g, r]`` holding RGB in 0..1.
    """
    rng = np.random.default_rng(seed)
    src = _rgb_to_lab(np.asarray(source_rgb, dtype=np.float64).reshape(-1, 3) / 255.0)
    tgt = _rgb_to_lab(np.asarray(target_rgb, dtype=np.float64).reshape(-1, 3) / 255.0)
    axis = np.linspace(0.0, 1.0, size)
    bb, gg, rr = np.meshgrid(axis, axis, axis, indexing="ij")
    grid_rgb = np.stack([rr, gg, bb], axis=-1).reshape(-1, 3)
    grid = _rgb_to_lab(grid_rgb)
    start = grid.copy()
    for _ in range(iterations):
        rot = _random_rotation(rng)
        ps, pt, pg = src @ rot, tgt @ rot, grid @ rot
        for k in range(3):
            xs = np.quantile(ps[:, k], _QUANTILES)
            ys = np.quantile(pt[:, k], _QUANTILES)
            xs = np.maximum.accumulate(xs + np.arange(len(xs)) * 1e-9)
            ps[:, k] = np.interp(ps[:, k], xs, ys)
            # lattice points outside the sampled range move with the nearest end (translation)
            g = pg[:, k]
            pg[:, k] = np.interp(g, xs, ys) + np.where(g < xs[0], g - xs[0], 0) + np.where(g > xs[-1], g - xs[-1], 0)
        src, grid = ps @ rot.T, pg @ rot.T
    disp = (grid - start).reshape(size, size, size, 3)
    if smooth > 0:
        disp = np.stack([gaussian_filter(disp[..., c], smooth, mode="nearest") for c in range(3)], axis=-1)
    out = _lab_to_rgb(start + disp.reshape(-1, 3))
    return np.clip(out, 0.0, 1.0).reshape(size, size, size, 3).astype(np.float32)


def identity_lut(size: int = LUT_SIZE) -> np.ndarray:
    """The LUT that changes nothing."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    bb, gg, rr = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([rr, gg, bb], axis=-1)


def blend_lut(lut: np.ndarray, strength: float) -> np.ndarray:
    """Scale a LUT's effect: 0 = identity, 1 = full grade."""
    ident = identity_lut(lut.shape[0])
    return (ident + (lut - ident) * np.float32(strength)).astype(np.float32)


def apply_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Trilinear 3D-LUT lookup for a uint8 RGB image; returns float32 RGB in 0..1.

    The cube is laid out as ``size`` slices of ``size x size`` (g rows, r columns) side by side;
    ``cv2.remap`` does the bilinear part within two neighbouring blue slices, and a lerp between
    them finishes the trilinear interpolation.
    """
    n = lut.shape[0]
    tiled = np.ascontiguousarray(lut.transpose(1, 0, 2, 3).reshape(n, n * n, 3))  # [g, b*n + r]
    f = np.float32((n - 1) / 255.0)
    x = img[..., 0].astype(np.float32) * f
    y = img[..., 1].astype(np.float32) * f
    bz = img[..., 2].astype(np.float32) * f
    b0 = np.minimum(np.floor(bz), n - 2)
    fb = (bz - b0)[..., None]
    mx0 = x + b0 * n
    lo = cv2.remap(tiled, mx0, y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    hi = cv2.remap(tiled, mx0 + n, y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return lo + (hi - lo) * fb
