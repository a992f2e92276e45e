"""Skin tone kept: a colour look may change the light and the palette, not how light or dark a person is.

Colour grading can lighten or darken skin, a known harm of image generators: on dev-eval the demo board's
warm grade moved the faces' Individual Typology Angle (ITA° = atan((L* − 50) / b*), the dermatologists'
measure of skin tone) by 20–60°, and painting boards by 10–30°, at every hold short of a photograph of
the face. The last step of a colour render therefore measures the face's skin (L* and b* on both cheeks and
the nose bridge, placed by the 68 landmarks, the middle 60 % by lightness — where the skin-tone plugin
samples it too) and, when its ITA° left the selfie's by more than :data:`ITA_KEEP_DEG`, moves the skin's (L*, b*) to the
nearest point inside that band — the grade's depth of tone kept, only its angle corrected — with a*
following b* (restoring b* alone turned an orange grade's skin pink), as one smooth offset over the whole
skin (face, neck, hands), so the medium's marks and the light's modelling stay. Monochrome and toned looks are
exempt (they keep no colour at all), as is a selfie without colour (its tone is unknown).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: the largest ITA° move a colour render keeps: inside the skin-tone plugin's 8° hold line with room for
#: the watermark and the plugin's re-measuring; at 4° (and the selfie's L*, b* restored) the painting
#: boards' faces went pale and impressionism outputs were taken for watercolours (attribution 80 -> 60 %)
ITA_KEEP_DEG = 6.0
#: landmark groups whose mean is a skin patch's centre: left cheek, right cheek, nose bridge
PATCHES: tuple[tuple[int, ...], ...] = ((2, 3, 31, 40, 41), (13, 14, 35, 46, 47), (28, 29))
#: a patch's radius as a share of the face box's width
PATCH_RADIUS = 0.075
#: a selfie whose skin chroma is below this (mean |a*|, |b*|) is a black-and-white photo: no tone to keep
MIN_SKIN_CHROMA = 2.5


def ita_deg(lightness: float, b: float) -> float:
    """ITA° from mean L* and b* (atan2, so defined for any b*)."""
    return math.degrees(math.atan2(lightness - 50.0, b))


def skin_patches(shape: tuple[int, ...], landmarks: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The cheek and nose-bridge patches (float 0/1) of a picture of ``shape`` whose face has ``landmarks``."""
    mask = np.zeros(shape[:2], np.float32)
    radius = max(2, int(round(PATCH_RADIUS * (box[2] - box[0]))))
    for group in PATCHES:
        cx, cy = np.asarray(landmarks, np.float32)[list(group)].mean(axis=0)
        cv2.circle(mask, (int(round(cx)), int(round(cy))), radius, 1.0, thickness=-1)
    return mask


def skin_lab_mean(lab: np.ndarray, mask: np.ndarray) -> tuple[float, float, float] | None:
    """Mean (L*, a*, b*) of ``lab`` where ``mask`` > 0.5, the darkest and brightest fifth by L* left out."""
    sel = lab[mask > 0.5]
    if len(sel) < 16:
        return None
    lo, hi = np.percentile(sel[:, 0], [20, 80])
    mid = sel[(sel[:, 0] >= lo) & (sel[:, 0] <= hi)]
    if len(mid) >= 8:
        sel = mid
    return float(sel[:, 0].mean()), float(sel[:, 1].mean()), float(sel[:, 2].mean())


def selfie_skin(image: np.ndarray, mask: np.ndarray) -> tuple[float, float, float] | None:
    """The selfie's skin (L*, a*, b*) over ``mask`` (uint8 RGB ``image``), or None without skin or colour."""
    lab = cv2.cvtColor(image.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    mean = skin_lab_mean(lab, mask)
    if mean is None or max(abs(mean[1]), abs(mean[2])) < MIN_SKIN_CHROMA:
        return None
    return mean


def keep_skin_tone(
    out: np.ndarray, measure_mask: np.ndarray, apply_mask: np.ndarray, reference: tuple[float, float, float],
    max_shift_deg: float = ITA_KEEP_DEG,
) -> tuple[np.ndarray, dict[str, float] | None]:
    """``out`` (float RGB in 0..1) with its skin's ITA° within ``max_shift_deg`` of ``reference``'s.

    Measured where ``measure_mask`` (the face's skin) is set, corrected by one offset in L* and b* faded
    in by ``apply_mask`` (all skin). The offset moves a* with L* and b*: restoring b* alone turned an
    orange grade's skin pink. Returns the picture and what was done (None: nothing to measure).
    """
    lab = cv2.cvtColor(np.clip(out, 0.0, 1.0), cv2.COLOR_RGB2Lab)
    mean = skin_lab_mean(lab, measure_mask)
    if mean is None:
        return out, None
    lightness, b = mean[0], mean[2]
    target = ita_deg(reference[0], reference[2])
    before = ita_deg(lightness, b)
    info = {"ita_selfie_deg": round(target, 1), "ita_graded_deg": round(before, 1)}
    if abs(before - target) <= max_shift_deg:
        return out, {**info, "moved": 0.0}
    # the nearest point (in L*, b*) on the band's near edge: the grade's depth of tone kept, its angle not
    edge = math.radians(target + math.copysign(max_shift_deg, before - target))
    u = np.array([math.sin(edge), math.cos(edge)])
    length = max(float(np.dot([lightness - 50.0, b], u)), 1.0)
    new_l, new_b = 50.0 + length * u[0], length * u[1]
    # a* follows b* (the skin's hue as graded), so restoring b* does not turn the skin pink
    new_a = mean[1] * (new_b / b) if b > 1.0 else mean[1]
    m = apply_mask.astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0] + np.float32(new_l - lightness) * m, 0.0, 100.0)
    lab[..., 1] += np.float32(new_a - mean[1]) * m
    lab[..., 2] += np.float32(new_b - b) * m
    moved = math.hypot(new_l - lightness, new_b - b)
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), {**info, "moved_lb": round(moved, 2),
                                                  "ita_kept_deg": round(ita_deg(new_l, new_b), 1)}


__all__ = ["ITA_KEEP_DEG", "MIN_SKIN_CHROMA", "PATCHES", "ita_deg", "keep_skin_tone", "selfie_skin", "skin_lab_mean",
           "skin_patches"]
