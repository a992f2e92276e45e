"""Skin tone as the Individual Typology Angle (ITA°) and a face's local contrast, measured the same way on a
selfie and on an output.

ITA° = atan((L* − 50) / b*) · 180/π over skin pixels (CIELAB, D65): above 55° "very light", 41–55 "light",
28–41 "intermediate", 10–28 "tan", −30–10 "brown", below −30 "dark" (Chardon et al. 1991). Skin is sampled
on both cheeks and the nose bridge, placed by the selfie's 68 dlib landmarks; on an output the landmarks are
carried over by the box the engine reports the face at (framing crops and scales, it does not rotate), so the
same patches of skin are compared. Within the patches the darkest and brightest fifth of pixels (shadow,
stubble, nostrils, highlights) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..engines.look.skin import MIN_SKIN_CHROMA, PATCH_RADIUS, PATCHES, ita_deg, skin_patches

#: ITA° groups used for reporting (light, medium, dark), on Chardon's scale
TONE_GROUPS: tuple[tuple[str, float], ...] = (("light", 41.0), ("medium", 10.0), ("dark", -1e9))


@dataclass(frozen=True)
class SkinTone:
    """Mean L* and b* of the sampled skin, its ITA° and how many pixels it came from."""

    lightness: float
    b: float
    ita: float
    pixels: int
    a: float = 0.0

    @property
    def has_colour(self) -> bool:
        """False for the skin of a black-and-white photo: its ITA° says nothing about a skin tone."""
        return max(abs(self.a), abs(self.b)) >= MIN_SKIN_CHROMA

    def to_dict(self) -> dict[str, float]:
        return {"L": round(self.lightness, 2), "b": round(self.b, 2), "ita_deg": round(self.ita, 2)}


def tone_group(ita: float) -> str:
    """light (ITA > 41°), medium (10–41°) or dark (below 10°)."""
    for name, low in TONE_GROUPS:
        if ita > low:
            return name
    return TONE_GROUPS[-1][0]


def map_landmarks(landmarks: np.ndarray, src_box: tuple[int, int, int, int],
                  dst_box: tuple[int, int, int, int]) -> np.ndarray:
    """Landmarks in ``src_box``'s picture carried to where ``dst_box`` puts the same face."""
    sx = (dst_box[2] - dst_box[0]) / max(1, src_box[2] - src_box[0])
    sy = (dst_box[3] - dst_box[1]) / max(1, src_box[3] - src_box[1])
    out = np.asarray(landmarks, np.float32).copy()
    out[:, 0] = (out[:, 0] - src_box[0]) * sx + dst_box[0]
    out[:, 1] = (out[:, 1] - src_box[1]) * sy + dst_box[1]
    return out


def skin_mask(shape: tuple[int, ...], landmarks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The cheek and nose-bridge patches as a boolean mask of a picture of ``shape``."""
    return skin_patches(shape, landmarks, box) > 0.5  # the patches the engine keeps the tone on


def skin_lab(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB of the masked pixels, the darkest and brightest fifth by L* left out."""
    if not mask.any():
        return np.zeros((0, 3), np.float32)
    rgb = pixels[mask].reshape(1, -1, 3).astype(np.float32) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    lo, hi = np.percentile(lab[:, 0], [20, 80])
    keep = (lab[:, 0] >= lo) & (lab[:, 0] <= hi)
    return lab[keep] if keep.sum() >= 8 else lab


def measure(pixels: np.ndarray, landmarks: np.ndarray, box: tuple[int, int, int, int]) -> SkinTone | None:
    """The skin tone of the face at ``landmarks`` in ``pixels`` (uint8 RGB); None where no skin is in frame."""
    lab = skin_lab(pixels, skin_mask(pixels.shape, landmarks, box))
    if len(lab) < 8:
        return None
    lightness, b = float(lab[:, 0].mean()), float(lab[:, 2].mean())
    return SkinTone(lightness, b, ita_deg(lightness, b), int(len(lab)), float(lab[:, 1].mean()))


def local_contrast(pixels: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The face's local contrast: the standard deviation of L* over its box after removing the box-wide blur
    (what makes eyes, brows and mouth readable), in L* units. 0 for an empty box."""
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    crop = pixels[y0:y1, x0:x1].astype(np.float32) / 255.0
    lightness = cv2.cvtColor(crop, cv2.COLOR_RGB2Lab)[..., 0]
    sigma = max(1.0, (x1 - x0) / 12)
    detail = lightness - cv2.GaussianBlur(lightness, (0, 0), sigma)
    return float(detail.std())


__all__ = ["PATCHES", "PATCH_RADIUS", "TONE_GROUPS", "SkinTone", "ita_deg", "local_contrast", "map_landmarks",
           "measure", "skin_lab", "skin_mask", "tone_group"]
