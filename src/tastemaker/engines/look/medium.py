"""Medium transfer: the board's own pins as exemplars for guided patch synthesis.

The output is re-drawn from small patches of an exemplar pin (a medoid of the chosen mode), chosen so
that (a) the *guide* — the person's luminance, matched to the exemplar's tone distribution and blurred
to the scale of the medium's marks — agrees with the exemplar's own blurred luminance under the patch,
and (b) neighbouring patches agree with each other. That is the family of Image Analogies (Hertzmann
et al. 2001), texture optimisation (Kwatra et al. 2005) and StyLit / Fišer et al. 2016-17: hatching
appears where the person is dark, paper where they are light, brush marks follow the shading.

How it runs, coarse to fine over a three-level pyramid (the finest at <= 512 px; the engine upsamples
the result guided by the full-resolution render):

* **Features.** Every 5x5 patch is described by its guide values and its colour (Lab, chroma weighted
  down), each part projected by a PCA fitted on the exemplar (8 + 16 numbers). The distance between a
  target and an exemplar patch is ``wg² |guide|² + |colour|²``; ``wg`` is per pixel, higher on the face
  so its structure (eyes, brows, mouth) survives.
* **Search, coarsest level.** Exact-enough k-nearest neighbours over every exemplar patch with a faiss
  HNSW index (built once per exemplar and cached), from the current estimate (initially the guide).
* **Search, finer levels.** No global search: candidates are the coarse match upsampled, the matches of
  the eight neighbours shifted by their offset (coherence, as in Ashikhmin 2001) and the exemplar
  positions most similar to those (k-coherence, Tong et al. 2002), all scored exactly in NumPy. This is
  not PatchMatch (no random search, whose combination with propagation Adobe patented); it is the older
  coherence search, several times faster here than a global index at every level.
* **Voting.** Each pixel is the Gaussian-weighted mean of the overlapping matched patches (patches on a
  stride-2 grid at the finest level).

Everything is deterministic for a given exemplar, target and seed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...errors import MissingDependencyError

PATCH = 5
RADIUS = PATCH // 2
#: chroma counts less than luminance when comparing patches (marks are mostly luminance)
CHANNEL_WEIGHTS = np.array([1.0, 0.55, 0.55], np.float32)
GUIDE_DIMS = 8
STYLE_DIMS = 16
#: k-coherence: similar exemplar positions remembered per position (finer levels)
K_COHERENCE = 4
LEVELS = 3
_BUILD_LOCK = threading.Lock()


def _faiss() -> object:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - core dependency
        raise MissingDependencyError("medium transfer (patch search)", "core", "faiss-cpu") from exc
    return faiss


def _patches(img: np.ndarray) -> np.ndarray:
    """(h, w, c*25) patch vectors around every pixel (reflect-padded), as one contiguous array."""
    if img.ndim == 2:
        img = img[..., None]
    pad = cv2.copyMakeBorder(img, RADIUS, RADIUS, RADIUS, RADIUS, cv2.BORDER_REFLECT_101)
    if pad.ndim == 2:
        pad = pad[..., None]
    win = sliding_window_view(pad, (PATCH, PATCH), axis=(0, 1))  # h, w, c, P, P
    h, w = img.shape[:2]
    return np.ascontiguousarray(win).reshape(h, w, -1)


def _pca(x: np.ndarray, dims: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sub = x[rng.choice(len(x), size=min(len(x), 12000), replace=False)].astype(np.float64)
    mean = sub.mean(0)
    _, _, vt = np.linalg.svd(sub - mean, full_matrices=False)
    return mean.astype(np.float32), np.ascontiguousarray(vt[:dims].T.astype(np.float32))


def guide_sigma(level_side: int) -> float:
    """Blur of the guide channel: the scale below which the exemplar's marks are free to form."""
    return max(0.8, 1.4 * level_side / 512)


@dataclass
class ExemplarLevel:
    """One pyramid level of an exemplar: its Lab pixels and projected patch features."""

    lab: np.ndarray  # (h, w, 3) float32
    guide: np.ndarray  # (h, w) float32, blurred L
    g_mean: np.ndarray
    g_proj: np.ndarray
    s_mean: np.ndarray
    s_proj: np.ndarray
    fg: np.ndarray  # (h, w, GUIDE_DIMS)
    fs: np.ndarray  # (h, w, STYLE_DIMS)
    #: (h, w, K) flat indices of similar positions (k-coherence), or None
    similar: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.lab.shape[0], self.lab.shape[1]


@dataclass
class Exemplar:
    """A pin prepared for synthesis (pyramid, features, index); built once and reused."""

    key: str
    levels: list[ExemplarLevel]  # coarse -> fine
    tone: np.ndarray  # quantiles 0..100 (101 values) of the finest level's guide (blurred L)
    index: object  # faiss index over the coarsest level's valid positions
    coords: np.ndarray  # (n, 2) positions of the index entries
    build_s: float = 0.0
    meta: dict[str, float] = field(default_factory=dict)


def _features(guide: np.ndarray, lab: np.ndarray, lv: ExemplarLevel) -> tuple[np.ndarray, np.ndarray]:
    pg = _patches(guide)
    ps = _patches(lab * CHANNEL_WEIGHTS)
    fg = (pg - lv.g_mean) @ lv.g_proj
    fs = (ps - lv.s_mean) @ lv.s_proj
    return fg, fs


def prepare_exemplar(rgb: np.ndarray, *, side: int, key: str = "", guide_weight: float = 1.6) -> Exemplar:
    """Build the pyramid, features and coarse index for an exemplar image (uint8 RGB).

    ``side`` is the finest level's longest side; the exemplar is shrunk (never enlarged) to it.
    """
    t0 = time.perf_counter()
    faiss = _faiss()
    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
    img = cv2.resize(rgb, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else rgb
    lab = cv2.cvtColor(img.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    rng = np.random.default_rng(0)
    levels: list[ExemplarLevel] = []
    for k in range(LEVELS):
        s = 2 ** (LEVELS - 1 - k)
        lv_lab = lab if s == 1 else cv2.resize(
            lab, (max(8, lab.shape[1] // s), max(8, lab.shape[0] // s)), interpolation=cv2.INTER_AREA
        )
        g = cv2.GaussianBlur(lv_lab[..., 0], (0, 0), guide_sigma(max(lv_lab.shape[:2])))
        pg = _patches(g).reshape(-1, PATCH * PATCH)
        ps = _patches(lv_lab * CHANNEL_WEIGHTS).reshape(-1, 3 * PATCH * PATCH)
        g_mean, g_proj = _pca(pg, GUIDE_DIMS, rng)
        s_mean, s_proj = _pca(ps, STYLE_DIMS, rng)
        hh, ww = lv_lab.shape[:2]
        fg = ((pg - g_mean) @ g_proj).reshape(hh, ww, -1)
        fs = ((ps - s_mean) @ s_proj).reshape(hh, ww, -1)
        levels.append(ExemplarLevel(lv_lab, g, g_mean, g_proj, s_mean, s_proj, fg, fs))
    coarse = levels[0]
    hh, ww = coarse.shape
    yy, xx = np.mgrid[RADIUS : hh - RADIUS, RADIUS : ww - RADIUS]
    coords = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.int32)
    x = np.concatenate([coarse.fg[yy, xx].reshape(len(coords), -1) * guide_weight,
                        coarse.fs[yy, xx].reshape(len(coords), -1)], 1).astype(np.float32)
    index = faiss.IndexHNSWFlat(x.shape[1], 16)  # type: ignore[attr-defined]
    index.hnsw.efConstruction = 40
    index.add(x)
    index.hnsw.efSearch = 24
    # k-coherence sets for the finer levels, from the same features (search each level's own positions)
    if K_COHERENCE:
        for lv in levels[1:]:
            lv.similar = _similar_sets(lv, guide_weight, faiss)
    tone = np.percentile(levels[-1].guide, np.arange(101)).astype(np.float32)
    return Exemplar(key=key, levels=levels, tone=tone, index=index, coords=coords,
                    build_s=time.perf_counter() - t0)


def _similar_sets(lv: ExemplarLevel, guide_weight: float, faiss: object) -> np.ndarray:
    """For every position, the K most similar other positions (on a stride-2 subset, for speed)."""
    h, w = lv.shape
    yy, xx = np.mgrid[RADIUS : h - RADIUS : 2, RADIUS : w - RADIUS : 2]
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    x = np.concatenate([lv.fg[yy, xx].reshape(len(pos), -1) * guide_weight,
                        lv.fs[yy, xx].reshape(len(pos), -1)], 1).astype(np.float32)
    index = faiss.IndexHNSWFlat(x.shape[1], 12)  # type: ignore[attr-defined]
    index.hnsw.efConstruction = 24
    index.add(x)
    index.hnsw.efSearch = 16
    allx = np.concatenate([lv.fg.reshape(h * w, -1) * guide_weight, lv.fs.reshape(h * w, -1)], 1).astype(np.float32)
    _, nn = index.search(allx, K_COHERENCE + 1)
    nn = np.where(nn < 0, 0, nn)
    flat = pos[nn[:, 1:], 0] * w + pos[nn[:, 1:], 1]
    return flat.reshape(h, w, K_COHERENCE).astype(np.int32)


def match_tone(L: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """Map luminance ``L`` so its distribution is the exemplar's (quantile matching)."""
    src = np.percentile(L, np.arange(101)).astype(np.float64)
    src = np.maximum.accumulate(src + np.arange(101) * 1e-6)
    return np.interp(L, src, tone.astype(np.float64)).astype(np.float32)


def contour_lines(L: np.ndarray, side: int) -> np.ndarray:
    """Line strength in 0..1 where luminance has an edge worth drawing (a thresholded DoG, as in XDoG)."""
    sigma = max(0.6, 0.9 * side / 512)
    g1 = cv2.GaussianBlur(L, (0, 0), sigma)
    g2 = cv2.GaussianBlur(L, (0, 0), sigma * 1.6)
    d = g2 - g1  # positive on the dark side of an edge
    return np.clip((d - 1.0) / 6.0, 0.0, 1.0).astype(np.float32)


def _vote(lab: np.ndarray, nnf: np.ndarray, shape: tuple[int, int], stride: int) -> np.ndarray:
    """Each pixel: the Gaussian-weighted mean of the matched patches covering it."""
    h, w = shape
    gh, gw = nnf.shape[:2]
    ph, pw = h + 2 * RADIUS + stride, w + 2 * RADIUS + stride
    acc = np.zeros((ph, pw, 3), np.float32)
    wsum = np.zeros((ph, pw), np.float32)
    ny, nx = nnf[..., 0], nnf[..., 1]
    for dy in range(-RADIUS, RADIUS + 1):
        for dx in range(-RADIUS, RADIUS + 1):
            wt = np.float32(np.exp(-(dy * dy + dx * dx) / (2 * 1.3**2)))
            ys = slice(RADIUS + dy, RADIUS + dy + gh * stride, stride)
            xs = slice(RADIUS + dx, RADIUS + dx + gw * stride, stride)
            acc[ys, xs] += lab[ny + dy, nx + dx] * wt
            wsum[ys, xs] += wt
    return acc[RADIUS : RADIUS + h, RADIUS : RADIUS + w] / wsum[RADIUS : RADIUS + h, RADIUS : RADIUS + w, None]


def _grid_features(
    guide: np.ndarray, cur: np.ndarray, lv: ExemplarLevel, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    fg, fs = _features(guide, cur, lv)
    return np.ascontiguousarray(fg[::stride, ::stride]), np.ascontiguousarray(fs[::stride, ::stride])


def _search_coarse(ex: Exemplar, qg: np.ndarray, qs: np.ndarray, guide_weight: float) -> np.ndarray:
    """Nearest exemplar position per grid cell through the HNSW index (one guide weight everywhere)."""
    gh, gw = qg.shape[:2]
    q = np.concatenate([qg * guide_weight, qs], axis=-1).reshape(gh * gw, -1).astype(np.float32)
    _, idx = ex.index.search(q, 1)  # type: ignore[attr-defined]
    idx = np.maximum(idx[:, 0], 0)
    return ex.coords[idx].reshape(gh, gw, 2)


def _clamp(nnf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    out = nnf.copy()
    np.clip(out[..., 0], RADIUS, h - RADIUS - 1, out=out[..., 0])
    np.clip(out[..., 1], RADIUS, w - RADIUS - 1, out=out[..., 1])
    return out


def _search_coherent(
    lv: ExemplarLevel, nnf: np.ndarray, qg: np.ndarray, qs: np.ndarray, wg: np.ndarray, stride: int, rounds: int
) -> np.ndarray:
    """Improve ``nnf`` by scoring coherence and k-coherence candidates exactly (Jacobi rounds)."""
    h, w = lv.shape
    gh, gw = nnf.shape[:2]
    fg_flat = lv.fg.reshape(h * w, -1)
    fs_flat = lv.fs.reshape(h * w, -1)
    wg2 = (wg * wg)[..., None]

    def cost(cand: np.ndarray) -> np.ndarray:
        flat = cand[..., 0] * w + cand[..., 1]
        dg = fg_flat[flat] - qg
        ds = fs_flat[flat] - qs
        return (wg2 * dg * dg).sum(-1) + (ds * ds).sum(-1)

    best = _clamp(nnf, (h, w))
    best_cost = cost(best)
    shifts = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)]
    for _ in range(rounds):
        cands = []
        for dy, dx in shifts:
            # the neighbour's match, moved back by the neighbour's offset
            nb = np.empty_like(best)
            src = best[max(0, dy) : gh + min(0, dy), max(0, dx) : gw + min(0, dx)]
            nb[:] = best
            nb[max(0, -dy) : gh + min(0, -dy), max(0, -dx) : gw + min(0, -dx)] = src
            nb = nb - np.array([dy * stride, dx * stride], np.int32)
            cands.append(_clamp(nb, (h, w)))
        if lv.similar is not None:
            sim = lv.similar.reshape(h * w, -1)[best[..., 0] * w + best[..., 1]]  # gh, gw, K
            for k in range(sim.shape[-1]):
                cands.append(np.stack([sim[..., k] // w, sim[..., k] % w], -1).astype(np.int32))
        for c in cands:
            cc = cost(c)
            better = cc < best_cost
            best = np.where(better[..., None], c, best)
            best_cost = np.where(better, cc, best_cost)
    return best


def synthesize(
    target_lab: np.ndarray,
    ex: Exemplar,
    *,
    guide_weight: np.ndarray | float = 1.6,
    iterations: tuple[int, ...] = (3, 2, 2),
    exemplar_weight: float = 1.6,
    tone_match: float = 0.7,
    line_weight: float = 40.0,
) -> np.ndarray:
    """Re-draw ``target_lab`` (h, w, 3 float32 Lab, <= ~512 px) from the exemplar's patches.

    ``guide_weight`` (scalar or (h, w) map) says how much each pixel's shading must be kept: higher on
    the face. Returns float32 Lab of the same size.
    """
    H, W = target_lab.shape[:2]
    wmap = np.broadcast_to(np.asarray(guide_weight, np.float32), (H, W)).astype(np.float32)
    # the guide (blurred L) moves toward the exemplar guide's distribution; details ride along unchanged;
    # then contour lines (a difference of Gaussians) darken it, as an illustrator draws contours
    L = target_lab[..., 0]
    blurred = cv2.GaussianBlur(L, (0, 0), guide_sigma(max(H, W)))
    target = target_lab.copy()
    matched = blurred + (match_tone(blurred, ex.tone) - blurred) * np.float32(tone_match)
    target[..., 0] = np.clip(L + matched - blurred - line_weight * contour_lines(L, max(H, W)), 0.0, 100.0)
    cur: np.ndarray | None = None
    nnf: np.ndarray | None = None
    for k, lv in enumerate(ex.levels):
        s = 2 ** (len(ex.levels) - 1 - k)
        size = (max(8, W // s), max(8, H // s))
        tl = cv2.resize(target, size, interpolation=cv2.INTER_AREA) if s > 1 else target
        wk = cv2.resize(wmap, size, interpolation=cv2.INTER_AREA) if s > 1 else wmap
        guide = cv2.GaussianBlur(tl[..., 0], (0, 0), guide_sigma(max(size)))
        stride = 2 if k == len(ex.levels) - 1 else 1
        wgrid = wk[::stride, ::stride]
        if cur is None:
            cur = tl.copy()
        else:
            cur = cv2.resize(cur, size, interpolation=cv2.INTER_LINEAR)
        for it in range(iterations[min(k, len(iterations) - 1)]):
            qg, qs = _grid_features(guide, cur, lv, stride)
            if k == 0:
                nnf = _search_coarse(ex, qg, qs, exemplar_weight)
            else:
                assert nnf is not None
                if it == 0:
                    nnf = _upsample_nnf(nnf, qg.shape[:2], prev_stride, stride)
                nnf = _search_coherent(lv, nnf, qg, qs, wgrid, stride, rounds=2)
            cur = _vote(lv.lab, _clamp(nnf, lv.shape), (size[1], size[0]), stride)
        prev_stride = stride
    assert cur is not None
    return cur


def _upsample_nnf(nnf: np.ndarray, shape: tuple[int, int], prev_stride: int, stride: int) -> np.ndarray:
    """Coarse grid matches -> the next level's grid (positions doubled, offsets kept)."""
    gh, gw = shape
    yy, xx = np.mgrid[0:gh, 0:gw]
    py, px = yy * stride, xx * stride  # pixel position at this level
    cy = np.clip((py // 2) // prev_stride, 0, nnf.shape[0] - 1)
    cx = np.clip((px // 2) // prev_stride, 0, nnf.shape[1] - 1)
    base = nnf[cy, cx] * 2
    off_y = py - cy * prev_stride * 2
    off_x = px - cx * prev_stride * 2
    return np.stack([base[..., 0] + off_y, base[..., 1] + off_x], -1).astype(np.int32)
