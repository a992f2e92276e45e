"""A robust, keyed fingerprint of an output's picture: is this the picture the record describes?

Why: a watermark only says which record an image *claims*. A mark can be copied onto another picture
(estimate it from a real output, add it elsewhere) or a real output can be re-marked or stripped. So every
record also describes its picture, and ``verify`` compares the submitted image with it.

Two parts, both computed on luma (so grey stays grey, and colour edits do not matter):

* **cells**: the picture cut into ``cell`` x ``cell`` px squares (32 px up to 640 px outputs, 64 px up
  to 1280 px, 128 px above) on the watermark's own 128-px lattice. Per cell, its 8x8 grid of block means,
  the DCT of that grid (the 20 lowest frequencies, no DC, weighted by frequency to undo natural images' 1/f
  fall-off), and 8 signs of keyed random projections of it (SimHash). Flat cells (under 2 grey levels of spread) are
  marked and not compared. Signs of projections ignore the cell's brightness and contrast, and a tone
  curve is close to linear inside one cell, so brightness, contrast, gamma and saturation edits keep them;
  block means survive JPEG, blur and resizing. The watermark's detection tells where the submitted image
  sits in the original (scale, orientation, and the offset modulo its tile), so a crop, a mirror copy, a
  quarter turn or a screenshot is lined up with the record's cells before comparing; only the whole-tile
  offset is searched. Comparing by bit agreement gives a z score against chance: a different picture
  agrees on about half the bits.
* **global**: 63 low DCT frequencies of the 32x32 luma thumbnail, weighted like the cells and turned by a
  keyed orthogonal matrix, 8 bits each. The store keeps these in an index: when no mark decodes (or the
  mark names the wrong record), the index still finds the record of a real output (all eight
  orientations are tried), and the cells confirm it.

Limits: what the fingerprint tolerates it cannot tell apart. Two renders with the same framing that differ
only in exposure or colour (variations of one request can) are one picture to it, and a small local edit
inside an otherwise matching picture moves too few cells to notice.

Privacy: nothing here can be turned back into a picture without the store's key (projections and the
rotation are keyed); with it, the most one could recover is an 8x8-per-cell sketch of block means' signs
or a heavily blurred 8x8-frequency thumbnail. The fingerprint holds no colour.
"""

from __future__ import annotations

import base64
import functools
import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ProvenanceInputError

VERSION = 1
PREFIX = f"fp{VERSION}:"
_GRID = 8  # block means per cell side
_BITS = 8  # projection signs per cell
_FLAT = 2.0  # a cell's block means spread less than this (grey levels, std) carries no bits
_GLOBAL_SIDE = 32
_GLOBAL_N = 8  # low-frequency square of the global DCT (63 coefficients without DC)
#: cells with z >= this over at least MIN_CELLS compared cells are the record's picture. Measured on the
#: watermark bench images: real copies (every bench attack, crops included) z >= 11; another picture carrying
#: a copied mark, best of all placements, z <= 4.6 (mean 2.8).
Z_MATCH = 7.0
MIN_CELLS = 6
#: a picture whose best placement stays under Z_MATCH although some placement compared this many
#: informative cells is not the record's picture (a real copy that size scores z >= 8)
MIN_CELLS_TO_REFUTE = 16
_YW = np.array([0.299, 0.587, 0.114], np.float32)
_MAX_LONG_SIDE_32 = 640
_MAX_LONG_SIDE_64 = 1280


def _cell_freqs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uu, vv = np.mgrid[0:_GRID, 0:_GRID]
    sel = (uu + vv >= 1) & (uu + vv <= 5)
    return uu[sel], vv[sel], np.hypot(uu[sel], vv[sel]).astype(np.float32)


_CU, _CV, _CW = _cell_freqs()
_GU, _GV = (a.ravel()[1:] for a in np.mgrid[0:_GLOBAL_N, 0:_GLOBAL_N])
_GW = np.hypot(_GU, _GV).astype(np.float32)
#: length of the global descriptor
GLOBAL_DIMS = len(_GU)


@functools.lru_cache(maxsize=8)
def _keyed(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The keyed SimHash projections (bits x cell coefficients) and the global rotation (63 x 63)."""
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((_BITS, len(_CU))).astype(np.float32)
    q, r = np.linalg.qr(rng.standard_normal((len(_GU), len(_GU))))
    return proj, (q * np.sign(np.diag(r))).astype(np.float32)


def luma(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma as float32 (greyscale input as is, alpha dropped)."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    return cv2.transform(pixels[..., :3].astype(np.float32), _YW[None, :])


def cell_size(height: int, width: int) -> int:
    """32 px cells up to 640 px outputs, 64 px up to 1280 px, 128 px above: a few hundred cells at most, and
    enough on a small output; each divides the watermark's 128-px tile."""
    long_side = max(height, width)
    return 32 if long_side <= _MAX_LONG_SIDE_32 else 64 if long_side <= _MAX_LONG_SIDE_64 else 128


def _cells(grey: np.ndarray, cell: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per whole cell of ``grey`` (cell grid from its (0, 0)): bits (rows, cols, 8) and informative (rows, cols)."""
    block = cell // _GRID
    rows, cols = grey.shape[0] // cell, grey.shape[1] // cell
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols, _BITS), bool), np.zeros((rows, cols), bool)
    g = np.ascontiguousarray(grey[: rows * cell, : cols * cell], np.float32)
    means = cv2.resize(g, (cols * _GRID, rows * _GRID), interpolation=cv2.INTER_AREA) if block > 1 else g
    tiles = means.reshape(rows, _GRID, cols, _GRID).transpose(0, 2, 1, 3).reshape(-1, _GRID, _GRID)
    # 2-D DCT-II (orthonormal) of every cell's grid at once: D @ tile @ D.T
    d = _dct_matrix(_GRID)
    coef = np.einsum("ij,njk,lk->nil", d, tiles, d)
    kept = coef[:, _CU, _CV]
    spread = np.sqrt(np.maximum(np.sum(coef**2, axis=(1, 2)) - coef[:, 0, 0] ** 2, 0.0)) / _GRID
    proj, _ = _keyed(seed)
    bits = (kept * _CW) @ proj.T > 0
    return bits.reshape(rows, cols, _BITS), (spread >= _FLAT).reshape(rows, cols)


@functools.lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.astype(np.float32)


def global_descriptor(grey: np.ndarray, seed: int) -> np.ndarray:
    """Unit-length, keyed 63-vector of the picture's lowest frequencies (orientation as given)."""
    small = cv2.resize(np.ascontiguousarray(grey, np.float32), (_GLOBAL_SIDE, _GLOBAL_SIDE),
                       interpolation=cv2.INTER_AREA)
    coef = cv2.dct(small)[_GU, _GV] * _GW
    _, rot = _keyed(seed)
    v = rot @ coef
    return (v / (float(np.linalg.norm(v)) + 1e-9)).astype(np.float32)


#: the eight orientations of a picture (as numpy views), in the order :func:`orientation_descriptors` uses
ORIENTATIONS = (
    lambda a: a,
    lambda a: a[:, ::-1],
    lambda a: a[::-1],
    lambda a: a[::-1, ::-1],
    lambda a: np.swapaxes(a, 0, 1),
    lambda a: np.rot90(a, 1),
    lambda a: np.rot90(a, -1),
    lambda a: np.rot90(a, 2).swapaxes(0, 1),
)


def orientation_descriptors(grey: np.ndarray, seed: int) -> np.ndarray:
    """(8, 63) global descriptors of the picture undone by each orientation (a mirrored copy matches row 1)."""
    return np.stack([global_descriptor(np.ascontiguousarray(f(grey)), seed) for f in ORIENTATIONS])


@dataclass(frozen=True)
class Fingerprint:
    """What a record keeps of its picture (see the module docstring)."""

    height: int
    width: int
    cell: int
    glob: np.ndarray  # (63,) int8, the global descriptor x 127
    bits: np.ndarray  # (rows, cols, 8) bool
    informative: np.ndarray  # (rows, cols) bool

    @property
    def global_vector(self) -> np.ndarray:
        v = self.glob.astype(np.float32)
        return v / (float(np.linalg.norm(v)) + 1e-9)

    def encode(self) -> str:
        rows, cols = self.informative.shape
        head = struct.pack(">HHH", self.height, self.width, self.cell)
        body = (
            head
            + self.glob.astype(np.int8).tobytes()
            + np.packbits(self.informative.ravel()).tobytes()
            + np.packbits(self.bits.reshape(rows * cols, _BITS), axis=1).tobytes()
        )
        return PREFIX + base64.b64encode(body).decode()

    @classmethod
    def decode(cls, text: str) -> Fingerprint:
        if not isinstance(text, str) or not text.startswith(PREFIX):
            raise ProvenanceInputError("not an image fingerprint of a known version")
        try:
            raw = base64.b64decode(text[len(PREFIX):], validate=True)
            height, width, cell = struct.unpack(">HHH", raw[:6])
            if cell not in (32, 64, 128):
                raise ValueError(f"cell size {cell}")
            rows, cols = height // cell, width // cell
            n = rows * cols
            pos = 6
            glob = np.frombuffer(raw[pos : pos + len(_GU)], np.int8).copy()
            pos += len(_GU)
            mask_len = (n + 7) // 8
            informative = np.unpackbits(np.frombuffer(raw[pos : pos + mask_len], np.uint8))[:n].astype(bool)
            pos += mask_len
            bits = np.unpackbits(np.frombuffer(raw[pos : pos + n], np.uint8)[:, None], axis=1).astype(bool)
            if len(glob) != len(_GU) or len(informative) != n or bits.shape != (n, _BITS) or pos + n != len(raw):
                raise ValueError("length does not match the header")
        except (ValueError, struct.error) as exc:
            raise ProvenanceInputError(f"image fingerprint is damaged: {exc}") from exc
        return cls(height, width, cell, glob, bits.reshape(rows, cols, _BITS), informative.reshape(rows, cols))


def compute(pixels: np.ndarray, seed: int) -> Fingerprint:
    """The fingerprint of an output (uint8 RGB or grey), keyed by ``seed`` (:attr:`StoreKeys.fingerprint_seed`)."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ProvenanceInputError("a fingerprint needs uint8 pixels shaped (H, W) or (H, W, C)")
    h, w = pixels.shape[:2]
    if max(h, w) > 65535:
        raise ProvenanceInputError(f"image of {w}x{h} is too large to fingerprint")
    grey = luma(pixels)
    cell = cell_size(h, w)
    bits, informative = _cells(grey, cell, seed)
    glob = np.clip(np.rint(global_descriptor(grey, seed) * 127), -127, 127).astype(np.int8)
    return Fingerprint(h, w, cell, glob, bits, informative)


@dataclass(frozen=True)
class Match:
    """How well a picture lined up with a fingerprint matched it, at its best placement."""

    z: float  # bit agreement against chance (a different picture: about 0, sd 1)
    cells: int  # informative cells compared at that placement
    agreement: float  # fraction of bits that agree
    offset: tuple[int, int]  # the original cell that the picture's first whole cell showed
    coverage: int = 0  # the most informative cells any placement compared

    @property
    def same(self) -> bool:
        """The picture is the fingerprint's picture (or an edited copy of it)."""
        return self.cells >= MIN_CELLS and self.z >= Z_MATCH

    @property
    def different(self) -> bool:
        """Enough of the picture was compared, and it is not the fingerprint's picture."""
        return not self.same and self.coverage >= MIN_CELLS_TO_REFUTE


NO_MATCH = Match(0.0, 0, 0.0, (0, 0))


def match(
    fp: Fingerprint,
    grey: np.ndarray,
    seed: int,
    *,
    offset: tuple[float, float] | None = None,
    period: int = 128,
    valid: np.ndarray | None = None,
) -> Match:
    """Compare ``grey`` (luma at the original's scale and orientation) with ``fp``.

    ``offset`` is where ``grey``'s pixel (0, 0) lies in the original, modulo ``period`` (from the
    watermark's detection); the whole-period part is searched. ``None`` means a full-frame copy: offset 0,
    with a search of one cell around it. ``valid`` (same shape, non-zero where ``grey`` shows the picture)
    leaves out cells that reach past a rotated copy's corners.
    """
    c = fp.cell
    oy, ox = (0.0, 0.0) if offset is None else offset
    # shift grey by d = (-offset) mod c, so that its cell grid falls on the original's
    dy, dx = (-oy) % c, (-ox) % c
    m = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
    h, w = grey.shape[:2]
    size = (max(0, w - math.ceil(dx)), max(0, h - math.ceil(dy)))
    if size[0] < c or size[1] < c:
        return NO_MATCH
    shifted = cv2.warpAffine(np.ascontiguousarray(grey, np.float32), m, size, flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    qbits, _ = _cells(shifted, c, seed)
    qrows, qcols = qbits.shape[:2]
    qok = np.ones((qrows, qcols), bool)
    if valid is not None:
        vs = cv2.warpAffine((valid > 0).astype(np.float32), m, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
        vs = vs[: qrows * c, : qcols * c].reshape(qrows, c, qcols, c).min(axis=(1, 3))
        qok = vs > 0.99
    return _best_placement(fp, qbits, qok, step=max(1, period // c), parity=None if offset is None else (
        round(((dy + oy) % period) / c), round(((dx + ox) % period) / c)))


def _best_placement(
    fp: Fingerprint, qbits: np.ndarray, qok: np.ndarray, *, step: int, parity: tuple[int, int] | None
) -> Match:
    """Best placement of the query's cells on the record's: all of them at once by FFT cross-correlation.

    Placement (ky, kx) puts the query's cell (a, b) on the record's cell (a + ky, b + kx). With ``parity``
    only placements congruent to it modulo ``step`` are allowed (the watermark fixed the offset modulo its
    tile); without, only the full-frame ones (|k| <= 1).
    """
    rows, cols = fp.informative.shape
    qrows, qcols = qok.shape
    shape = (rows + qrows - 1, cols + qcols - 1)
    a = fp.informative[..., None] * (2.0 * fp.bits - 1.0)  # (rows, cols, 8), 0 where not compared
    q = qok[..., None] * (2.0 * qbits - 1.0)
    fa = np.fft.rfft2(a, s=shape, axes=(0, 1))
    fq = np.fft.rfft2(q[::-1, ::-1], s=shape, axes=(0, 1))
    signed = np.fft.irfft2(fa * fq, s=shape, axes=(0, 1)).sum(axis=2)  # agree - disagree, per placement
    count = np.fft.irfft2(
        np.fft.rfft2(fp.informative.astype(float), s=shape) * np.fft.rfft2(qok[::-1, ::-1].astype(float), s=shape),
        s=shape,
    )
    cells = np.rint(count).astype(int)
    # index (i, j) of the full correlation is the placement (i - (qrows - 1), j - (qcols - 1))
    ky = np.arange(shape[0])[:, None] - (qrows - 1)
    kx = np.arange(shape[1])[None, :] - (qcols - 1)
    if parity is None:
        allowed = (np.abs(ky) <= 1) & (np.abs(kx) <= 1)
    else:
        allowed = ((ky - parity[0]) % step == 0) & ((kx - parity[1]) % step == 0)
    allowed &= cells > 0
    if not allowed.any():
        return NO_MATCH
    z = np.where(allowed, signed / np.sqrt(np.maximum(cells, 1) * _BITS), -np.inf)
    enough = allowed & (cells >= MIN_CELLS)
    pick = z if not enough.any() else np.where(enough, z, -np.inf)
    i, j = np.unravel_index(int(np.argmax(pick)), pick.shape)
    n = int(cells[i, j])
    agreement = 0.5 + float(signed[i, j]) / (2 * n * _BITS)
    coverage = int(cells[allowed].max())
    return Match(float(z[i, j]), n, agreement, (int(ky[i, 0]), int(kx[0, j])), coverage)


__all__ = [
    "MIN_CELLS",
    "NO_MATCH",
    "ORIENTATIONS",
    "PREFIX",
    "MIN_CELLS_TO_REFUTE",
    "Z_MATCH",
    "GLOBAL_DIMS",
    "Fingerprint",
    "Match",
    "cell_size",
    "compute",
    "global_descriptor",
    "luma",
    "match",
    "orientation_descriptors",
]
