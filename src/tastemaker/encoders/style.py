"""The embedded style encoder: a deterministic, documented aesthetic descriptor per image.

No weights, no randomness that depends on anything but the pixels. Every image is reduced to a
thumbnail of at most :data:`ANALYSIS_SIDE` pixels (JPEGs are decoded at reduced size by the caller)
and described by named features in five groups. Each feature is divided by a fixed *scale* (its
typical spread across photographs) and each group by the square root of its size times a group
weight, so a unit step in the vector means "a noticeable change" whichever group it is in.

========  ====================================================================================
group     features (CIE Lab, L in 0..100)
========  ====================================================================================
colour    Lab mean and std; chroma mean and 90th percentile (saturation); 8-bin hue histogram
          weighted by chroma plus the neutral fraction (palette); shadow and highlight a*/b*
          (split toning). Warmth is b* mean, tint is a* mean.
tone      L percentiles 2/10/25/50/75/90/98 (black point, luminance distribution, white point)
          and the 5-95 spread (contrast).
texture   grain (robust std of the fine high-pass residual), sharpness (log mean |Laplacian|),
          softness (log ratio of fine to medium band energy).
falloff   light falloff: border-ring vs centre luminance (vignette) and top vs bottom.
========  ====================================================================================

:func:`style_similarity` maps the Euclidean distance ``d`` between two vectors to ``1 / (1 + d)``:
1 for identical looks, about 0.5 for a clearly visible difference, towards 0 for opposite looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..media import resize_max_side

ENCODER_NAME = "tastemaker-style"
ENCODER_VERSION = "1"
ANALYSIS_SIDE = 256
HUE_BINS = 8
L_PERCENTILES = (2, 10, 25, 50, 75, 90, 98)

#: (feature name, scale, group). Order defines the vector layout.
_FEATURES: list[tuple[str, float, str]] = [
    ("L_mean", 10.0, "colour"),
    ("a_mean", 4.0, "colour"),
    ("b_mean", 5.0, "colour"),
    ("L_std", 5.0, "colour"),
    ("a_std", 3.0, "colour"),
    ("b_std", 4.0, "colour"),
    ("chroma_mean", 5.0, "colour"),
    ("chroma_p90", 8.0, "colour"),
    *[(f"hue_{i}", 0.08, "colour") for i in range(HUE_BINS)],
    ("neutral_frac", 0.15, "colour"),
    ("shadow_a", 4.0, "colour"),
    ("shadow_b", 5.0, "colour"),
    ("highlight_a", 4.0, "colour"),
    ("highlight_b", 5.0, "colour"),
    *[(f"L_p{p}", 8.0, "tone") for p in L_PERCENTILES],
    ("contrast", 10.0, "tone"),
    ("grain", 0.6, "texture"),
    ("sharpness", 0.35, "texture"),
    ("softness", 0.35, "texture"),
    ("vignette", 0.08, "falloff"),
    ("top_bottom", 0.2, "falloff"),
]
GROUP_WEIGHTS = {"colour": 1.0, "tone": 0.9, "texture": 0.5, "falloff": 0.4}
FEATURE_NAMES = tuple(f[0] for f in _FEATURES)


def _weights() -> np.ndarray:
    counts: dict[str, int] = {}
    for _, _, g in _FEATURES:
        counts[g] = counts.get(g, 0) + 1
    return np.array(
        [GROUP_WEIGHTS[g] / (s * np.sqrt(counts[g])) for _, s, g in _FEATURES], dtype=np.float64
    )


_W = _weights()
DIM = len(_FEATURES)


@dataclass(frozen=True)
class StyleDescriptor:
    """Named raw features, the weighted vector used for distances, and a 5-colour Lab palette."""

    features: dict[str, float]
    vector: np.ndarray
    palette: np.ndarray  # (k, 3) Lab
    palette_weights: np.ndarray  # (k,)
    #: L* quantiles at 0, 5, ..., 100 % (the tone curve), when computed from pixels
    tone: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def from_features(cls, features: dict[str, float], palette: np.ndarray, pw: np.ndarray) -> StyleDescriptor:
        raw = np.array([features[n] for n in FEATURE_NAMES], dtype=np.float64)
        return cls(features=features, vector=raw * _W, palette=palette, palette_weights=pw)


def features_to_vector(features: dict[str, float]) -> np.ndarray:
    """The weighted vector for a dict of raw feature values (e.g. a mode's averaged features)."""
    return np.array([features[n] for n in FEATURE_NAMES], dtype=np.float64) * _W


def vector_to_features(vector: np.ndarray) -> dict[str, float]:
    """Inverse of :func:`features_to_vector`."""
    raw = np.asarray(vector, dtype=np.float64) / _W
    return {n: float(v) for n, v in zip(FEATURE_NAMES, raw, strict=True)}


def to_lab(img: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 CIE Lab (L 0..100)."""
    return cv2.cvtColor(img.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)


def lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    """float32 Lab -> uint8 sRGB, clipped."""
    rgb = cv2.cvtColor(np.asarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def kmeans_palette(
    samples: np.ndarray, k: int = 5, weights: np.ndarray | None = None, iters: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means in Lab with a fixed k-means++ seed; returns centres sorted by weight."""
    x = np.asarray(samples, dtype=np.float64)
    n = len(x)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0)
    k = min(k, n)
    rng = np.random.default_rng(0)
    centres = [x[int(np.argmax(w))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 * w
        if p.sum() <= 0:
            break
        centres.append(x[rng.choice(n, p=p / p.sum())])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.array(centres)
    kk = len(c)
    for _ in range(iters):
        lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        mass = np.bincount(lab, weights=w, minlength=kk)
        sums = np.stack([np.bincount(lab, weights=w * x[:, j], minlength=kk) for j in range(3)], axis=1)
        keep = mass > 0
        c[keep] = sums[keep] / mass[keep, None]
    lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    cw = np.bincount(lab, weights=w, minlength=kk)
    cw = cw / max(cw.sum(), 1e-12)
    order = np.lexsort((c[:, 2], c[:, 1], c[:, 0], -cw))
    return c[order], cw[order]


def hist_quantiles(values: np.ndarray, qs: np.ndarray, lo: float, hi: float, bins: int = 2048) -> np.ndarray:
    """Quantiles (``qs`` in 0..100) from a fine histogram: O(n), within (hi-lo)/bins of exact."""
    v = np.asarray(values, dtype=np.float32).ravel()
    idx = np.clip(((v - lo) * (bins / (hi - lo))).astype(np.int64), 0, bins - 1)
    cdf = np.cumsum(np.bincount(idx, minlength=bins)).astype(np.float64)
    cdf /= cdf[-1]
    edges = lo + (np.arange(bins) + 1.0) * ((hi - lo) / bins)
    q = np.asarray(qs, dtype=np.float64) / 100.0
    return np.interp(q, np.concatenate([[0.0], cdf]), np.concatenate([[lo], edges]))


TONE_QS = np.linspace(0, 100, 21)


def describe(img: np.ndarray, *, palette: bool = True) -> StyleDescriptor:
    """Describe an RGB uint8 image (any size; analysed at <= 256 px on the longest side).

    ``palette=False`` skips the 5-colour palette (profiles build their own per mode).
    """
    thumb = resize_max_side(img, ANALYSIS_SIDE)
    lab = to_lab(thumb)
    L = lab[..., 0]
    sub = lab[::2, ::2].reshape(-1, 3)  # colour statistics need no more than a quarter of the pixels
    lf, af, bf = sub[:, 0], sub[:, 1], sub[:, 2]
    f: dict[str, float] = {}
    f["L_mean"], f["a_mean"], f["b_mean"] = float(lf.mean()), float(af.mean()), float(bf.mean())
    f["L_std"], f["a_std"], f["b_std"] = float(lf.std()), float(af.std()), float(bf.std())
    chroma = np.hypot(af, bf)
    f["chroma_mean"] = float(chroma.mean())
    f["chroma_p90"] = float(hist_quantiles(chroma, np.array([90.0]), 0.0, 200.0)[0])
    # hue histogram weighted by chroma: which colours carry the image's saturation
    hue = np.arctan2(bf, af)
    bins = ((hue + np.pi) * (HUE_BINS / (2 * np.pi))).astype(np.int64) % HUE_BINS
    hist = np.bincount(bins, weights=chroma, minlength=HUE_BINS)
    hist = hist / max(hist.sum(), 1e-9)
    for i in range(HUE_BINS):
        f[f"hue_{i}"] = float(hist[i])
    f["neutral_frac"] = float((chroma < 6.0).mean())
    q = hist_quantiles(L, np.array([*L_PERCENTILES, 5, 95, 25, 75, *TONE_QS]), 0.0, 100.0)
    for p, v in zip(L_PERCENTILES, q[: len(L_PERCENTILES)], strict=True):
        f[f"L_p{p}"] = float(v)
    n = len(L_PERCENTILES)
    f["contrast"] = float(q[n + 1] - q[n])
    # split toning: colour of the darkest and brightest quarter, with soft membership so a flat region
    # sitting on the quartile boundary cannot flip the value
    lo, hi = q[n + 2], q[n + 3]
    ws = 1.0 / (1.0 + np.exp(np.clip((lf - lo) / 3.0, -30, 30)))
    wh = 1.0 / (1.0 + np.exp(np.clip((hi - lf) / 3.0, -30, 30)))
    f["shadow_a"] = float(np.dot(ws, af) / (ws.sum() + 1e-9))
    f["shadow_b"] = float(np.dot(ws, bf) / (ws.sum() + 1e-9))
    f["highlight_a"] = float(np.dot(wh, af) / (wh.sum() + 1e-9))
    f["highlight_b"] = float(np.dot(wh, bf) / (wh.sum() + 1e-9))
    f.update(_texture(L))
    f.update(_falloff(L))
    if palette:
        idx = np.linspace(0, len(sub) - 1, num=min(1024, len(sub))).astype(np.int64)
        pal, pw = kmeans_palette(sub[idx], k=5)
    else:
        pal, pw = np.zeros((0, 3)), np.zeros(0)
    d = StyleDescriptor.from_features(f, pal, pw)
    object.__setattr__(d, "tone", q[n + 4 :])
    return d


def _texture(L: np.ndarray) -> dict[str, float]:
    """Grain, sharpness and softness from the luminance plane (L 0..100)."""
    b1 = cv2.GaussianBlur(L, (0, 0), 1.0)
    fine = L - b1
    mid = b1 - cv2.GaussianBlur(b1, (0, 0), 2.83)  # blur(1) then blur(2.83) == blur(3)
    # grain: robust spread of the fine residual where the image is flat (edges would dominate)
    sm = cv2.GaussianBlur(b1, (0, 0), 1.1)
    grad = np.abs(cv2.Sobel(sm, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(sm, cv2.CV_32F, 0, 1))
    flat = grad <= hist_quantiles(grad, np.array([40.0]), 0.0, float(grad.max()) + 1e-3)[0]
    r = fine[flat] if flat.sum() > 64 else fine.ravel()
    med = float(np.median(r))
    grain = 1.4826 * float(np.median(np.abs(r - med)))
    lap = cv2.Laplacian(L, cv2.CV_32F, ksize=3)
    sharp = float(np.log1p(np.abs(lap).mean()))
    e_fine = float((fine**2).mean())
    e_mid = float((mid**2).mean())
    soft = float(np.log((e_mid + 1e-3) / (e_fine + 1e-3)))
    return {"grain": float(np.log1p(grain)), "sharpness": sharp, "softness": soft}


def texture_stats(L: np.ndarray) -> dict[str, float]:
    """Grain, sharpness, softness, vignette and top-to-bottom light of a luminance plane (L* 0..100).

    The same measurements :func:`describe` makes, for engines that match them on their own thumbnails.
    """
    return {**_texture(L), **_falloff(L)}


_RADIAL_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _radius(h: int, w: int) -> np.ndarray:
    key = (h, w)
    r = _RADIAL_CACHE.get(key)
    if r is None:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot((yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)) / np.sqrt(2)
        if len(_RADIAL_CACHE) < 64:
            _RADIAL_CACHE[key] = r
    return r


def _falloff(L: np.ndarray) -> dict[str, float]:
    """Vignette (border ring vs centre) and top-to-bottom light, relative to mean luminance."""
    h, w = L.shape
    r = _radius(h, w)
    mean = float(L.mean()) + 5.0
    centre = float(L[r < 0.35].mean()) if (r < 0.35).any() else mean
    ring = float(L[r > 0.8].mean()) if (r > 0.8).any() else mean
    third = max(1, h // 3)
    top, bottom = float(L[:third].mean()), float(L[-third:].mean())
    return {"vignette": (centre - ring) / mean, "top_bottom": (top - bottom) / mean}


def style_distance(a: StyleDescriptor | np.ndarray, b: StyleDescriptor | np.ndarray) -> float:
    """Euclidean distance between two style vectors (0 = same look)."""
    va = a.vector if isinstance(a, StyleDescriptor) else np.asarray(a)
    vb = b.vector if isinstance(b, StyleDescriptor) else np.asarray(b)
    return float(np.linalg.norm(va - vb))


def style_similarity(a: StyleDescriptor | np.ndarray, b: StyleDescriptor | np.ndarray) -> float:
    """Similarity in (0, 1]: ``1 / (1 + distance)``."""
    return 1.0 / (1.0 + style_distance(a, b))
