"""Near-duplicate clusters from perceptual hashes (see :mod:`.analyse` for the hashes).

Two images are near-duplicates when the whole-image hash of one is within ``max_distance`` bits (Hamming) of
any of the other's hashes (whole image and 80 % crops) — so a re-encoded, resized or cropped copy of a
picture joins the picture's cluster. Clusters are the connected components of that relation (union-find).
The search is faiss' binary index (exact Hamming range search), so it stays fast for large sets: every
whole-image hash against every hash of every image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Default Hamming radius (of 64 bits): measured on bench/curate.py's planted set.
MAX_DISTANCE = 12


def _codes(hashes: Sequence[int]) -> np.ndarray:
    """64-bit ints as faiss binary codes (8 uint8 each, big-endian)."""
    return np.array([list(int(h).to_bytes(8, "big")) for h in hashes], dtype=np.uint8).reshape(-1, 8)


def duplicate_pairs(hashes: Sequence[Sequence[int]], max_distance: int = MAX_DISTANCE) -> list[tuple[int, int]]:
    """``(i, j)`` with ``i < j`` for every two images within ``max_distance`` (``hashes[i]``: an image's hashes,
    whole image first; an image with no hashes, e.g. unreadable, is never paired)."""
    import faiss

    owners = [i for i, hs in enumerate(hashes) for _ in hs]
    flat = [h for hs in hashes for h in hs]
    queries = [i for i, hs in enumerate(hashes) if hs]
    if len(queries) < 2:
        return []
    index = faiss.IndexBinaryFlat(64)
    index.add(_codes(flat))
    q = _codes([hashes[i][0] for i in queries])
    # range_search counts distances < radius: +1 makes max_distance inclusive
    lims, _, labels = index.range_search(q, max_distance + 1)
    pairs: set[tuple[int, int]] = set()
    for qi, i in enumerate(queries):
        for lab in labels[lims[qi]:lims[qi + 1]]:
            j = owners[int(lab)]
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def clusters(n: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Union-find: a cluster label per item (the smallest member's index)."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]
