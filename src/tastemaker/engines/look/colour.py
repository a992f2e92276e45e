"""A mode's colour character, and the rules that keep an output faithful to it.

The optimal-transport grade (``grade``) moves the selfie's colours toward the mode's distribution, but
a grade alone is not a look: a black-and-white board must give black-and-white pictures — skin, eyes
and background included — and a sepia or duotone board its toning. From the mode's colour samples:

* **monochrome** when 90 % of the samples have chroma under 5 (C*ab);
* **toned** when they stay under 26 and their hues agree (chroma-weighted mean resultant length of
  the hue angle >= 0.8): sepia, cyanotype, cream paper with black ink, duotones;
* **colour** otherwise.

For monochrome and toned modes the output's chroma is *replaced* by the mode's toning curve — the
mean a*, b* of its samples at each lightness (8 bins, interpolated) — so the colour of every pixel is
what the board would give it at that lightness. It applies in full from ``strength`` 0.5 up (colour or
not is a property of a look, not a matter of degree) and fades in below. dlib's identity survives
grey: its network sees structure, not hue.

For colour modes the grade applies to skin too, and :func:`keep_skin_alive` only limits what makes
skin look ill: a hue pushed outside the band where skin tones live (CIE Lab hue 15°-80°) is turned back
to its edge, and chroma is kept at least ``SKIN_CHROMA_FLOOR`` of the selfie's own (a grey-green
face is the failure it prevents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    from ...taste.profile import LookParams

ColourKind = Literal["colour", "toned", "monochrome"]
MONO_CHROMA = 5.0
TONED_CHROMA = 26.0
TONED_AGREEMENT = 0.8
TONE_BINS = 8
SKIN_HUE = (np.deg2rad(15.0), np.deg2rad(80.0))
SKIN_CHROMA_FLOOR = 0.45


@dataclass(frozen=True)
class ColourCharacter:
    """What colour a mode allows: its kind, its toning curve (a*, b* per lightness), its chroma range."""

    kind: ColourKind
    toning: np.ndarray  # (TONE_BINS, 2) mean a*, b* at bin centres
    chroma_p90: float

    @property
    def restricted(self) -> bool:
        return self.kind != "colour"


def _to_lab(rgb01: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb01, dtype=np.float32), cv2.COLOR_RGB2Lab)


def colour_character(look: LookParams) -> ColourCharacter:
    """Classify a mode's colour from its samples (see the module docstring)."""
    lab = _to_lab(look.color_array().reshape(1, -1, 3).astype(np.float32) / 255.0).reshape(-1, 3)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    p90 = float(np.percentile(chroma, 90))
    hue = np.arctan2(lab[:, 2], lab[:, 1])
    wsum = float(chroma.sum()) + 1e-9
    agreement = float(np.hypot((chroma * np.cos(hue)).sum(), (chroma * np.sin(hue)).sum()) / wsum)
    if p90 < MONO_CHROMA:
        kind: ColourKind = "monochrome"
    elif p90 < TONED_CHROMA and agreement >= TONED_AGREEMENT:
        kind = "toned"
    else:
        kind = "colour"
    edges = np.linspace(0.0, 100.0, TONE_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    ab = np.full((TONE_BINS, 2), np.nan)
    for b in range(TONE_BINS):
        sel = (lab[:, 0] >= edges[b]) & (lab[:, 0] < edges[b + 1] + (1e-6 if b == TONE_BINS - 1 else 0))
        if sel.sum() >= 3:
            ab[b] = lab[sel, 1:].mean(0)
    ok = ~np.isnan(ab[:, 0])
    if not ok.any():
        ab[:] = 0.0
    else:
        for c in range(2):
            ab[:, c] = np.interp(centres, centres[ok], ab[ok, c])
    if kind == "monochrome":
        ab *= 0.0 if p90 < 1.5 else 1.0  # true black-and-white stays neutral
    return ColourCharacter(kind=kind, toning=ab.astype(np.float32), chroma_p90=p90)


def toning_amount(strength: float) -> float:
    """How much of the toning applies at a request strength: all of it from 0.5 up."""
    return float(np.clip(strength / 0.5, 0.0, 1.0))


def apply_toning(lab: np.ndarray, char: ColourCharacter, amount: float = 1.0) -> np.ndarray:
    """Replace a* and b* (in place, Lab float32) by the toning curve at each pixel's lightness."""
    if amount <= 0:
        return lab
    centres = (np.arange(TONE_BINS, dtype=np.float32) + 0.5) * (100.0 / TONE_BINS)
    L = lab[..., 0]
    for c in (1, 2):
        toned = np.interp(L, centres, char.toning[:, c - 1]).astype(np.float32)
        lab[..., c] += (toned - lab[..., c]) * np.float32(amount)
    return lab


def keep_skin_alive(graded: np.ndarray, original: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Limit what a colour grade does to skin (Lab float32 images, ``skin`` weight 0..1); returns new Lab."""
    out = graded.copy()
    a, b = graded[..., 1], graded[..., 2]
    hue = np.arctan2(b, a)
    chroma = np.hypot(a, b)
    c0 = np.hypot(original[..., 1], original[..., 2])
    lo, hi = SKIN_HUE
    mid = (lo + hi) / 2
    # outside the band: turn to the nearer edge (angles measured from the band's middle)
    d = np.angle(np.exp(1j * (hue - mid)))
    half = (hi - lo) / 2
    new_hue = np.where(np.abs(d) > half, mid + np.sign(d) * half, hue)
    new_c = np.maximum(chroma, SKIN_CHROMA_FLOOR * c0)
    w = np.clip(skin, 0.0, 1.0).astype(np.float32)
    out[..., 1] = a + (new_c * np.cos(new_hue) - a) * w
    out[..., 2] = b + (new_c * np.sin(new_hue) - b) * w
    return out
