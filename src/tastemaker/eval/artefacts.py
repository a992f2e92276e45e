"""Image-quality measures for generated outputs: colour faithfulness and two artefact detectors.

Pure functions of pixels (RGB uint8), independent of the engine and of each other, so the evaluation can
count failures that the identity and style numbers do not see:

* **Chroma** — :func:`mean_chroma`, :func:`hue_spread_deg`, :func:`board_chroma`,
  :func:`monochrome_faithful`: a black-and-white or sepia board must give black-and-white or sepia
  outputs (a grade that leaves the face in colour on a grey board is a failure even when the rest looks
  right); a colourful board must give outputs whose colourfulness lies within the board's own range.
* **Mirrored content** — :func:`mirrored_content`, :func:`is_mirrored`: areas outside the photo that were
  filled with a reflected copy of the photo (``cv2.BORDER_REFLECT_101``, later blurred) show a ghost: an
  upside-down second head above the person, a mirrored shoulder at the side.
* **Blockiness** — :func:`blockiness`, :func:`is_blocky`: a small, JPEG-compressed face magnified past its
  detail shows the 8x8 coding blocks as a grid of period ~8 x the magnification.

The thresholds were calibrated on synthetic positives and on the public-domain dev-eval set
(``shared/data/dev-eval``: 21 face photos and 58 board images, plus 4:5 and 9:16 crops); the numbers are
beside :data:`MIRROR_THRESHOLD` and :data:`BLOCKY_THRESHOLD`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..media import resize_max_side

# ------------------------------------------------------------------------------------------- chroma
#: Chroma and hue are measured on a thumbnail of this many pixels on the longest side.
CHROMA_SIDE = 256
#: A pin whose mean CIE Lab chroma is at most this is *monochrome* (grey, black and white). Scanned
#: black-and-white prints and line art measure 0.01-0.06; the least colourful colour picture in the
#: dev-eval boards (a Potter watercolour) 4.3.
NEUTRAL_CHROMA = 3.0
#: A pin whose chroma-weighted circular standard deviation of hue is at most this many degrees is *toned*
#: (one hue: sepia, cyanotype, selenium). Sepia line art measures 2-4 degrees; colour paintings 15-100.
TONED_HUE_STD_DEG = 10.0
#: Allowed excess of an output's mean chroma over the board's (and shortfall below it, for colour boards).
CHROMA_MARGIN = 2.0
#: Allowed excess of an output's hue spread over the widest toned pin's (degrees).
HUE_MARGIN_DEG = 5.0
#: On a toned board, the output's mean hue must lie within this many degrees of the pins' (a sepia
#: board gives sepia, not a blue tone).
HUE_MEAN_TOL_DEG = 25.0


def _lab(img: np.ndarray, side: int = CHROMA_SIDE) -> np.ndarray:
    small = resize_max_side(np.ascontiguousarray(img), side)
    return cv2.cvtColor(small.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)


def mean_chroma(img: np.ndarray) -> float:
    """Mean CIE Lab chroma ``sqrt(a*^2 + b*^2)`` of an RGB uint8 image, on a 256 px thumbnail.

    0 for a perfectly grey image, about 1 for a scanned black-and-white print (paper and noise), 10-15
    for sepia and most photographs, 20-40 for saturated paintings.
    """
    lab = _lab(img)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def _hue_sums(img: np.ndarray) -> tuple[float, float, float]:
    """(sum a*, sum b*, sum chroma): each pixel's unit hue vector weighted by its chroma is just (a*, b*)."""
    lab = _lab(img)
    a, b = lab[..., 1].astype(np.float64), lab[..., 2].astype(np.float64)
    return float(a.sum()), float(b.sum()), float(np.hypot(a, b).sum())


def _spread(a: float, b: float, c: float) -> float:
    if c <= 1e-9:
        return 180.0
    r = math.hypot(a, b) / c
    return math.degrees(math.sqrt(max(0.0, -2.0 * math.log(max(r, 1e-12)))))


def hue_spread_deg(img: np.ndarray) -> float:
    """Chroma-weighted circular standard deviation of hue, in degrees (0 = one hue).

    Each pixel's hue angle counts in proportion to its chroma, so near-grey pixels (whose hue is noise)
    barely count; ``sqrt(-2 ln R)`` of the weighted mean resultant length ``R``. Meaningless (large) for a
    grey image: check :func:`mean_chroma` against :data:`NEUTRAL_CHROMA` first.
    """
    return _spread(*_hue_sums(img))


def mean_hue_deg(img: np.ndarray) -> float:
    """Chroma-weighted circular mean hue in degrees (Lab hue angle: 0 red-magenta, 90 yellow, 180 green)."""
    a, b, _ = _hue_sums(img)
    return math.degrees(math.atan2(b, a)) % 360.0


def chroma_range(images: Sequence[np.ndarray]) -> tuple[float, float]:
    """(lowest, highest) mean chroma over ``images``."""
    cs = [mean_chroma(i) for i in images]
    if not cs:
        raise ValueError("chroma_range needs at least one image")
    return min(cs), max(cs)


@dataclass(frozen=True)
class BoardChroma:
    """What :func:`monochrome_faithful` needs to know about a board's pins (computed once per board)."""

    lo: float  #: lowest pin mean chroma
    hi: float  #: highest pin mean chroma
    monochrome: bool  #: every pin is grey or toned (see :func:`board_chroma`)
    hue_std_deg: float | None  #: widest hue spread among the toned pins (None when every pin is grey)
    n_pins: int
    hue_deg: float | None = None  #: the toned pins' pooled mean hue (None when every pin is grey)


def board_chroma(pins: Sequence[np.ndarray]) -> BoardChroma:
    """Summarise a board's colour: its chroma range and whether it is a monochrome/toned board.

    A pin is *monochrome* when its mean chroma is at most :data:`NEUTRAL_CHROMA`, *toned* when its hue
    spread (:func:`hue_spread_deg`) is at most :data:`TONED_HUE_STD_DEG`. The board is monochrome when
    every pin is one or the other (a black-and-white board, a sepia board, or a mix of both).
    """
    if not pins:
        raise ValueError("board_chroma needs at least one pin")
    chroma = [mean_chroma(p) for p in pins]
    sums = [None if c <= NEUTRAL_CHROMA else _hue_sums(p) for p, c in zip(pins, chroma, strict=True)]
    spreads = [_spread(*s) for s in sums if s is not None]
    mono = all(s <= TONED_HUE_STD_DEG for s in spreads)
    if not spreads:
        return BoardChroma(min(chroma), max(chroma), mono, None, len(pins))
    a = sum(s[0] for s in sums if s is not None)
    b = sum(s[1] for s in sums if s is not None)
    return BoardChroma(min(chroma), max(chroma), mono, max(spreads), len(pins), math.degrees(math.atan2(b, a)) % 360)


def monochrome_faithful(output: np.ndarray, board_pins: Sequence[np.ndarray] | BoardChroma) -> bool:
    """Does the output keep the board's colourfulness? (True = faithful.)

    * **Monochrome / toned board** (every pin grey or of one hue, :func:`board_chroma`): the output's mean
      chroma must be at most the most colourful pin's + :data:`CHROMA_MARGIN` (2.0), and, when the
      output is not itself grey (mean chroma > :data:`NEUTRAL_CHROMA`), its hue spread must be at most the
      widest toned pin's + :data:`HUE_MARGIN_DEG` (5 degrees) and its mean hue within
      :data:`HUE_MEAN_TOL_DEG` (25 degrees) of the pins' (sepia stays sepia, not blue); a grey-only board
      allows no hue at all beyond the chroma margin. A skin-coloured face left on a black-and-white board
      fails; a grey output on a sepia board passes (grey is within a toned board's colours).
    * **Colourful board**: the output's mean chroma must lie within [least colourful pin - 2.0, most
      colourful pin + 2.0]: neither washed out nor more saturated than anything the person pinned.
    """
    bc = board_pins if isinstance(board_pins, BoardChroma) else board_chroma(board_pins)
    c = mean_chroma(output)
    if not bc.monochrome:
        return bc.lo - CHROMA_MARGIN <= c <= bc.hi + CHROMA_MARGIN
    if c > bc.hi + CHROMA_MARGIN:
        return False
    if c <= NEUTRAL_CHROMA or bc.hue_std_deg is None or bc.hue_deg is None:
        return True
    a, b, total = _hue_sums(output)
    off = abs((math.degrees(math.atan2(b, a)) - bc.hue_deg + 180.0) % 360.0 - 180.0)
    return _spread(a, b, total) <= bc.hue_std_deg + HUE_MARGIN_DEG and off <= HUE_MEAN_TOL_DEG


# ------------------------------------------------------------------------------------------- mirror
#: The mirror search runs on the luminance at this many pixels on the longest side.
MIRROR_SIDE = 128
#: Candidate axes lie within this fraction of each border (the outer 45 %: a centred subject's own
#: left-right symmetry, about the middle, is never a candidate).
MIRROR_OUTER = 0.45
#: The reflected strip must be at least this fraction of the image's height (width): a thinner fill
#: holds no visible ghost, and thin strips along frames and paper margins match by chance.
MIRROR_MIN_STRIP = 0.10
#: The fill was blurred, the photo was not: the inner side is compared at these extra blurs (analysis
#: pixels; 0-3 px at 128 px covers a fill blurred by up to ~2.5 % of the image size) and the best counts.
MIRROR_BLURS = (0.0, 0.7, 1.4, 2.0, 3.0)
#: Strips whose residual contrast is below this (grey levels, 0-255) are flat: nothing to mirror.
MIRROR_MIN_STD = 2.0
#: :func:`is_mirrored` flags a score above this. Calibration: the 79 dev-eval images resized to 512 px,
#: whole and centre-cropped to 4:5 and 9:16 (237 images, faces, photos, paintings, line art) score at
#: most 0.871 (a symmetric face filling a narrow crop, a photo's dark print border); 1,600 synthetic
#: fills (50 of those images padded on one side by 12, 20, 30 or 40 % with ``cv2.BORDER_REFLECT_101``,
#: the fill blurred by sigma 1 or 2 % of the size, grain of sigma 6 levels on everything, resized to
#: 512) have a median of 0.988 and are flagged 92 % / 98.5 % / 99.5 % / 100 % of the time for the four
#: pad sizes; the misses are fills of featureless sky or a dark backdrop, where no ghost shows either.
MIRROR_THRESHOLD = 0.92


@dataclass(frozen=True)
class MirrorMatch:
    """The best reflection found: its score, the axis orientation, the border and the strip depth (px)."""

    score: float
    axis: str  # "horizontal" (a reflected strip at the top or bottom) or "vertical" (left or right)
    border: str  # "top", "bottom", "left", "right"
    depth_px: float  # strip depth in the input image's pixels


def _blur_stack(grey: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(grey, (0, 0), s) if s > 0 else grey for s in MIRROR_BLURS])


def _near_side(stack: np.ndarray) -> tuple[float, int]:
    """Best reflection of a strip at the *top* of ``stack`` (blurs, rows, cols) about a row: (score, depth)."""
    n_rows = stack.shape[1]
    lo = max(3, math.ceil(MIRROR_MIN_STRIP * n_rows))
    hi = int(MIRROR_OUTER * n_rows)
    best, depth = 0.0, 0
    sharp = stack[0]
    for a in range(lo, hi + 1):
        outer = sharp[a - 1 :: -1][:a] if a < n_rows else sharp[::-1]
        oc = outer - outer.mean(axis=0, keepdims=True)  # per column: what is constant across the strip is
        so = float(np.sqrt((oc * oc).mean()))  # not a reflection (bands, gradients, a wall)
        if so < MIRROR_MIN_STD:
            continue
        for start in (a + 1, a):  # axis on row a (reflect-101), or between rows a-1 and a (reflect)
            inner = stack[:, start : start + a]
            if inner.shape[1] < a:
                continue
            ic = inner - inner.mean(axis=1, keepdims=True)
            si = np.sqrt((ic * ic).mean(axis=(1, 2)))
            num = (ic * oc[None]).mean(axis=(1, 2))
            ok = si >= MIRROR_MIN_STD
            if not ok.any():
                continue
            s = float(np.max(np.where(ok, num / np.maximum(si * so, 1e-9), 0.0)))
            if s > best:
                best, depth = s, a
    return best, depth


def mirror_match(img: np.ndarray, region: tuple[int, int, int, int] | None = None) -> MirrorMatch:
    """The strongest reflection of a border strip about an axis parallel to that border.

    For every candidate axis within the outer 45 % of the image (rows near the top and bottom, columns
    near the left and right), the whole strip between the axis and the border is compared with the
    same depth on the other side of the axis, flipped: zero-mean normalised cross-correlation of the
    luminance at 128 px, after removing from each strip what is constant across its depth (so horizontal
    bands, gradients and plain walls do not count as reflections), with the inner side blurred by up to
    3 px to match a fill that was blurred (the best blur counts). Strips thinner than 10 % of the image,
    or flat, are not candidates. ``region`` (left, top, right, bottom) restricts the search to a part of
    the image.
    """
    if region is not None:
        x0, y0, x1, y1 = region
        img = img[max(0, y0) : y1, max(0, x0) : x1]
    grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    grey = grey.astype(np.float32)
    scale = MIRROR_SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    else:
        scale = 1.0
    best = MirrorMatch(0.0, "horizontal", "top", 0.0)
    if min(grey.shape) < 16:
        return best
    stack = _blur_stack(grey)
    views = {
        "top": stack,
        "bottom": stack[:, ::-1, :],
        "left": stack.transpose(0, 2, 1),
        "right": stack.transpose(0, 2, 1)[:, ::-1, :],
    }
    for border, view in views.items():
        s, d = _near_side(np.ascontiguousarray(view))
        if s > best.score:
            axis = "horizontal" if border in ("top", "bottom") else "vertical"
            best = MirrorMatch(s, axis, border, d / scale)
    return best


def mirrored_content(img: np.ndarray, region: tuple[int, int, int, int] | None = None) -> float:
    """How strongly a border strip of the image is a mirrored copy of what lies next to it (0..1).

    See :func:`mirror_match` for the method; :func:`is_mirrored` applies the calibrated threshold.
    """
    return max(0.0, mirror_match(img, region).score)


def is_mirrored(img: np.ndarray, region: tuple[int, int, int, int] | None = None) -> bool:
    """True when a border strip is a reflected copy (score above :data:`MIRROR_THRESHOLD`)."""
    return mirrored_content(img, region) > MIRROR_THRESHOLD


# ------------------------------------------------------------------------------------------ blocks
#: Grid periods searched, in pixels: an 8x8 JPEG block magnified 1x to 8x.
BLOCK_PERIODS = (8.0, 64.0)
#: Relative step between candidate periods (0.2 %: over 15 blocks a grid drifts by under 1/16 period).
BLOCK_PERIOD_STEP = 0.002
#: The region (face box) must hold at least this many periods of a candidate grid (fewer: too noisy).
BLOCK_MIN_CYCLES = 4.0
#: Each difference is divided by the local mean difference (Gaussian, sigma = this x the octave's
#: shortest period), so a step in smooth skin counts as much as one in detailed hair.
BLOCK_NORM_SIGMA = 0.5
BLOCK_NORM_EPS = 0.5
#: Normalised differences above this percentile of the region's are clipped before averaging.
BLOCK_CLIP_PCT = 98.0
#: Within each octave of periods, the ratio's excess over 1 is divided by the octave's median excess when
#: that is above this: a face scores about 1.05 at a typical period, so a lone peak keeps its height,
#: while a picture of sparse strong strokes (a stylised or line-art face) that scores high at every
#: period is scaled down to the same typical level.
BLOCK_TYPICAL_EXCESS = 0.1
#: :func:`is_blocky` flags a score above this. Calibration on 23 faces (the 21 dev-eval photos, the demo
#: selfie, Grace Hopper), each cropped to 1.3 x its dlib box, shrunk to 120 px, saved as JPEG quality 20
#: and magnified 6x: nearest neighbour scores 6.1 or more, bilinear 1.45 or more (median 1.69), bicubic
#: 1.49 or more; magnified 3x or 4x, 1.42 or more. The same faces at their native size score at most
#: 1.39 (a web-compressed portrait's own 8 px JPEG grid), re-saved at quality 90 at most 1.39, upscaled
#: 1.5x with Lanczos at most 1.38; 92 faces through the ``stylize`` and ``oilpaint`` baselines (512 px,
#: six people x four boards) at most 1.25. The margin for smooth magnification is narrow (1.39 vs 1.42), so read
#: the flag as "visibly blocky", never as a fine grade. Quality-40 faces magnified smoothly are mostly
#: under it (median 1.34-1.44).
BLOCKY_THRESHOLD = 1.42


#: Phase bins per period when folding a profile (a block edge occupies 1/8 of the period: 8 bins).
_PHASE_BINS = 64


def _fold_ratios(profile: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Per period: the edge strength in the best one-eighth of the period over that in the rest.

    The profile is folded modulo the period into :data:`_PHASE_BINS` phase bins; a window of one eighth
    of the period (one magnified source pixel when the period is 8 x the magnification) slides round
    the fold, and its mean is compared with the mean of the other seven eighths.
    """
    x = np.arange(len(profile), dtype=np.float64)
    win = _PHASE_BINS // 8
    out = np.empty(len(periods))
    for k, p in enumerate(periods):
        b = np.minimum((np.mod(x, p) * (_PHASE_BINS / p)).astype(np.int64), _PHASE_BINS - 1)
        tot = np.bincount(b, weights=profile, minlength=_PHASE_BINS)
        cnt = np.bincount(b, minlength=_PHASE_BINS).astype(np.float64)
        tot_w = np.convolve(np.concatenate([tot, tot[: win - 1]]), np.ones(win), "valid")
        cnt_w = np.convolve(np.concatenate([cnt, cnt[: win - 1]]), np.ones(win), "valid")
        inside = tot_w / np.maximum(cnt_w, 1.0)
        outside = (tot.sum() - tot_w) / np.maximum(cnt.sum() - cnt_w, 1.0)
        out[k] = float(np.max(inside / np.maximum(outside, 1e-6)))
    return out


def blockiness(img: np.ndarray, face_box: tuple[int, int, int, int] | None = None) -> float:
    """How strongly the image (or the face box) shows a periodic grid of block edges (about 1 = none).

    After Wang, Bovik and Evans, "Blind measurement of blocking artifacts in images" (ICIP 2000): the
    mean absolute difference between neighbouring columns (rows), summed over R, G and B, is a profile
    that peaks at block boundaries when coding blocks show. Here the period is unknown (the face may be
    magnified by any factor), so every period from 8 to 64 px (in 0.2 % steps, at most a quarter of the
    region) is tried: the profile is folded modulo the period and the mean in the best eighth of the
    period (one magnified source pixel: where a block edge lies) is divided by the mean in the other
    seven eighths. A grid gives a ratio well above 1, face content about 1. Before folding, each
    difference is divided by the local mean difference and the largest 2 % are clipped, so steps in
    smooth skin count and the face's own strong edges do not dominate. JPEG blocks are square, so the
    column and row profiles must agree: the smaller ratio counts. A grid stands out at one period, so
    within each octave of periods the ratios are scaled by how high they typically are (see
    :data:`BLOCK_TYPICAL_EXCESS`); the score is the maximum over periods.
    Nearest-neighbour magnification (pixelation) scores high too, which is also a block artefact.
    """
    if face_box is not None:
        x0, y0, x1, y1 = face_box
        img = img[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    if img.size == 0:
        return 1.0
    g = img.astype(np.float32)
    if g.ndim == 2:
        g = g[..., None]
    h, w = g.shape[:2]
    longest = min(h, w) / BLOCK_MIN_CYCLES
    if longest < BLOCK_PERIODS[0]:
        return 1.0  # too small to hold four 8 px blocks: nothing to measure
    dx, dy = np.abs(np.diff(g, axis=1)).sum(axis=2), np.abs(np.diff(g, axis=0)).sum(axis=2)
    top = min(BLOCK_PERIODS[1], longest)
    periods = np.exp(np.arange(math.log(BLOCK_PERIODS[0]), math.log(top) + 1e-9, BLOCK_PERIOD_STEP))
    best = 1.0
    for lo in (8.0, 16.0, 32.0):  # one local normalisation per octave of periods
        ps = periods[(periods >= lo) & ((periods < 2 * lo) | (lo == 32.0))]
        if not len(ps):
            continue
        sig = lo * BLOCK_NORM_SIGMA
        if sig > 0:
            ndx = dx / (cv2.GaussianBlur(dx, (0, 0), sig) + BLOCK_NORM_EPS)
            ndy = dy / (cv2.GaussianBlur(dy, (0, 0), sig) + BLOCK_NORM_EPS)
        else:
            ndx, ndy = dx, dy
        col = np.minimum(ndx, np.percentile(ndx, BLOCK_CLIP_PCT)).mean(axis=0)
        row = np.minimum(ndy, np.percentile(ndy, BLOCK_CLIP_PCT)).mean(axis=1)
        r = np.minimum(_fold_ratios(col, ps), _fold_ratios(row, ps))
        # a grid stands out at its period; sparse strong strokes (a stylised face) score high at many
        r = 1.0 + (r - 1.0) * BLOCK_TYPICAL_EXCESS / max(float(np.median(r)) - 1.0, BLOCK_TYPICAL_EXCESS)
        best = max(best, float(np.max(r)))
    return best


def is_blocky(img: np.ndarray, face_box: tuple[int, int, int, int] | None = None) -> bool:
    """True when :func:`blockiness` is above :data:`BLOCKY_THRESHOLD`."""
    return blockiness(img, face_box) > BLOCKY_THRESHOLD
