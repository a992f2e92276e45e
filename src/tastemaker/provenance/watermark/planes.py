"""The image side of the mark, shared by embedding and detection: planes, whitening, the tile fold, soft bits.

Separate from :mod:`.embedding` and :mod:`.detection` because both run the same analysis: the Haar
approximation (:func:`approx`, :func:`synth`), its BT.601 luma and chroma (:func:`analysis`), whitening
(:func:`whiten`), the fold of every tile onto one and its spectrum (:func:`fold_spec`), and the soft
coded bits read from it (:func:`soft_bits`). Embedding measures its own margin with the detector's eyes.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...errors import ProvenanceInputError
from .code import N_CODED
from .tiling import NP, TILE, Layout, raw_units

# per plane kind (luma; chroma, whitened one Haar level down): high-pass sigma, activity window
# sigma, activity floor
_WHITEN = ((1.5, 1.5, 0.5), (2.5, 3.0, 0.5))
_UNIT_CLIP = 1.5
#: RGB -> Y, Cb, Cr (BT.601, chroma centred on 0)
YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
# RGB direction each plane's mark is added along: luma equally to R, G and B (no colour shift);
# chroma along the inverse-YCbCr columns (no luma change, no Cb <-> Cr cross-talk).
DIRS = np.array([[1.0, 1.0, 1.0], [0.0, -0.344136, 1.772], [1.402, -0.714136, 0.0]], np.float32)


def check_pixels(pixels: np.ndarray, *, for_embed: bool) -> None:
    """Refuse what is not uint8 pixels of a shape the caller takes (embedding: RGB; detection: also grey, RGBA)."""
    if not isinstance(pixels, np.ndarray):
        raise ProvenanceInputError(f"expected a numpy array of pixels, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise ProvenanceInputError(f"expected uint8 pixels, got dtype {pixels.dtype}; convert with .astype")
    ok = (
        pixels.ndim == 3 and pixels.shape[2] == 3
        if for_embed
        else pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))
    )
    if not ok:
        want = "(H, W, 3) RGB" if for_embed else "(H, W), (H, W, 3) or (H, W, 4)"
        raise ProvenanceInputError(f"expected pixels shaped {want}, got {pixels.shape}")


def analysis(half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma of a half-resolution float RGB (or greyscale) image, and its chroma one level further down.

    BT.601 Y and (Cb, Cr) centred on 0; greyscale input has zero chroma. Chroma is computed after
    the second downsampling (the Haar mean is linear, so the order does not matter) because it is
    only ever used there.
    """
    if half.ndim == 2:
        quarter = approx(half)
        return half, np.zeros((*quarter.shape, 2), np.float32)
    return cv2.transform(half, YCC[:1]), cv2.transform(approx(half), YCC[1:])


def half_rgb(pixels: np.ndarray) -> np.ndarray:
    """The Haar approximation of the image in float (RGB, or greyscale for 2-D input; alpha dropped)."""
    return approx(pixels[..., :3].astype(np.float32) if pixels.ndim == 3 else pixels.astype(np.float32))


def approx(y: np.ndarray) -> np.ndarray:
    """Haar DWT approximation band scaled to the pixel range: ``pywt.dwt2(y, "haar")[0] / 2``.

    Computed with OpenCV's area resize, which is the same 2x2 mean (a test pins the equality to
    pywt) and ~20x faster than pywt, which also computes the three detail bands we do not use.
    Works per channel on (H, W, C) arrays.
    """
    h, w = y.shape[:2]
    h2, w2 = h // 2, w // 2
    even = np.ascontiguousarray(y[: 2 * h2, : 2 * w2], np.float32)
    return cv2.resize(even, (w2, h2), interpolation=cv2.INTER_AREA)


def synth(a: np.ndarray) -> np.ndarray:
    """Inverse Haar DWT with zero detail bands of an approximation scaled like ``approx``.

    Equals ``pywt.idwt2((2 * a, (None, None, None)), "haar")`` (pinned by a test): each sample
    becomes a 2x2 block. Works per channel on (H, W, C) arrays.
    """
    h, w = a.shape[:2]
    return cv2.resize(a, (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)


def _whiten1(a: np.ndarray, hp: float, win: float, floor: float) -> np.ndarray:
    """Local high-pass divided by local activity: equalises busy and flat regions, clips outliers."""
    res = cv2.subtract(a, cv2.GaussianBlur(a, (0, 0), hp))
    act = cv2.sqrt(cv2.GaussianBlur(cv2.multiply(res, res), (0, 0), win))
    out = cv2.divide(res, act + np.float32(floor))  # (cv2.add with a scalar would only touch channel 0)
    return np.clip(out, -3.0, 3.0, out=out)


Whitened = tuple[np.ndarray, np.ndarray]  # luma (h, w) and chroma at half that resolution (h/2, w/2, 2)


def whiten(y: np.ndarray, c: np.ndarray) -> Whitened:
    """Whitened luma and chroma; ``c`` is already one Haar level below ``y``.

    (The chroma band is under a quarter of luma's Nyquist, so the coarser grid loses nothing.)
    """
    return _whiten1(y, *_WHITEN[0]), _whiten1(c, *_WHITEN[1])


def _fold(w: np.ndarray, scale: float, tile: int) -> np.ndarray:
    """Resample ``w`` by 1/scale and sum it modulo the tile period (per channel)."""
    if abs(scale - 1.0) > 1e-9:
        size = (max(1, round(w.shape[1] / scale)), max(1, round(w.shape[0] / scale)))
        w = cv2.resize(w, size, interpolation=cv2.INTER_LINEAR if scale < 1 else cv2.INTER_AREA)
    h, ww = w.shape[:2]
    ph, pw = -(-h // tile) * tile, -(-ww // tile) * tile
    if (ph, pw) != (h, ww):
        w = np.pad(w, ((0, ph - h), (0, pw - ww)) + ((0, 0),) * (w.ndim - 2))
    return w.reshape(ph // tile, tile, pw // tile, tile, *w.shape[2:]).sum(axis=(0, 2))


_HT = TILE // 2
# A chroma sample one level down sits half a luma sample right/down of its index: undo that shift.
_CHROMA_PHASE = np.exp(
    -2j * np.pi * 0.5 * (np.fft.fftfreq(_HT, 1 / _HT)[:, None] + np.arange(_HT // 2 + 1)[None, :]) / TILE
)[..., None]


def fold_spec(w: Whitened, scale: float) -> np.ndarray:
    """(TILE, TILE//2+1, planes) spectrum of the tile fold: luma on TILE, chroma on TILE/2 samples."""
    spec = np.zeros((TILE, TILE // 2 + 1, NP), np.complex128)
    spec[..., 0] = np.fft.rfft2(_fold(w[0], scale, TILE))
    cs = np.fft.rfft2(_fold(w[1], scale, _HT), axes=(0, 1)) * _CHROMA_PHASE
    q = _HT // 2  # chroma bins beyond q cycles/tile (its Nyquist) are left empty
    spec[:q, : q + 1, 1:] = cs[:q, : q + 1]
    spec[TILE - q + 1 :, : q + 1, 1:] = cs[_HT - q + 1 :, : q + 1]
    return spec


_KY = np.fft.fftfreq(TILE, 1 / TILE)[:, None, None]
_KX = np.arange(TILE // 2 + 1)[None, :, None]


def soft_bits(lay: Layout, spec: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Soft coded bits (> 0 means 1): every unit of every plane, weighted by its plane's SNR.

    Per plane, the sync units (whose values are known) give the mark's amplitude ``mu`` and the
    noise ``sd`` robustly (median, MAD); each unit adds ``clip(u / sd) * mu / sd`` to its coded bit:
    maximum-ratio combining of all tile copies and all three planes, so a plane that an image or
    an attack destroyed (grass texture in luma, JPEG in chroma, a greyscale input) drops out by
    itself, with clipping against heavy-tailed texture. (Weights per frequency ring were tried:
    fewer sync units per estimate made them noisier and decoding worse.)
    """
    spec = spec * np.exp(2j * np.pi * (_KY * dy + _KX * dx) / TILE)
    u = raw_units(lay, spec) * lay.sign
    sync = lay.group < 0
    llr = np.zeros_like(u)
    for p in range(NP):
        sel = lay.plane == p
        s = u[sel & sync]
        mu = float(np.median(s))
        sd = float(np.median(np.abs(s - mu))) * 1.4826
        if mu <= 0 or sd <= 1e-9:
            continue  # no mark in this plane at this shift
        snr = mu / sd
        lim = _UNIT_CLIP + snr
        llr[sel] = np.clip(u[sel] / sd, -lim, lim) * snr
    pay = ~sync
    return np.bincount(lay.group[pay], weights=llr[pay], minlength=N_CODED)
