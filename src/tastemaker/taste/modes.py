"""Style modes: a board often holds several aesthetics; one average would be none of them.

PinnerSage-style (Pal et al., KDD 2020): Ward agglomerative clustering of the pins' style vectors,
then per cluster an importance (the summed engagement weight of its pins) and medoids (the pins
closest to the rest of their cluster, engagement-weighted) that represent it.

The number of modes is chosen by the engagement-weighted silhouette over ``k = 2..max_modes``
(every mode needs at least ``min_pins`` pins); a split is only kept if its silhouette reaches
``min_silhouette`` *and* every two modes' centroids are at least ``min_separation`` apart in style
units (1 unit is a noticeable difference; silhouette alone is scale-free and would happily split a
board of near-identical looks) — otherwise the board is one aesthetic and gets one mode.
Pins arrive in canonical (content-hash) order, so the clustering never depends on pin order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform


@dataclass(frozen=True)
class ModeSplit:
    labels: np.ndarray  # (n,) 0..k-1, modes ordered by weight (heaviest first)
    k: int
    silhouette: float


def weighted_silhouette(d: np.ndarray, labels: np.ndarray, w: np.ndarray) -> float:
    """Mean silhouette, weighted by engagement; ``d`` is the square distance matrix."""
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    s = np.zeros(len(labels))
    for i in range(len(labels)):
        own = labels == labels[i]
        own_others = own.copy()
        own_others[i] = False
        if not own_others.any():
            continue
        a = np.average(d[i, own_others], weights=w[own_others] + 1e-12)
        b = min(np.average(d[i, labels == k], weights=w[labels == k] + 1e-12) for k in ks if k != labels[i])
        s[i] = (b - a) / max(a, b, 1e-12)
    return float(np.average(s, weights=w + 1e-12))


def split_modes(
    x: np.ndarray,
    w: np.ndarray,
    *,
    max_modes: int = 4,
    min_pins: int = 2,
    min_silhouette: float = 0.2,
    min_separation: float = 3.0,
) -> ModeSplit:
    """Cluster style vectors ``x`` (n, d) with weights ``w`` into modes."""
    n = len(x)
    one = ModeSplit(labels=np.zeros(n, dtype=np.int64), k=1, silhouette=0.0)
    if n < 2 * min_pins or max_modes < 2:
        return one
    z = linkage(x, method="ward")
    d = squareform(pdist(x))
    best = one
    for k in range(2, min(max_modes, n // min_pins) + 1):
        raw = fcluster(z, k, criterion="maxclust") - 1
        sizes = np.bincount(raw)
        if len(sizes) != k or sizes.min() < min_pins:
            continue
        cents = np.array([np.average(x[raw == j], axis=0, weights=w[raw == j] + 1e-12) for j in range(k)])
        if pdist(cents).min() < min_separation:
            continue
        sil = weighted_silhouette(d, raw, w)
        if sil >= min_silhouette and sil > best.silhouette + 1e-9:
            best = ModeSplit(labels=raw, k=k, silhouette=sil)
    if best.k == 1:
        return one
    # order modes heaviest first (ties: smallest first member index, which is content-hash order)
    mass = np.array([w[best.labels == j].sum() for j in range(best.k)])
    first = np.array([np.flatnonzero(best.labels == j)[0] for j in range(best.k)])
    order = np.lexsort((first, -mass))
    remap = np.empty(best.k, dtype=np.int64)
    remap[order] = np.arange(best.k)
    return ModeSplit(labels=remap[best.labels], k=best.k, silhouette=best.silhouette)


def medoids(x: np.ndarray, w: np.ndarray, members: np.ndarray, count: int = 3) -> list[int]:
    """Indices (into ``x``) of the ``count`` members with the lowest weighted distance to the rest."""
    idx = np.flatnonzero(members)
    if len(idx) == 0:
        return []
    d = squareform(pdist(x[idx])) if len(idx) > 1 else np.zeros((1, 1))
    cost = d @ w[idx]
    order = np.lexsort((idx, cost))
    return [int(idx[i]) for i in order[:count]]
