"""Detection: the record id read back from a picture, through crops, resizes, JPEG, mirrors and small turns.

Separate from :mod:`.embedding` because it is the larger half and its own search: the sync template's peak
gives the tile's shift, a Fourier "comb" over the sync frequencies proposes scales (and, last, angles),
and the seven other orientations are tried (see the package docstring, "Detection"). A payload is returned
only when the CRC matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .code import PAYLOAD_BITS, bits_int, conv_encode, crc24, viterbi
from .planes import YCC, Whitened, analysis, check_pixels, fold_spec, half_rgb, soft_bits, whiten
from .tiling import DEFAULT_KEY, MIN_SIDE, NP, TILE, Layout, layout

_FULLRES_BELOW = 0.7  # scales under this are folded on full-resolution luma
_SCALE_RANGE = (0.28, 2.1)
_MAX_TURN = 10.0  # degrees: a copy turned by up to this much is searched for (after every other search fails)
_TURN_SCALES = (0.6, 1.6)  # and resized within this range as well


@dataclass(frozen=True)
class Detection:
    """What ``detect`` found. ``payload`` is None unless the CRC matched (never a guess)."""

    payload: int | None
    confidence: float
    sync_z: float
    scale: float
    shift: tuple[float, float]
    candidates_tried: int
    reason: str = ""
    #: which of the eight orientations the mark was found in (0: as the image stands; else 1 + the index
    #: into the mirrored / quarter-turned copies tried, see :func:`original_frame`)
    orientation: int = 0
    #: the copy was found turned by this many degrees (undone about its centre; see :func:`original_frame`)
    angle: float = 0.0

    @property
    def found(self) -> bool:
        return self.payload is not None


def _sync(lay: Layout, spec: np.ndarray, extra: bool = False) -> list[tuple[float, float, float]]:
    """Cross-correlate the fold with the sync template: [(z, dy, dx)], best first.

    Each plane's correlation surface is normalised to unit variance and the planes are added, so
    whichever plane carries the mark best (luma on smooth images, chroma on dense texture) leads.
    ``extra`` also proposes the second peak of the sum and the best peak of each single plane.
    """
    corr = np.fft.irfft2(spec * np.conj(lay.sync_spec), s=(TILE, TILE), axes=(0, 1))
    corr = (corr - corr.mean((0, 1))) / (corr.std((0, 1)) + 1e-12)
    surfaces = [corr.sum(2) / math.sqrt(NP)] + ([corr[..., p] for p in range(NP)] if extra else [])
    out: list[tuple[float, float, float]] = []
    for k, surf in enumerate(surfaces):
        flat = surf.ravel()
        want = 2 if extra and k == 0 else 1
        for idx in np.argsort(flat)[::-1][:8]:
            dy, dx = divmod(int(idx), TILE)
            if any(math.hypot((dy - o[1] + 32) % 64 - 32, (dx - o[2] + 32) % 64 - 32) < 2 for o in out):
                if k == 0:
                    continue
                break  # a single plane agreeing with a peak already proposed adds nothing
            fy = _parabola(surf[(dy - 1) % TILE, dx], surf[dy, dx], surf[(dy + 1) % TILE, dx])
            fx = _parabola(surf[dy, (dx - 1) % TILE], surf[dy, dx], surf[dy, (dx + 1) % TILE])
            out.append((float(flat[idx]), dy + fy, dx + fx))
            want -= 1
            if want == 0:
                break
    return out


def _parabola(a: float, b: float, c: float) -> float:
    d = a - 2 * b + c
    return 0.0 if d >= 0 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))


def _norm_power(arr: np.ndarray, pad: int) -> np.ndarray:
    """Power spectrum (rfft2, zero-padded to at least ``pad``) over its ring mean, capped at 8: peaks stand out."""
    h, ww = (max(n, pad) for n in arr.shape)
    spec = np.fft.rfft2(arr, s=(h, ww))
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(ww)[None, :]
    rb = np.minimum((np.hypot(fy, fx) * 200).astype(np.int32), 200)
    ring_mean = np.bincount(rb.ravel(), weights=power.ravel(), minlength=201) / np.maximum(
        np.bincount(rb.ravel(), minlength=201), 1
    )
    return np.minimum(power / (ring_mean[rb] + 1e-9), 8.0)


def _comb_planes(w: Whitened) -> list[tuple[np.ndarray, float, int]]:
    """Each plane's whitened samples, its samples per DWT sample (chroma is one level down), and FFT padding."""
    return [(w[0], 1.0, 512)] + [(np.ascontiguousarray(w[1][..., c]), 2.0, 256) for c in range(NP - 1)]


def _comb_scales(lay: Layout, w: Whitened, k: int = 4) -> list[float]:
    """Scale proposals from the power spectrum at the sync frequencies of every plane (shift-invariant)."""
    scales = np.exp(np.arange(math.log(_SCALE_RANGE[0]), math.log(_SCALE_RANGE[1]), 0.0025))
    score = np.zeros(len(scales))
    for p, (arr, per_sample, pad) in enumerate(_comb_planes(w)):
        # Zero-pad small images so a 1 % scale step moves the comb by about one frequency bin.
        norm = _norm_power(arr, pad)
        h, ww = norm.shape[0], 2 * (norm.shape[1] - 1)
        cy, cx = lay.comb[p]
        fyy = per_sample * cy[None, :] / scales[:, None]
        fxx = per_sample * cx[None, :] / scales[:, None]
        ok = (np.abs(fyy) < 0.5) & (fxx < 0.5)
        iy = np.rint(fyy * h).astype(np.int64) % h
        ix = np.minimum(np.rint(fxx * ww).astype(np.int64), ww // 2)
        vals = np.where(ok, norm[iy, ix], 0.0)
        cnt = np.maximum(ok.sum(1), 1)
        score += (vals.sum(1) / cnt - 1.0) * np.sqrt(cnt)
    picks: list[float] = []
    for o in np.argsort(score)[::-1]:
        if all(abs(math.log(scales[o] / p)) > 0.02 for p in picks):
            picks.append(float(scales[o]))
        if len(picks) == k:
            break
    return picks


def _comb_score(
    planes: list[tuple[np.ndarray, float, int]], lay: Layout, angles: np.ndarray, scales: np.ndarray
) -> np.ndarray:
    """(angles, scales) score of the sync frequencies, turned by each angle and shrunk by each scale."""
    th = np.deg2rad(angles)[:, None, None]
    score = np.zeros((len(angles), len(scales)))
    for p, (norm, per_sample) in enumerate((n, ps) for n, ps, _ in planes):
        h, ww = norm.shape[0], 2 * (norm.shape[1] - 1)
        cy, cx = lay.comb[p]
        fy0 = per_sample * cy[None, None, :] / scales[None, :, None]
        fx0 = per_sample * cx[None, None, :] / scales[None, :, None]
        fy = np.cos(th) * fy0 - np.sin(th) * fx0
        fx = np.sin(th) * fy0 + np.cos(th) * fx0
        fy = np.where(fx < 0, -fy, fy)  # the real spectrum is symmetric: read the other half-plane
        fx = np.abs(fx)
        ok = (np.abs(fy) < 0.5) & (fx < 0.5)
        iy = np.rint(fy * h).astype(np.int64) % h
        ix = np.minimum(np.rint(fx * ww).astype(np.int64), ww // 2)
        vals = np.where(ok, norm[iy, ix], 0.0)
        cnt = np.maximum(ok.sum(-1), 1)
        score += (vals.sum(-1) / cnt - 1.0) * np.sqrt(cnt)
    return score


def _comb_rotations(lay: Layout, pixels: np.ndarray, k: int = 2) -> list[tuple[float, float]]:
    """(angle in degrees, scale) proposals for a copy turned by a few degrees (a "straightened" photo).

    The sync template's frequencies turn with the picture, so its comb is scored over angles and scales:
    coarsely (0.5°, 1 % steps) on a 3x3-dilated spectrum that tolerates the coarse grid, then finely (0.05°,
    0.25 %) around the best peaks on the exact one. On the bench images every 3-5° turn was found to 0.05°.
    """
    w = whiten(*analysis(half_rgb(pixels)))
    planes = [(_norm_power(arr, pad), ps, pad) for arr, ps, pad in _comb_planes(w)]
    dilated = [(cv2.dilate(n, np.ones((3, 3), np.uint8)), ps, pad) for n, ps, pad in planes]
    angles = np.arange(-_MAX_TURN, _MAX_TURN + 1e-9, 0.5)
    scales = np.exp(np.arange(math.log(_TURN_SCALES[0]), math.log(_TURN_SCALES[1]), 0.01))
    coarse = _comb_score(dilated, lay, angles, scales)
    out: list[tuple[float, float]] = []
    for flat in np.argsort(coarse.ravel())[::-1]:
        i, j = np.unravel_index(int(flat), coarse.shape)
        a0, s0 = float(angles[i]), float(scales[j])
        if any(abs(a0 - a) < 1.0 and abs(math.log(s0 / sc)) < 0.03 for a, sc in out):
            continue
        fa = a0 + np.arange(-0.5, 0.5001, 0.05)
        fs = s0 * np.exp(np.arange(-0.015, 0.01501, 0.0025))
        fine = _comb_score(planes, lay, fa, fs)
        fi, fj = np.unravel_index(int(np.argmax(fine)), fine.shape)
        out.append((float(fa[fi]), float(fs[fj])))
        if len(out) == k:
            break
    return [(a, sc) for a, sc in out if abs(a) >= 0.1]


def _turn(pixels: np.ndarray, angle: float) -> np.ndarray:
    """Undo a turn of ``angle`` degrees about the centre (same size; the corners are reflected in)."""
    h, w = pixels.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -angle, 1.0)
    return cv2.warpAffine(pixels, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


#: The seven other orientations of a picture (mirror copies and quarter turns), each as the operation
#: that undoes it: detection applies it and looks again.
_ORIENTATIONS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("mirrored left-right", lambda a: a[:, ::-1]),
    ("mirrored top-bottom", lambda a: a[::-1]),
    ("turned 90° clockwise", lambda a: np.rot90(a, 1)),
    ("turned 90° anticlockwise", lambda a: np.rot90(a, -1)),
    ("turned 180°", lambda a: a[::-1, ::-1]),
    ("transposed", lambda a: np.swapaxes(a, 0, 1)),
    ("anti-transposed", lambda a: np.rot90(a, 2).swapaxes(0, 1)),
)


def detect(pixels: np.ndarray, *, key: int = DEFAULT_KEY, search: bool = True) -> Detection:
    """Look for a watermark; ``payload`` is set only when the CRC-24 matched.

    ``search=False`` only tries the original scale and orientation (fast path used by ``embed``'s
    self-check). With ``search``, a mark that does not decode as the image stands is looked for at
    other scales, then in the seven mirrored / quarter-turned orientations (at the original scale:
    a phone's "rotate" or "mirror" keeps the size); ``reason`` then says which one it was.
    """
    check_pixels(pixels, for_embed=False)
    lay = layout(key)
    if min(pixels.shape[:2]) < MIN_SIDE // 2:
        return Detection(None, 0.0, 0.0, 1.0, (0.0, 0.0), 0, "image too small to carry a mark")
    found = _detect(pixels, lay, search=search)
    if found.found or not search:
        return found
    tried = found.candidates_tried
    for k, (name, undo) in enumerate(_ORIENTATIONS):
        hit = _detect(np.ascontiguousarray(undo(pixels)), lay, search=False)
        tried += hit.candidates_tried
        if hit.found:
            return replace(hit, candidates_tried=tried, reason=f"found in a copy {name}", orientation=k + 1)
    for angle, scale in _comb_rotations(lay, pixels):
        hit = _detect(_turn(pixels, angle), lay, search=False, scales=(scale,))
        tried += hit.candidates_tried
        if hit.found:
            return replace(hit, candidates_tried=tried, reason=f"found in a copy turned by {angle:.2f}°", angle=angle)
    return replace(found, candidates_tried=tried)


def original_frame(pixels: np.ndarray, det: Detection) -> tuple[np.ndarray, tuple[float, float], np.ndarray | None]:
    """The picture put back where the mark says it was: luma at the marked original's scale and orientation.

    Returns the float32 luma, the offset of its pixel (0, 0) in the original modulo the tile (128 px), and,
    for a turned copy, a mask of where the result shows the picture (its corners are filled in). A crop, a
    resize, a mirror copy, a quarter turn or a few degrees' turn of an output lines up with the output again,
    up to whole tiles. Used to compare the picture with its record's fingerprint.
    """
    check_pixels(pixels, for_embed=False)
    if det.orientation:
        pixels = np.ascontiguousarray(_ORIENTATIONS[det.orientation - 1][1](pixels))
    grey = (
        pixels.astype(np.float32)
        if pixels.ndim == 2
        else cv2.transform(pixels[..., :3].astype(np.float32), YCC[:1])
    )
    valid = None
    if det.angle:
        h, w = grey.shape
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -det.angle, 1.0)
        valid = cv2.warpAffine(np.ones((h, w), np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
        grey = _turn(grey, det.angle)
    if abs(det.scale - 1.0) > 1e-6:
        h, w = grey.shape[:2]
        size = (max(1, round(w / det.scale)), max(1, round(h / det.scale)))
        interp = cv2.INTER_CUBIC if det.scale < 1 else cv2.INTER_AREA
        grey = cv2.resize(grey, size, interpolation=interp)
        if valid is not None:
            valid = cv2.resize(valid, size, interpolation=cv2.INTER_LINEAR)
    period = 2 * TILE
    dy, dx = det.shift
    return grey, ((-2.0 * dy) % period, (-2.0 * dx) % period), valid


def _detect(
    pixels: np.ndarray, lay: Layout, *, search: bool, scales: tuple[float, ...] | None = None
) -> Detection:
    """Scale 1 (or each of ``scales``, refined), then, with ``search``, the comb's scale proposals."""
    half = half_rgb(pixels)
    w_half = whiten(*analysis(half))
    w_full: Whitened | None = None
    tried = 0
    best: tuple[float, float, tuple[float, float]] = (-math.inf, 1.0, (0.0, 0.0))

    def attempt(scale: float, refine: bool) -> Detection | None:
        nonlocal w_full, tried, best
        if scale < _FULLRES_BELOW:
            if w_full is None:  # luma at full resolution, chroma at half
                if pixels.ndim == 2:
                    w_full = whiten(pixels.astype(np.float32), np.zeros((*half.shape, 2), np.float32))
                else:
                    full = pixels[..., :3].astype(np.float32)
                    w_full = whiten(cv2.transform(full, YCC[:1]), cv2.transform(half, YCC[1:]))
            base, s0 = w_full, 2.0 * scale
        else:
            base, s0 = w_half, scale
        grid = s0 * (1.0 + np.array([-0.0025, 0.0, 0.0025])) if refine else [s0]
        scored = [(_sync(lay, fold_spec(base, float(s)))[0][0], float(s)) for s in grid]
        s = max(scored)[1]
        spec = fold_spec(base, s)
        eff = s / 2.0 if base is w_full else s
        for z, dy, dx in _sync(lay, spec, extra=True):
            tried += 1
            if z > best[0]:
                best = (z, eff, (dy, dx))
            soft = soft_bits(lay, spec, dy, dx)
            if not np.any(soft):
                continue
            bits = viterbi(soft)
            if crc24(bits[:PAYLOAD_BITS]) == bits_int(bits[PAYLOAD_BITS:]):
                code = 2.0 * conv_encode(bits) - 1.0
                agree = float(np.sum(soft * code) / (np.sum(np.abs(soft)) + 1e-12))
                return Detection(bits_int(bits[:PAYLOAD_BITS]), max(0.0, agree), z, eff, (dy, dx), tried)
        return None

    hit = None
    for scale in scales or ():
        hit = attempt(scale, refine=True)
        if hit is not None:
            break
    if hit is None and scales is None:
        hit = attempt(1.0, refine=False)
    if hit is None and search:
        for scale in _comb_scales(lay, w_half):
            hit = attempt(scale, refine=True)
            if hit is not None:
                break
    if hit is not None:
        return hit
    z, s, d = best
    return Detection(None, 0.0, z, s, d, tried, "no watermark decoded (CRC did not match)")
