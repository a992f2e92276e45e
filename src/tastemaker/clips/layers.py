"""The two layers a clip moves: the subject (colour + alpha) and the background completed behind it.

* **Subject alpha**: the one given (a product's cut-out), else the look engine's person mask
  (:func:`~tastemaker.engines.look.segment.person_mask`, MediaPipe at <= 512 px, then refined edge-aware at the
  frame's size with a guided filter).
* **Background**: the picture with the subject (and a margin around it) removed and filled by push-pull
  (:func:`~tastemaker.engines.look.fill.push_pull`): what the parallax uncovers at the subject's edge is the
  background's own colours continued, never a copy of the subject.
* **Subject colour**: the edge pixels mix subject and old background; they are un-mixed against the completed
  background (``F = (I - (1 - a) B) / a``), so a subject moved over another part of the background carries no
  rim of its old surroundings (no halo).
* **Grain**: the output's grain is frozen in its pixels; a clip that moved it would look like a dirty lens. It is
  measured as the style encoder measures it (flat areas, analysis scale), taken out of the flat areas, and given
  back fresh on every frame at the same level (:attr:`Layers.grain`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..encoders.style import ANALYSIS_SIDE, texture_stats
from ..engines.look.fill import push_pull
from ..engines.look.segment import WORK_SIDE, person_mask

#: L* units to 8-bit levels for mid-tones (as the look engine's grain)
_L_TO_RGB = 2.4


@dataclass(frozen=True)
class Layers:
    """A picture cut into what moves, at the clip's size: uint8 RGB layers, float32 alpha in 0..1."""

    base: np.ndarray  # the composite at rest (what the watermark is embedded in)
    fg: np.ndarray
    alpha: np.ndarray
    bg: np.ndarray
    #: fresh grain per frame: standard deviation in 0..1 RGB units (0: the picture has none to keep alive)
    grain: float
    #: how many frame pixels one grain sample spans (the look engine makes grain at analysis scale)
    grain_px: float
    subject_share: float

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.alpha.shape
        return w, h

    def with_mark(self, marked: np.ndarray) -> Layers:
        """The layers carrying the mark that ``marked`` (``base`` watermarked) carries: the mark's difference is
        added to both layers, so the composite at rest is exactly ``marked`` and every frame shows the mark moved
        with the picture (a codec's motion prediction carries it along)."""
        d = marked.astype(np.int16) - self.base.astype(np.int16)
        fg = np.clip(self.fg.astype(np.int16) + d, 0, 255).astype(np.uint8)
        bg = np.clip(self.bg.astype(np.int16) + d, 0, 255).astype(np.uint8)
        return replace(self, base=marked, fg=fg, bg=bg)


def subject_alpha(img: np.ndarray) -> np.ndarray:
    """The person mask of ``img`` (uint8 RGB) at its own size, 0..1."""
    h, w = img.shape[:2]
    f = min(1.0, WORK_SIDE / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if f < 1 else img
    m = person_mask(np.ascontiguousarray(small))
    if m.shape != (h, w):
        # refined edge-aware at up to twice the mask's size, then brought to the frame's
        g = min(1.0, 2 * WORK_SIDE / max(h, w))
        gw, gh = max(1, round(w * g)), max(1, round(h * g))
        guide = cv2.resize(img, (gw, gh), interpolation=cv2.INTER_AREA) if g < 1 else img
        m = cv2.resize(m, (gw, gh), interpolation=cv2.INTER_LINEAR)
        guided = getattr(getattr(cv2, "ximgproc", None), "guidedFilter", None)
        if guided is not None:
            m = np.clip(guided(guide.astype(np.float32) / 255.0, m, max(2, round(max(gh, gw) / 200)), 1e-3), 0, 1)
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return m.astype(np.float32)


def _grain_level(rgb01: np.ndarray) -> float:
    """The style encoder's grain of a picture: robust spread of the fine residual in flat areas, in L* units."""
    h, w = rgb01.shape[:2]
    f = ANALYSIS_SIDE / max(h, w)
    th = cv2.resize(rgb01, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    L = cv2.cvtColor(th, cv2.COLOR_RGB2Lab)[..., 0]
    return float(np.expm1(texture_stats(L)["grain"]))


def _degrain(rgb01: np.ndarray, px: float) -> np.ndarray:
    """The picture with its fine grain taken out where it is flat (edges and detail stay as they are)."""
    grey = cv2.cvtColor(rgb01, cv2.COLOR_RGB2GRAY)
    smooth = cv2.GaussianBlur(grey, (0, 0), px)
    fine = grey - smooth
    grad = cv2.GaussianBlur(np.abs(cv2.Sobel(smooth, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(smooth, cv2.CV_32F, 0, 1)),
                            (0, 0), px)
    # flat: where the smoothed gradient is no more than the grain itself leaves (a few times the median); detail and
    # edges, well above it, keep their fine structure
    m = float(np.median(grad)) + 1e-6
    flat = np.clip((6.0 * m - grad) / (3.0 * m), 0.0, 1.0)
    out = rgb01 - (fine * flat)[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def build_layers(img: np.ndarray, alpha: np.ndarray | None = None, *, live_grain: bool = True) -> Layers:
    """Cut ``img`` (uint8 RGB, at the clip's size) into a subject over a completed background.

    ``alpha`` (0..1 or 0..255, the picture's size) is the subject's cut-out when the caller has one; else the person
    is segmented. ``live_grain=False`` keeps the picture's texture as it is (a medium's marks are the picture, not
    film grain).
    """
    h, w = img.shape[:2]
    rgb = img.astype(np.float32) / 255.0
    if alpha is None:
        a = subject_alpha(img)
    else:
        a = np.asarray(alpha, np.float32)
        a = a / 255.0 if np.asarray(alpha).dtype == np.uint8 or a.max() > 1.5 else a
        if a.shape != (h, w):
            a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
    a = np.clip(a, 0.0, 1.0).astype(np.float32)
    grain_px = max(1.0, max(h, w) / ANALYSIS_SIDE)
    grain = 0.0
    if live_grain:
        level = _grain_level(rgb)
        clean = _degrain(rgb, grain_px)
        left = _grain_level(clean)
        add = float(np.sqrt(max(level**2 - left**2, 0.0)))
        if add > 0.3:  # below this the picture has no grain worth keeping alive
            rgb, grain = clean, add * _L_TO_RGB / 255.0 / _GRAIN_SEEN
    # the subject: a firmer mask (a half-transparent subject reads as glass once it moves); the background keeps
    # every pixel that mask leaves out as it is (so the clip at rest is the picture, no rim), and has what it
    # covers filled from around it
    a = np.clip((a - 0.1) / 0.6, 0.0, 1.0).astype(np.float32)
    valid = (a <= 0.01).astype(np.float32)
    bg = _complete(rgb, valid) if valid.min() < 1 else rgb.copy()
    # the subject's own colour at its soft edge, un-mixed from the background it was over
    safe = np.maximum(a, 0.05)[..., None]
    fg = np.where(a[..., None] > 0.03, np.clip((rgb - (1.0 - a[..., None]) * bg) / safe, 0.0, 1.0), rgb)
    fg8, bg8 = _u8(fg.astype(np.float32)), _u8(bg)
    base = cv2.blendLinear(fg8, bg8, a, 1.0 - a)
    return Layers(base=base, fg=fg8, alpha=a, bg=bg8, grain=grain, grain_px=grain_px, subject_share=float(a.mean()))


def _complete(rgb01: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Push-pull fill of where ``valid`` is 0, worked out at half size (it is smooth there anyway)."""
    h, w = valid.shape
    half = (max(1, w // 2), max(1, h // 2))
    small = push_pull(cv2.resize(rgb01, half, interpolation=cv2.INTER_AREA),
                      cv2.resize(valid, half, interpolation=cv2.INTER_AREA))
    fill = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    v = valid[..., None]
    return (rgb01 * v + fill * (1.0 - v)).astype(np.float32)


def _u8(rgb01: np.ndarray) -> np.ndarray:
    return np.clip(rgb01 * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _grain_seen() -> float:
    """How much of unit noise made at analysis scale, upsampled to a frame (4x) and measured back at analysis scale,
    the grain measure sees (fixed seed)."""
    n = np.random.default_rng(0).standard_normal((ANALYSIS_SIDE, ANALYSIS_SIDE)).astype(np.float32)
    side = 4 * ANALYSIS_SIDE
    up = cv2.resize(n, (side, side), interpolation=cv2.INTER_CUBIC)
    back = cv2.resize(up, (ANALYSIS_SIDE, ANALYSIS_SIDE), interpolation=cv2.INTER_AREA)
    return float(np.expm1(texture_stats(back * 10.0)["grain"]) / 10.0)


_GRAIN_SEEN = _grain_seen()
