"""The product fidelity guard, the identity guard's counterpart: the product's colours and shape stay true.

Measured on the released pixels against the cut-out placed the same way (the renderer's placement, so both
are compared at the output's resolution, pixel for pixel, inside the product's eroded matte):

- **colour**: the product's dominant colours (k-means in CIE Lab on the cut-out, clusters over 5 % of it)
  and, per cluster, CIEDE2000 between the cut-out's mean colour and the render's mean colour over the same
  pixels. The worst cluster must be <= :data:`MAX_DELTA_E` (3: a difference a shopper notices side by side
  only with effort), unless the request asks to restyle the product itself;
- **shape**: SSIM of the two gradient-magnitude images (Sobel on L*), averaged inside the matte, must be
  >= :data:`MIN_SHAPE_SSIM` (0.9): edges, print and outline where they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

MAX_DELTA_E = 3.0
MIN_SHAPE_SSIM = 0.9
#: dominant colours: at most this many clusters; a cluster under MIN_SHARE of the product is not "dominant"
CLUSTERS = 4
MIN_SHARE = 0.05


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference between Lab arrays (..., 3) (Sharma, Wu & Dalal 2005 formulation)."""
    L1, a1, b1 = (np.asarray(lab1, np.float64)[..., i] for i in range(3))
    L2, a2, b2 = (np.asarray(lab2, np.float64)[..., i] for i in range(3))
    C1, C2 = np.hypot(a1, b1), np.hypot(a2, b2)
    Cb7 = ((C1 + C2) / 2) ** 7
    G = 0.5 * (1 - np.sqrt(Cb7 / (Cb7 + 25.0**7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p, C2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, C2p - C1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(C1p * C2p == 0, 0.0, dh)
    dHp = 2 * np.sqrt(C1p * C2p) * np.sin(np.radians(dh / 2))
    Lbp, Cbp = (L1 + L2) / 2, (C1p + C2p) / 2
    hsum = h1p + h2p
    hbp = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2), hsum / 2)
    hbp = np.where(C1p * C2p == 0, hsum, hbp)
    T = (1 - 0.17 * np.cos(np.radians(hbp - 30)) + 0.24 * np.cos(np.radians(2 * hbp))
         + 0.32 * np.cos(np.radians(3 * hbp + 6)) - 0.20 * np.cos(np.radians(4 * hbp - 63)))
    dtheta = 30 * np.exp(-(((hbp - 275) / 25) ** 2))
    Cbp7 = Cbp**7
    Rc = 2 * np.sqrt(Cbp7 / (Cbp7 + 25.0**7))
    Sl = 1 + 0.015 * (Lbp - 50) ** 2 / np.sqrt(20 + (Lbp - 50) ** 2)
    Sc, Sh = 1 + 0.045 * Cbp, 1 + 0.015 * Cbp * T
    Rt = -np.sin(np.radians(2 * dtheta)) * Rc
    return np.asarray(np.sqrt((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2 + Rt * (dCp / Sc) * (dHp / Sh)))


def to_lab(rgb8: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 CIE Lab."""
    return np.asarray(cv2.cvtColor(np.asarray(rgb8, np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab))


def dominant_colours(lab: np.ndarray, weight: np.ndarray, k: int = CLUSTERS) -> np.ndarray:
    """The k-means centres (k, 3) of the Lab pixels where ``weight`` > 0.5 (fixed seed: same product, same centres)."""
    samples = lab[weight > 0.5].reshape(-1, 3).astype(np.float32)
    if len(samples) > 20000:
        samples = samples[np.random.default_rng(0).choice(len(samples), 20000, replace=False)]
    k = max(1, min(k, len(samples)))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.2)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(samples, k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    return np.asarray(centres, np.float32)


def _assign(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = np.stack([((lab - c) ** 2).sum(-1) for c in centres], -1)
    return np.asarray(d.argmin(-1))


def gradient_ssim(a_L: np.ndarray, b_L: np.ndarray, weight: np.ndarray) -> float:
    """Mean SSIM of the two gradient-magnitude images inside ``weight`` (Gaussian window, sigma 1.5)."""
    def grad(L: np.ndarray) -> np.ndarray:
        gx = cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3)
        return np.asarray(cv2.magnitude(gx, gy))

    x, y = grad(a_L), grad(b_L)
    L = max(float(np.quantile(x[weight > 0.5], 0.99)) if (weight > 0.5).any() else 1.0, 1.0)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2

    def blur(v: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.GaussianBlur(v, (0, 0), 1.5))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    w = weight.astype(np.float32)
    return float((ssim * w).sum() / max(float(w.sum()), 1e-6))


@dataclass
class Fidelity:
    """What the guard measured of one render: worst dominant-colour ΔE2000, gradient SSIM, and whether it passes."""

    delta_e: float
    shape_ssim: float
    passed: bool
    colours: list[dict[str, Any]]
    colour_checked: bool = True

    def info(self) -> dict[str, Any]:
        """The manifest's ``fidelity`` entry."""
        return {
            "delta_e": round(self.delta_e, 3), "max_delta_e": MAX_DELTA_E if self.colour_checked else None,
            "shape_ssim": round(self.shape_ssim, 4), "min_shape_ssim": MIN_SHAPE_SSIM, "passed": self.passed,
            "colours": self.colours,
            **({} if self.colour_checked else {"colour_waived": "the request restyles the product itself"}),
        }


class FidelityGuard:
    """Checks a render's product against the cut-out placed the same way (see the module docstring)."""

    def __init__(self, *, max_delta_e: float = MAX_DELTA_E, min_shape_ssim: float = MIN_SHAPE_SSIM,
                 restyle: bool = False) -> None:
        self.max_delta_e = max_delta_e
        self.min_shape_ssim = min_shape_ssim
        self.restyle = restyle

    def measure(self, out: np.ndarray, ref: np.ndarray, alpha: np.ndarray, centres: np.ndarray) -> Fidelity:
        """``out`` the render (uint8 RGB), ``ref`` the cut-out's colours placed at the output (uint8 RGB),
        ``alpha`` its placed matte, ``centres`` the cut-out's dominant colours (:func:`dominant_colours`)."""
        solid = (alpha > 0.98).astype(np.uint8)
        r = max(1, round(0.004 * max(alpha.shape)))
        inner = cv2.erode(solid, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
        if inner.sum() < 16:
            inner = solid > 0
        ys, xs = np.nonzero(inner)
        y0, y1 = max(0, ys.min() - 4), ys.max() + 5
        x0, x1 = max(0, xs.min() - 4), xs.max() + 5
        lab_o, lab_r = to_lab(out[y0:y1, x0:x1]), to_lab(ref[y0:y1, x0:x1])
        m = inner[y0:y1, x0:x1]
        labels = _assign(lab_r, centres)
        colours, worst = [], 0.0
        total = float(m.sum())
        for i in range(len(centres)):
            sel = m & (labels == i)
            share = float(sel.sum()) / max(total, 1.0)
            if share < MIN_SHARE:
                continue
            a, b = lab_r[sel].mean(0), lab_o[sel].mean(0)
            de = float(ciede2000(a, b))
            worst = max(worst, de)
            colours.append({"share": round(share, 3), "lab": [round(float(v), 1) for v in a], "delta_e": round(de, 3)})
        shape = gradient_ssim(lab_r[..., 0], lab_o[..., 0], m.astype(np.float32))
        ok_colour = self.restyle or worst <= self.max_delta_e
        return Fidelity(delta_e=worst, shape_ssim=shape, passed=bool(ok_colour and shape >= self.min_shape_ssim),
                        colours=colours, colour_checked=not self.restyle)
