"""Frames of a clip: both layers moved by the camera, composited, with fresh grain on each frame."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .camera import Camera
from .layers import Layers


def frames(layers: Layers, camera: Camera, n: int, *, seed: int, yuv: bool = False) -> Iterator[np.ndarray]:
    """``n`` uint8 RGB frames from t = 0 to t = 1. Same layers, camera and seed: the same frames.

    ``yuv``: planar I420 frames (BT.601, limited range, as FFmpeg reads untagged yuv420p) for the video encoders,
    with the grain added to luma only (it is monochrome: the same on R, G and B is the same on Y), which spares a
    3-channel add and FFmpeg's own colour conversion per frame.
    """
    w, h = layers.size
    rng = np.random.default_rng([int(seed) % (2**63), 0x6A1])
    gw, gh = max(1, round(w / layers.grain_px)), max(1, round(h / layers.grain_px))
    for i in range(n):
        t = i / (n - 1) if n > 1 else 0.0
        mb, mf = camera.at(t)
        bg = cv2.warpAffine(layers.bg, mb, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fg = cv2.warpAffine(layers.fg, mf, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a = cv2.warpAffine(layers.alpha, mf, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = cv2.blendLinear(fg, bg, a, 1.0 - a)
        noise: np.ndarray | None = None
        if layers.grain > 0:
            noise = cv2.resize(rng.standard_normal((gh, gw), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        if yuv:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2YUV_I420)
            if noise is not None:
                luma = out[:h]
                cv2.scaleAdd(noise, layers.grain * 219.0, luma.astype(np.float32), dst=noise)
                out[:h] = np.clip(noise + 0.5, 0, 255).astype(np.uint8)
        elif noise is not None:
            noise *= np.float32(layers.grain * 255.0)
            out = cv2.add(out, cv2.merge((noise, noise, noise)), dtype=cv2.CV_8U)
        yield out
