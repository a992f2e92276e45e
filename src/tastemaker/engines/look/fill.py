"""Extending the canvas past the photo without repeating it.

When a frame reaches past the selfie's edge, the missing area used to be filled with a mirror image of
the photo (``BORDER_REFLECT``), which put a blurred upside-down second head above the person. Here it
is filled by **push-pull** interpolation (Gortler et al. 1996, "The Lumigraph"): the photo and its
coverage are averaged down a pyramid until every coarse pixel has data, then pulled back up, each
level keeping its own pixels where it has them. The result continues the photo's colours smoothly into
the gap — a wall stays a wall, a backdrop stays a backdrop — and holds no structure that could read as
a copy. Fine grain matched to the photo's is added on top, so the fill does not look like plastic,
and the medium synthesiser (when the mode has a medium) then draws its marks over it like anywhere else.
"""

from __future__ import annotations

import cv2
import numpy as np


def push_pull(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill pixels where ``valid`` (H, W in 0..1) is 0 from the valid ones; float32 (H, W, C) in, same out."""
    h, w = valid.shape
    if float(valid.min()) >= 0.999:
        return img
    pyr_img: list[np.ndarray] = [img * valid[..., None]]
    pyr_w: list[np.ndarray] = [valid.astype(np.float32)]
    while max(pyr_w[-1].shape) > 4:
        sh, sw = pyr_w[-1].shape
        size = (max(1, sw // 2), max(1, sh // 2))
        pyr_img.append(cv2.resize(pyr_img[-1], size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1))
        pyr_w.append(cv2.resize(pyr_w[-1], size, interpolation=cv2.INTER_AREA))
    # pull: the coarsest normalised level, then each finer one keeps its data where it has enough
    cur = pyr_img[-1] / np.maximum(pyr_w[-1], 1e-6)[..., None]
    for lvl in range(len(pyr_img) - 2, -1, -1):
        sh, sw = pyr_w[lvl].shape
        up = cv2.resize(cur, (sw, sh), interpolation=cv2.INTER_LINEAR).reshape(sh, sw, -1)
        wl = pyr_w[lvl]
        conf = np.clip(wl * 2.0, 0.0, 1.0)[..., None]
        own = pyr_img[lvl] / np.maximum(wl, 1e-6)[..., None]
        cur = own * conf + up * (1.0 - conf)
    out = cur.reshape(img.shape).astype(np.float32)
    v = valid[..., None] if img.ndim == 3 else valid
    return (img * v + out * (1.0 - v)).astype(np.float32)


def extend(img: np.ndarray, valid: np.ndarray, *, seed: int, grain: float = 0.012) -> np.ndarray:
    """Push-pull fill plus light luminance grain (``grain`` in 0..1 RGB units) outside the photo."""
    out = push_pull(img, valid)
    if grain > 0:
        rng = np.random.default_rng(seed)
        h, w = valid.shape
        noise = rng.standard_normal((max(1, h // 2), max(1, w // 2)), dtype=np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(grain)
        out = out + (noise * (1.0 - valid))[..., None]
    return np.clip(out, 0.0, 1.0)
