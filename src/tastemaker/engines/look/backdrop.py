"""Backdrops made from a taste mode alone (no pin pixels needed, so profiles stay portable).

A soft studio sweep between two palette colours (lighter on top), a glow of a third, and a few
out-of-focus discs in palette colours, drawn at low resolution and blurred — the kind of abstract
backdrop a board's colours suggest, different for every seed.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...encoders.style import lab_to_rgb8


def make_backdrop(palette_lab: np.ndarray, weights: np.ndarray, size: tuple[int, int], seed: int) -> np.ndarray:
    """An (h, w, 3) uint8 backdrop for ``size`` = (w, h)."""
    w, h = size
    rng = np.random.default_rng(seed)
    sw, sh = max(8, w // 8), max(8, h // 8)
    pal = np.asarray(palette_lab, dtype=np.float32)
    if len(pal) == 0:
        pal = np.array([[60, 0, 0]], np.float32)
    wts = np.asarray(weights, dtype=np.float64)
    wts = wts / wts.sum() if wts.sum() > 0 else np.full(len(pal), 1 / len(pal))
    order = np.argsort(pal[:, 0])
    dark, light = pal[order[0]].copy(), pal[order[-1]].copy()
    # keep the sweep inside a pleasant range: not pitch black, not paper white
    light[0] = np.clip(light[0], 45, 88)
    dark[0] = np.clip(dark[0], 12, max(13.0, light[0] - 18))
    t = np.linspace(0, 1, sh, dtype=np.float32)[:, None, None] ** rng.uniform(0.8, 1.6)
    lab = (light[None, None] * (1 - t) + dark[None, None] * t) * np.ones((1, sw, 1), np.float32)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    glow = pal[rng.choice(len(pal), p=wts)]
    cx, cy = rng.uniform(0.2, 0.8) * sw, rng.uniform(0.1, 0.5) * sh
    g = np.exp(-(((xx - cx) / (0.45 * sw)) ** 2 + ((yy - cy) / (0.45 * sh)) ** 2))[..., None]
    lab = lab * (1 - 0.35 * g) + glow[None, None] * (0.35 * g)
    for _ in range(int(rng.integers(5, 11))):
        c = pal[rng.choice(len(pal), p=wts)].copy()
        c[0] = min(95.0, c[0] + rng.uniform(5, 25))
        r = rng.uniform(0.03, 0.1) * max(sw, sh)
        px, py = rng.uniform(0, sw), rng.uniform(0, sh * 0.8)
        disc = np.clip(r - np.hypot(xx - px, yy - py), 0, 1.5)[..., None] / 1.5
        a = rng.uniform(0.15, 0.35)
        lab = lab * (1 - a * disc) + c[None, None] * (a * disc)
    lab = cv2.GaussianBlur(lab.astype(np.float32), (0, 0), max(sw, sh) * 0.012 + 0.6)
    small = lab_to_rgb8(lab)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
