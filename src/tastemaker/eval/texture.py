"""A texture-only descriptor: what medium an image is made in, blind to its colours.

The random-filter Gram descriptor (:mod:`.descriptors`) sees colour and texture together, so an output
can be attributed to a board by its grade alone. This descriptor sees only the marks: line work,
hatching, brush strokes, screentone, film grain, smooth photographic gradients. It answers "does the
output look *made* like the board's pins?" independently of "is it coloured like them?".

Computed on the grey luminance (CIE L*) of the image resized to :data:`TEXTURE_SIDE` px on its longest
side, after normalising it to zero mean and unit standard deviation:

1. **Local binary patterns** (Ojala, Pietikäinen and Mäenpää, "Multiresolution gray-scale and rotation
   invariant texture classification with local binary patterns", PAMI 2002): uniform, rotation-invariant
   codes (``riu2``) of 8 neighbours at radii 1, 2 and 4 px, one 10-bin histogram per radius;
2. **Oriented gradients**: the histogram of gradient orientations weighted by magnitude, reduced to the
   magnitudes of its first three circular Fourier coefficients (how strongly one, two or three directions
   dominate, whichever they are); the distribution of gradient magnitude relative to its mean (sparse
   strong lines on flat paper vs dense texture); and the structure-tensor orientation coherence
   (hatching and brush strokes are coherent, grain and foliage are not), weighted by local energy;
3. **Band energies**: the share of the image's detail energy in each octave of a Laplacian pyramid
   (fine grain vs broad strokes vs smooth gradients), as proportions of the total.

**Why it is texture-only.** Only luminance enters, so hue and saturation cannot change it (a hue
rotation in Lab leaves it exactly unchanged, a re-tint nearly so); the luminance is normalised to zero
mean and unit spread, so global brightness and contrast cannot change it either; LBP codes depend
only on the order of neighbouring values, and every other statistic is a proportion or a normalised
shape. What is left is the spatial structure of the marks — the visible ones: a difference below the
just-noticeable one (an invisible watermark, a level of noise) does not count as a mark (:data:`LBP_TAU`).

**Why it is not circular.** Nothing in the engine reads this descriptor. The project's style encoder
(:mod:`tastemaker.encoders.style`), which the engine optimises, holds colour and tone statistics and three
texture scalars (grain, sharpness, a fine/mid band ratio); it has no local patterns, no orientation
statistics and no multi-octave energy distribution, and this module neither imports nor reproduces it.
The medium-transfer stage copies *patches* of a pin, which can move this descriptor toward the board
— that is what it is for — but never optimises it.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

TEXTURE_SIDE = 256
TEXTURE_DESCRIPTOR_NAME = "texture-lbp-grad-bands-v2"
LBP_POINTS = 8
LBP_RADII = (1.0, 2.0, 4.0)
#: a neighbour counts as brighter when it exceeds the centre by this (in units of the image's std, about
#: 2 L* at a typical spread of 20: the just-noticeable difference, ΔE*ab ≈ 2.3). Below it, differences are
#: not seen, and a flat area (paper, sky) codes as flat. v1 used 0.02 (0.4 L*): an invisible 40 dB
#: watermark then turned an ink drawing's flat paper into "texture" and changed the board a third of the
#: engine's outputs were attributed to; the boards' own pins, left out one at a time, were attributed
#: right 71 % of the time with 0.02 and 74 % with 0.1.
LBP_TAU = 0.1
ORIENT_BINS = 18
MAG_QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.97)
COHERENCE_BINS = 6
PYRAMID_LEVELS = 6
#: weights of the blocks in the Euclidean distance (each block is roughly unit-scaled before weighting)
BLOCK_WEIGHTS = {"lbp": 1.0, "orient": 0.3, "magnitude": 0.5, "coherence": 0.5, "bands": 0.5}


def _luminance(img: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) of an RGB uint8 image at :data:`TEXTURE_SIDE` px on the longest side, normalised."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    s = TEXTURE_SIDE / max(h, w)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    small = cv2.resize(np.ascontiguousarray(img), size, interpolation=interp)
    L = cv2.cvtColor(small.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)[..., 0]
    sd = float(L.std())
    return (L - float(L.mean())) / max(sd, 1e-3)


@functools.cache
def _riu2_table(points: int) -> np.ndarray:
    """Map every ``points``-bit pattern to its uniform rotation-invariant code (0..points+1)."""
    table = np.empty(1 << points, np.int64)
    for code in range(1 << points):
        bits = [(code >> i) & 1 for i in range(points)]
        transitions = sum(bits[i] != bits[(i + 1) % points] for i in range(points))
        table[code] = sum(bits) if transitions <= 2 else points + 1
    return table


def _lbp_hist(g: np.ndarray, radius: float) -> np.ndarray:
    h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    code = np.zeros((h, w), np.int64)
    for p in range(LBP_POINTS):
        a = 2 * math.pi * p / LBP_POINTS
        mx = (xx + np.float32(radius * math.cos(a))).astype(np.float32)
        my = (yy - np.float32(radius * math.sin(a))).astype(np.float32)
        nb = cv2.remap(g, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        code |= ((nb - g) >= LBP_TAU).astype(np.int64) << p
    m = math.ceil(radius)
    codes = _riu2_table(LBP_POINTS)[code[m : h - m, m : w - m]]
    hist = np.bincount(codes.ravel(), minlength=LBP_POINTS + 2).astype(np.float64)
    return np.sqrt(hist / max(hist.sum(), 1.0))  # Hellinger: unit norm


def _gradient(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sm = cv2.GaussianBlur(g, (0, 0), 0.8)
    return cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)


@functools.cache
def _magnitude_floor() -> float:
    """The gradient magnitude of a step of :data:`LBP_TAU` (the just-noticeable difference): weaker
    gradients are not seen, so they do not count in the magnitude distribution."""
    step = np.zeros((16, 16), np.float32)
    step[:, 8:] = LBP_TAU
    gx, _ = _gradient(step)
    return float(np.abs(gx).max())


def _gradient_blocks(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gx, gy = _gradient(g)
    mag = np.sqrt(gx * gx + gy * gy)
    theta = np.mod(np.arctan2(gy, gx), np.pi)  # orientation, not direction
    total = float(mag.sum())
    # orientation histogram -> magnitudes of its circular Fourier coefficients 1..3 (rotation invariant)
    hist = np.bincount(np.minimum((theta * (ORIENT_BINS / np.pi)).astype(np.int64), ORIENT_BINS - 1).ravel(),
                       weights=mag.ravel(), minlength=ORIENT_BINS)
    f = np.abs(np.fft.rfft(hist / max(total, 1e-9)))
    orient = np.array([f[1], f[2], f[3]])
    # magnitude distribution relative to its mean (log quantiles): sparse lines vs dense texture; gradients
    # under the just-noticeable step count as none (flat paper with an invisible watermark is still flat)
    seen = np.maximum(mag - np.float32(_magnitude_floor()), 0)
    rel = seen / max(float(seen.mean()), 1e-9)
    magnitude = np.log(np.quantile(rel, MAG_QUANTILES) + 0.05) / 2.0
    # structure-tensor coherence, histogram weighted by local gradient energy
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), 2.0)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), 2.0)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), 2.0)
    tr = jxx + jyy
    coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / (tr + 1e-6)
    ch = np.bincount(np.minimum((coh * COHERENCE_BINS).astype(np.int64), COHERENCE_BINS - 1).ravel(),
                     weights=tr.ravel(), minlength=COHERENCE_BINS)
    coherence = np.sqrt(ch / max(float(ch.sum()), 1e-9))
    return orient * 1.5, magnitude * 0.6, coherence


def _band_energies(g: np.ndarray) -> np.ndarray:
    """Share of detail energy per octave (Laplacian pyramid, finest first), square-rooted."""
    energies = []
    cur = g
    for _ in range(PYRAMID_LEVELS):
        if min(cur.shape) < 4:
            energies.append(0.0)
            continue
        down = cv2.pyrDown(cur)
        up = cv2.pyrUp(down, dstsize=(cur.shape[1], cur.shape[0]))
        band = cur - up
        energies.append(float((band * band).sum()))  # sums, not means: the share of the image's energy
        cur = down
    e = np.array(energies)
    return 2.5 * np.sqrt(e / max(float(e.sum()), 1e-12))


def texture_descriptor(img: np.ndarray) -> np.ndarray:
    """The texture-only descriptor of an RGB (or grey) uint8 image: a float vector (see the module doc)."""
    g = _luminance(img)
    lbp = np.concatenate([_lbp_hist(g, r) for r in LBP_RADII]) / math.sqrt(len(LBP_RADII))
    orient, magnitude, coherence = _gradient_blocks(g)
    bands = _band_energies(g)
    parts = {"lbp": lbp, "orient": orient, "magnitude": magnitude, "coherence": coherence, "bands": bands}
    return np.concatenate([BLOCK_WEIGHTS[k] * v for k, v in parts.items()]).astype(np.float64)
