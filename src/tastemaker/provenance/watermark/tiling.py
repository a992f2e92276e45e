"""The keyed layout of the mark's periodic tile: which in-band Fourier unit carries sync or which coded bit.

Separate because embedding and detection must agree on it exactly and nothing else does: a key seeds the
PRNG that assigns each unit (the real or imaginary part of one in-band frequency bin of one plane) to the
sync template or to a coded bit, with a random sign (see the package docstring, "What").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .code import N_CODED

#: Name used in the C2PA soft-binding assertion (``alg``) for this watermark.
ALGORITHM = "org.tastemaker.watermark.tile64-v2"  # v2: luma + chroma planes (v1 marks do not decode)
#: Smallest side we mark (one full tile in image pixels). Below it we refuse (fail closed).
MIN_SIDE = 128
#: Public keyed layout for tests and benchmarks. A provenance store never uses it: it derives its own
#: secret key (``StoreKeys.watermark_key``), since anyone knowing the key can write any record id.
DEFAULT_KEY = 0x7A57E_3A4E5

TILE = 64  # tile period in DWT-approximation samples (= 128 image pixels)
NP = 3  # planes: Y, Cb, Cr
# per plane: tile-frequency radius band, cycles per tile (luma: periods of 6.4-14 image pixels;
# chroma: 10.7-32 px, which JPEG's chroma subsampling and coarse chroma quantisation keep)
_BANDS = ((9.0, 20.0), (4.0, 12.0), (4.0, 12.0))
_SYNC_FRACTION = 0.25


@dataclass(frozen=True)
class Layout:
    """Every unit of the tile: its plane, frequency bin, part, group (sync or coded bit) and sign."""

    plane: np.ndarray  # plane of each unit (0 = Y, 1 = Cb, 2 = Cr)
    unit_bin: np.ndarray  # flat index into the (TILE, TILE//2+1) rfft2 grid
    unit_imag: np.ndarray  # bool: imaginary part (else real)
    group: np.ndarray  # -1 = sync, else coded-bit index
    sign: np.ndarray  # +-1 spreading sign
    sync_spec: np.ndarray  # complex (TILE, TILE//2+1, planes): the sync template's spectrum
    comb: tuple[tuple[np.ndarray, np.ndarray], ...]  # per plane: sync frequencies (cycles/sample) y, x


@functools.lru_cache(maxsize=8)
def layout(key: int) -> Layout:
    """The tile's layout for ``key`` (cached): embedding and detection must use the same one."""
    rng = np.random.default_rng(key)
    ky = np.fft.fftfreq(TILE, 1 / TILE)[:, None]
    kx = np.arange(TILE // 2 + 1)[None, :]
    radius = np.hypot(ky, kx)
    planes, bins, imag, groups = [], [], [], []
    comb = []
    for p, (lo, hi) in enumerate(_BANDS):
        mask = (radius >= lo) & (radius <= hi) & (kx >= 1) & (ky != 0)
        b = np.flatnonzero(mask.ravel())
        n = 2 * len(b)
        perm = rng.permutation(n)
        n_sync = int(_SYNC_FRACTION * n)
        g = np.empty(n, np.int32)
        g[perm[:n_sync]] = -1
        # coded bits are dealt round-robin from a per-plane random start, so every plane carries
        # every coded bit about equally often
        g[perm[n_sync:]] = (np.arange(n - n_sync) + int(rng.integers(N_CODED))) % N_CODED
        planes.append(np.full(n, p, np.int32))
        bins.append(np.repeat(b, 2))
        imag.append(np.tile([False, True], len(b)))
        groups.append(g)
        sync_bins = np.unique(np.repeat(b, 2)[g < 0])
        comb.append(
            (
                np.broadcast_to(ky, mask.shape).ravel()[sync_bins] / TILE,
                np.broadcast_to(kx, mask.shape).ravel()[sync_bins] / TILE,
            )
        )
    plane = np.concatenate(planes)
    unit_bin = np.concatenate(bins)
    unit_imag = np.concatenate(imag)
    group = np.concatenate(groups)
    sign = rng.choice(np.array([-1.0, 1.0]), len(plane))
    spec = _units_to_spectrum(plane, unit_bin, unit_imag, np.where(group < 0, sign, 0.0))
    return Layout(plane, unit_bin, unit_imag, group, sign, spec, tuple(comb))


def _units_to_spectrum(
    plane: np.ndarray, unit_bin: np.ndarray, unit_imag: np.ndarray, values: np.ndarray
) -> np.ndarray:
    spec = np.zeros(TILE * (TILE // 2 + 1) * NP, np.complex128)
    np.add.at(spec, unit_bin * NP + plane, np.where(unit_imag, 1j * values, values))
    return spec.reshape(TILE, TILE // 2 + 1, NP)


def tile_from_units(lay: Layout, values: np.ndarray) -> np.ndarray:
    """The (TILE, TILE, planes) spatial tile whose units have ``values`` (what embedding repeats)."""
    spec = _units_to_spectrum(lay.plane, lay.unit_bin, lay.unit_imag, values)
    return np.fft.irfft2(spec, s=(TILE, TILE), axes=(0, 1)).astype(np.float32)


def raw_units(lay: Layout, spectrum: np.ndarray) -> np.ndarray:
    """Each unit's value read off a fold's spectrum (both embedding and the soft bits read units)."""
    flat = spectrum.reshape(-1)[lay.unit_bin * NP + lay.plane]
    return np.where(lay.unit_imag, flat.imag, flat.real)
