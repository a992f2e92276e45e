"""Embedding: the record id written into a picture at a target PSNR, then read back (fail closed).

Separate from :mod:`.detection` because it is its own procedure: the mark's planes and their shares of the
error, the texture mask, informed embedding, the margin it predicts for itself (on each half of the picture
and after a JPEG round trip) and the stronger mark it gives a picture below target (see the package
docstring, "Strength"). It calls the detector for its self-check.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ...errors import ProvenanceInputError, WatermarkError, WatermarkTooSmallError
from .code import PAYLOAD_BITS, codeword
from .detection import detect
from .planes import (
    DIRS,
    Whitened,
    analysis,
    approx,
    check_pixels,
    fold_spec,
    half_rgb,
    soft_bits,
    synth,
    whiten,
)
from .tiling import DEFAULT_KEY, MIN_SIDE, NP, TILE, Layout, layout, raw_units, tile_from_units

_CHROMA_SHARE = 0.3  # fraction of the mark's RGB MSE spent on the two chroma planes
_ISS_LAMBDA = 0.5
_MARGIN_TARGET = 3.0
_JPEG_CHECK = 50  # embed predicts the margin after a JPEG round trip at this quality (0: off)
_COST = (DIRS**2).sum(1) / 3.0  # RGB mean-square error per unit plane amplitude squared

#: an image is grey when under 1 % of its (quarter-resolution) pixels have |(Cb, Cr)| over 3 (8-bit units);
#: toned when those pixels' chroma varies only along their mean direction: the robust spread across it
#: (1.4826 x median absolute deviation) under this many units. A sepia print measures 0.11; the demo
#: board's strongly graded photographs 0.42-10, ink on cream paper 0.73-0.88, watercolours 2-6.
_CHROMA_MIN = 3.0
_TONED_SPREAD = 0.3


def chroma_axis(cq: np.ndarray) -> np.ndarray | None:
    """The one chroma direction a grey or toned image allows ((0, 0) for grey), or None for a colour image.

    The mark's chroma part is then confined to it: a black-and-white picture gets no colour noise and a
    sepia one keeps its single hue (only its saturation carries the mark). Detection needs no change: it
    weights each plane by the signal it finds.
    """
    c = cq.reshape(-1, 2).astype(np.float64)
    coloured = c[np.hypot(c[:, 0], c[:, 1]) > _CHROMA_MIN]
    if len(coloured) < max(1, 0.01 * len(c)):
        return np.zeros(2)
    mean = coloured.mean(0)
    u = mean / (float(np.linalg.norm(mean)) + 1e-12)
    across = coloured @ np.array([-u[1], u[0]])
    if 1.4826 * float(np.median(np.abs(across - np.median(across)))) < _TONED_SPREAD:
        return u
    return None


def _mask(y: np.ndarray) -> np.ndarray:
    """Texture mask from the luma approximation: more mark where busy texture hides it.

    ``(local activity + 2) ** 0.35``; the activity (a wide window) is pooled one level down.
    """
    res = y - cv2.GaussianBlur(y, (0, 0), 2.0)
    act2 = cv2.GaussianBlur(approx(res * res), (0, 0), 2.0)
    act2 = cv2.resize(act2, (y.shape[1], y.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.exp(0.35 * cv2.log(np.sqrt(np.maximum(act2, 0.0)) + 2.0))


def _margin(lay: Layout, w: Whitened, code_signs: np.ndarray) -> float:
    """Worst soft-bit SNR (mean/std of soft x codeword) over the four half-image crops.

    A crop keeps half the tiles and loses the informed-embedding cancellation, so this predicts
    how much room a marked image has before the harder attacks break it.
    """
    wy, wc = w
    h, ww = (n // 4 * 2 for n in wy.shape)  # even split points, so chroma splits at the same place
    worst = math.inf
    for y0, y1, x0, x1 in ((0, None, 0, ww), (0, None, ww, None), (0, h, 0, None), (h, None, 0, None)):
        crop = (
            wy[y0:y1, x0:x1],
            wc[y0 // 2 : None if y1 is None else y1 // 2, x0 // 2 : None if x1 is None else x1 // 2],
        )
        # the crop starts at (y0, x0): the tile appears shifted by -(y0, x0) in the fold
        v = soft_bits(lay, fold_spec(crop, 1.0), -(y0 % TILE), -(x0 % TILE)) * code_signs
        worst = min(worst, float(v.mean() / (v.std() + 1e-12)))
    return worst


def _jpeg_margin(lay: Layout, marked: np.ndarray, code_signs: np.ndarray) -> float:
    """Soft-bit SNR after a JPEG round trip at ``_JPEG_CHECK`` quality (the attack chroma suffers most from)."""
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(marked, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_CHECK])
    # libjpeg's half-size decode (scaled IDCT) stands in for the Haar approximation here: 3x faster
    decoded = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_2)
    if decoded is None:  # pragma: no cover - OpenCV decoding its own output
        return 0.0
    half = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    v = soft_bits(lay, fold_spec(whiten(*analysis(half.astype(np.float32))), 1.0), 0.0, 0.0) * code_signs
    return float(v.mean() / (v.std() + 1e-12))


def embed(
    pixels: np.ndarray,
    payload: int,
    *,
    key: int = DEFAULT_KEY,
    psnr_db: float = 40.0,
    min_psnr_db: float = 38.0,
    verify: bool = True,
    keep_colour: bool = True,
) -> np.ndarray:
    """Return a copy of ``pixels`` (H, W, 3 uint8 RGB) carrying ``payload`` (0 <= payload < 2**40).

    With ``keep_colour`` a grey image is marked in luma only and a toned one (sepia...) only along its hue
    (:func:`chroma_axis`); should that mark not read back, the image is marked in all planes instead
    (a faint colour noise is better than no provenance).

    The mark is scaled to ``psnr_db``; images whose texture leaves too little detection margin get
    up to ``min_psnr_db`` instead. Deterministic for a given image, payload and key. Raises
    :class:`WatermarkTooSmallError` for images with a side under ``MIN_SIDE`` and, when ``verify``
    (the default), reads the mark back and raises :class:`WatermarkError` if it does not decode:
    we never hand back an unmarked image.
    """
    check_pixels(pixels, for_embed=True)
    if not isinstance(payload, int) or isinstance(payload, bool) or not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ProvenanceInputError(f"payload must be an int in [0, 2**{PAYLOAD_BITS}), got {payload!r}")
    if not 20.0 <= psnr_db <= 60.0:
        raise ProvenanceInputError(f"psnr_db must be within 20..60 dB, got {psnr_db}")
    height, width = pixels.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise WatermarkTooSmallError(
            f"image is {width}x{height}; the watermark needs both sides >= {MIN_SIDE} px. "
            "Generate at a larger size (the image was not returned unmarked)."
        )
    lay = layout(key)
    code_signs = 2.0 * codeword(payload) - 1.0
    want = lay.sign * np.where(lay.group < 0, 1.0, code_signs[np.maximum(lay.group, 0)])
    h2, w2 = height // 2, width // 2
    hy, cq = analysis(half_rgb(pixels))
    mask = _mask(hy)
    toning = chroma_axis(cq) if keep_colour else None
    reps = (h2 // TILE + 1, w2 // TILE + 1)
    # RGB mean-square error of the whole mark, and each plane's share of it
    mse = (255.0 / 10 ** (psnr_db / 20.0)) ** 2 * (height * width) / (4 * h2 * w2)
    share = (1.0 - _CHROMA_SHARE, _CHROMA_SHARE / 2, _CHROMA_SHARE / 2)
    if toning is not None and not toning.any():
        share = (1.0, 0.0, 0.0)  # grey: the whole mark in luma

    def plane_delta(values: np.ndarray) -> list[np.ndarray]:
        """The mark's Y, Cb, Cr amplitudes at half resolution, each plane at its share of the MSE."""
        tile = tile_from_units(lay, values)
        out = []
        for p in range(NP):
            pat = np.tile(tile[..., p], reps)[:h2, :w2] * mask
            flat = pat.ravel()
            ms = float(np.dot(flat, flat)) / flat.size + 1e-12
            out.append(pat * np.float32(math.sqrt(mse * share[p] / (_COST[p] * ms))))
        if toning is not None:  # keep a grey image grey and a toned one in its hue: chroma only along its axis
            along = out[1] * np.float32(toning[0]) + out[2] * np.float32(toning[1])
            out[1], out[2] = along * np.float32(toning[0]), along * np.float32(toning[1])
        return out

    def whitened(d: list[np.ndarray]) -> Whitened:
        return whiten(hy + d[0], cq + approx(cv2.merge(d[1:])))

    values = want.copy()
    d = plane_delta(values)
    # Informed embedding: cancel part of the host's own projection on the payload units (per plane).
    host = raw_units(lay, fold_spec(whiten(hy, cq), 1.0))
    resp = raw_units(lay, fold_spec(whitened(d), 1.0)) - host
    for p in range(NP):
        sel = lay.plane == p
        gain = float(np.sum(resp[sel] * values[sel]) / np.sum(values[sel] ** 2))
        if gain > 0:
            pay = sel & (lay.group >= 0)
            values[pay] -= _ISS_LAMBDA * (host[pay] + resp[pay] - gain * values[pay]) / gain
    d = plane_delta(values)
    # Robustness-targeted strength: textures that fight the mark get more of it, down to the floor.
    floor = min(psnr_db, min_psnr_db + 0.1)  # + rounding headroom: the floor holds on the uint8 result

    def apply(boost: float) -> np.ndarray:
        # Y, Cb, Cr amplitudes -> RGB, rounded, each half-resolution sample to its 2x2 block (inverse Haar)
        rgb_delta = cv2.transform(cv2.merge(d), DIRS.T * np.float32(boost))
        delta = synth(np.rint(rgb_delta).astype(np.int16))
        out = pixels.copy()
        out[: 2 * h2, : 2 * w2] = cv2.add(pixels[: 2 * h2, : 2 * w2], delta, dtype=cv2.CV_8U)
        return out

    margin = _margin(lay, whitened(d), code_signs)
    marked = apply(1.0)
    if _JPEG_CHECK:
        margin = min(margin, _jpeg_margin(lay, marked, code_signs))
    if margin < _MARGIN_TARGET and psnr_db > floor:
        marked = apply(min(_MARGIN_TARGET / max(margin, 1e-3), 10 ** ((psnr_db - floor) / 20.0)))
    if verify:
        got = detect(marked, key=key, search=False)
        if got.payload != payload and toning is not None:
            return embed(pixels, payload, key=key, psnr_db=psnr_db, min_psnr_db=min_psnr_db, keep_colour=False)
        if got.payload != payload:
            raise WatermarkError(
                f"watermark self-check failed on a {width}x{height} image (read back {got.payload}, "
                f"sync z {got.sync_z:.1f}); the image was not returned. Try a larger output size."
            )
    return marked


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images of the same shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
