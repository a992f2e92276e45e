"""The light and finish steps of a look render: the variation's light, then texture and light matched.

Steps 5 and 7 of :mod:`.engine`'s recipe. Separate from the engine because they are pure functions of
the picture, the plan and the mode's look (no caches, no engine state), measured the way the style
encoder measures (:func:`~tastemaker.encoders.style.texture_stats` on its analysis thumbnail).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ...encoders.style import ANALYSIS_SIDE, texture_stats
from ..base import VariationPlan

if TYPE_CHECKING:
    from ...taste.profile import LookParams

#: L* units to 8-bit RGB levels (mid-tones), for grain.
L_TO_RGB = 2.4


def vary_light(out: np.ndarray, plan: VariationPlan, person: np.ndarray) -> np.ndarray:
    """The variation's exposure, contrast and warmth, and its soft directional light (``plan.params``)."""
    ex, ct, wm = (float(plan.params.get(k, 0.0)) for k in ("exposure", "contrast", "warmth"))
    if ex or ct or wm:
        g = (1.0 + ex * plan.strength) * np.array([1.0 + wm, 1.0, 1.0 - wm], np.float32)
        c = 1.0 + ct * plan.strength
        affine = np.concatenate([np.diag(g * c), (0.5 * (1.0 - c) * g)[:, None]], axis=1).astype(np.float32)
        out = cv2.transform(out, affine)
    angle, amount = plan.params.get("light", (0.0, 0.0))
    if amount:
        H, W = person.shape
        yy = (np.arange(H, dtype=np.float32) - H / 2) / (max(H, W) / 2)
        xx = (np.arange(W, dtype=np.float32) - W / 2) / (max(H, W) / 2)
        ramp = np.cos(angle) * xx[None, :] + np.sin(angle) * yy[:, None]
        gain = np.float32(1.0) + np.float32(amount * plan.strength) * np.clip(ramp, -1.0, 1.0)
        cv2.multiply(out, cv2.merge((gain, gain, gain)), dst=out)
    return out


def match_texture_and_light(
    out: np.ndarray,
    look: LookParams,
    plan: VariationPlan,
    hold: float,
    face: np.ndarray | None,
    s: float,
    *,
    texture: bool = True,
) -> np.ndarray:
    """Softness, vignette and grain until the thumbnail the style encoder measures matches the mode's
    (``texture=False``: the vignette only, for a picture a medium has re-drawn); the face keeps ``hold``."""
    H, W = out.shape[:2]
    f = ANALYSIS_SIDE / max(H, W)
    small_size = (max(1, round(W * f)), max(1, round(H * f)))

    def measure(img: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        th = cv2.resize(img, small_size, interpolation=cv2.INTER_AREA)
        L = cv2.cvtColor(th, cv2.COLOR_RGB2Lab)[..., 0]
        return L, texture_stats(L)

    L, m = measure(out)
    sigma_a = 0.0
    keep_face = None if face is None else face * np.float32(hold)
    if texture:
        # softness: blur at analysis scale until the measured softness matches. A board sharper than the
        # selfie is not matched by sharpening: an unsharp mask adds halos, not the board's detail (on the
        # Gottlieb board it moved outputs off the board by texture: 1 of 6 right with it, 3 of 6 without)
        target_soft = m["softness"] + (look.softness - m["softness"]) * s
        if target_soft > m["softness"] + 0.05:
            sigma_a = _search(lambda c: texture_stats(cv2.GaussianBlur(L, (0, 0), c))["softness"],
                              target_soft, 0.3, 1.8)
        if sigma_a > 0:
            blurred = _lowpass(out, sigma_a / f)
            out = blurred if keep_face is None else mix(out, blurred, keep_face)

    # vignette: radial gain solved from the measured centre/ring luminance
    L2, m2 = measure(out) if sigma_a else (L, m)
    target_v = m2["vignette"] + (look.vignette - m2["vignette"]) * s
    ring = float(L2[_radius_map(*L2.shape) > 0.8].mean()) + 1e-3
    mean = float(L2.mean()) + 5.0
    k = float(np.clip((target_v - m2["vignette"]) * mean / (ring * 0.55), -0.25, 0.6))
    if abs(k) > 0.01:
        gain = np.float32(1.0) - np.float32(k) * _vignette_shape(H, W)
        cv2.multiply(out, cv2.merge((gain, gain, gain)), dst=out)  # in place: out is ours
    if not texture:
        return out
    # grain: monochrome noise at analysis scale (film-like grain size), to the mode's level
    target_g = float(np.expm1(min(look.grain, 3.0)))  # profiles are data: never trust them to be sane
    current_g = float(np.expm1(m2["grain"]))
    add = np.sqrt(max(target_g**2 - current_g**2, 0.0)) * s / _grain_gain()
    if add > 0.05:
        rng = np.random.default_rng(plan.seed)
        noise = rng.standard_normal((small_size[1], small_size[0]), dtype=np.float32)
        noise = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC) * np.float32(add * L_TO_RGB / 255.0)
        if face is not None:
            noise *= 1.0 - face * np.float32(hold)
        cv2.add(out, cv2.merge((noise, noise, noise)), dst=out)
    return out


def _search(fn: Any, target: float, lo: float, hi: float, *, steps: int = 4) -> float:
    """Bisection for the parameter where the increasing ``fn`` reaches ``target`` (clamped to [lo, hi])."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fn(mid) > target:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def mix(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``b + (a - b) * m`` for HxWx3 float images and an HxW weight, in OpenCV passes.

    NumPy's broadcast over a trailing axis of 3 runs ~3x slower than OpenCV on a merged 3-channel weight,
    and this blend runs several times per 1024² output. Public: the engine's background step blends with it.
    """
    d = cv2.subtract(a, b)
    cv2.multiply(d, cv2.merge((m, m, m)), dst=d)
    return cv2.add(d, b, dst=d)


def _lowpass(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones (sigma >= 3 px) run at half resolution, several times faster at 1024².

    The half-resolution path subtracts the variance the 2x2 area downsample (1/4 px²) and the linear
    upsample (~2/3 px²) add, so the total blur matches; a Gaussian this wide has no content near the
    half-resolution Nyquist limit: measured, the mean difference is 0.06-0.2 of an 8-bit level.
    """
    if sigma < 3.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    half = cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    half = cv2.GaussianBlur(half, (0, 0), float(np.sqrt(max(sigma**2 - 0.92, 0.25))) / 2)
    return cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)



_RADIUS: dict[tuple[int, int], np.ndarray] = {}


def _radius_map(h: int, w: int) -> np.ndarray:
    r = _RADIUS.get((h, w))
    if r is None:
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
        r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2) / np.float32(np.sqrt(2))
        if len(_RADIUS) < 32:
            _RADIUS[(h, w)] = r
    return r


@functools.lru_cache(maxsize=16)
def _vignette_shape(h: int, w: int) -> np.ndarray:
    """Radial falloff shape: 0 inside 35 % of the half-diagonal, rising quadratically to 1 at the corners."""
    return np.clip((_radius_map(h, w) - 0.35) / 0.65, 0.0, 1.0) ** 2


@functools.cache
def _grain_gain() -> float:
    """How much of unit white noise made at analysis scale the grain measure sees (fixed seed)."""
    n = np.random.default_rng(0).standard_normal((ANALYSIS_SIDE, ANALYSIS_SIDE)).astype(np.float32)
    return float(np.expm1(texture_stats(n * 10.0)["grain"]) / 10.0)
