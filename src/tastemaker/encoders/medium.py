"""What a picture is made with: photograph, paint, or line work — measured from its texture.

The look engine transfers a board's *medium* (brush marks, hatching, ink) only when the board has one:
re-drawing a selfie from patches of photographs makes a collage, not a photo. So each pin's thumbnail
(<= 256 px) gets four texture statistics, a mode averages them over its pins (engagement-weighted),
and :func:`classify_medium` turns the average into a kind and a transfer strength.

===================  ==================================================================================
statistic            what it sees
===================  ==================================================================================
``line_ratio``       edge pixels / (edge + shading pixels), from the gradient magnitude of L* after a
                     0.7 px blur: edges are > 6 L*/px, shading 0.5-3 L*/px. Line work (engraving, ink,
                     manga) is drawn with marks, photographs and paintings with gradual shading.
``tonal_extremes``   share of pixels in the outer 15 % of the 5-95 % luminance range at either end:
                     ink on paper is mostly paper or ink.
``chroma_texture``   mean |band-pass(a*, b*)| / (mean |band-pass(L*)| + 0.5), band 0.7-3 px: paint puts
                     colour variation into every stroke; a photograph's colour varies with objects and
                     light, far more slowly than its luminance (and JPEG halves its chroma resolution).
``flat``             share of pixels with almost no gradient (< 0.5 L*/px): photographs have smooth
                     skies, walls and out-of-focus areas; paper and canvas carry texture everywhere.
===================  ==================================================================================

The rule (calibrated on the dev-eval boards — Tenniel engravings, Kipling ink, Potter watercolours,
Impressionist and expressive oils, Gottlieb's black-and-white photographs — and on the bundled demo
board of graded photographs, with a margin on each side):

* **line** when ``line_ratio >= 0.42`` and ``tonal_extremes >= 0.5``;
* **paint** when ``chroma_texture >= 0.7`` (oils: 0.91-1.29; graded photographs of textures: 0.54), or
  ``chroma_texture >= 0.35`` with ``flat <= 0.15`` and ``line_ratio >= 0.2`` (watercolour over pencil:
  0.50 / 0.09 / 0.30; soft film-look photographs of grass and gravel: 0.54 / 0.15 / 0.12);
* **photo** otherwise.

Strength (0..1, how far the engine re-draws the picture in the medium) grows with the distance past
the threshold and is at least 0.6 for a non-photographic mode; photographs get 0.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from ..media import resize_max_side

MediumKind = Literal["photo", "paint", "line"]
STAT_NAMES = ("line_ratio", "tonal_extremes", "chroma_texture", "flat")
ANALYSIS_SIDE = 256


class MediumInfo(BaseModel):
    """A mode's medium: what it is made with and how strongly the engine transfers it."""

    kind: MediumKind = "photo"
    strength: float = Field(0.0, ge=0.0, le=1.0)
    stats: dict[str, float] = Field(default_factory=dict)

    @property
    def photographic(self) -> bool:
        return self.kind == "photo"


def medium_stats(img: np.ndarray) -> dict[str, float]:
    """The four texture statistics of an RGB uint8 image (analysed at <= 256 px)."""
    thumb = resize_max_side(img, ANALYSIS_SIDE)
    lab = cv2.cvtColor(thumb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    L = lab[..., 0]
    g = cv2.GaussianBlur(L, (0, 0), 0.7)
    gm = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)) / 8.0
    edge = float((gm >= 6.0).mean())
    shading = float(((gm >= 0.5) & (gm < 3.0)).mean())
    flat = float((gm < 0.5).mean())
    lo, hi = np.percentile(L, [5, 95])
    span = max(float(hi - lo), 1e-3)
    extremes = float(((L < lo + 0.15 * span) | (L > hi - 0.15 * span)).mean())

    def band(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 0.7) - cv2.GaussianBlur(x, (0, 0), 3.0)

    bab = band(lab[..., 1:])
    c_band = float(np.sqrt((bab * bab).sum(-1)).mean())
    l_band = float(np.abs(band(L)).mean())
    return {
        "line_ratio": edge / max(edge + shading, 1e-6),
        "tonal_extremes": extremes,
        "chroma_texture": c_band / (l_band + 0.5),
        "flat": flat,
    }


def classify_medium(stats: dict[str, float]) -> MediumInfo:
    """Kind and transfer strength from (averaged) statistics; see the module docstring for the rule."""
    s = {k: float(stats.get(k, 0.0)) for k in STAT_NAMES}
    rounded = {k: round(v, 4) for k, v in s.items()}
    if s["line_ratio"] >= 0.42 and s["tonal_extremes"] >= 0.5:
        strength = 0.6 + 0.4 * min(1.0, (s["line_ratio"] - 0.42) / 0.25)
        return MediumInfo(kind="line", strength=round(strength, 3), stats=rounded)
    washes = s["chroma_texture"] >= 0.35 and s["flat"] <= 0.15 and s["line_ratio"] >= 0.2
    if s["chroma_texture"] >= 0.7 or washes:
        strength = 0.6 + 0.4 * min(1.0, max(0.0, s["chroma_texture"] - 0.35) / 0.6)
        return MediumInfo(kind="paint", strength=round(strength, 3), stats=rounded)
    return MediumInfo(kind="photo", strength=0.0, stats=rounded)


def mode_medium(per_pin: list[dict[str, float]], weights: np.ndarray) -> MediumInfo:
    """A mode's medium from its pins' statistics, weighted by engagement."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(per_pin), 1.0 / max(len(per_pin), 1))
    avg = {k: float(np.dot(w, [p[k] for p in per_pin])) for k in STAT_NAMES}
    return classify_medium(avg)
