"""Descriptors the evaluation measures with but the engine never sees.

**Random-filter Gram descriptor** (used for board attribution and diversity). A two-layer
convolutional network with *fixed random* filters (seed :data:`GRAM_SEED`, never trained, never
tuned on any board), in the spirit of Ustyuzhaninov et al., "Texture synthesis using shallow
convolutional networks with random filters" (2016) and He et al., "A powerful generative model using
random weights for the deep image representation" (NeurIPS 2016), which show such nets' Gram
statistics already separate textures and looks:

1. the image is area-resized to at most :data:`GRAM_SIDE` px on its longest side, RGB scaled to
   0..1 and centred at 0.5;
2. layer 1: 24 random 5x5x3 filters (zero-mean, unit norm), ReLU; 2x2 average pooling;
3. layer 2: 24 random 3x3x24 filters (zero-mean, unit norm), ReLU;
4. per layer, the Gram matrix ``F^T F / N`` of the activations (24x24: which random features fire
   together, averaged over positions — a style, not a layout), its upper triangle square-rooted;
   the layer's direction (unit vector) and its log energy are kept, the two layers concatenated.

**Why this is not circular.** The look engine and the taste profile optimise the project's style
descriptor (:mod:`tastemaker.encoders.style`: Lab moments, hue histogram, L* quantiles, grain,
sharpness, softness, vignette) and a sliced optimal transport of Lab colours toward the mode's
colour samples. Nothing in the engine reads this descriptor, its filters, or any statistic of it,
and it works in RGB on cross-channel, multi-pixel co-occurrences that neither objective contains.
It is not *uncorrelated* with colour — a look is partly colour, and any honest style measure sees
that — but a method cannot score well on it by matching the numbers it was told to match, which is
the circularity the project's own ``style_score`` has.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..media import resize_max_side

GRAM_SEED = 20240601
GRAM_SIDE = 128
CHANNELS = 24
MIN_SIDE = 16
DESCRIPTOR_NAME = "random-gram-v1"


def _filters(rng: np.random.Generator, k: int, c_in: int, c_out: int) -> np.ndarray:
    w = rng.standard_normal((k * k * c_in, c_out)).astype(np.float32)
    w -= w.mean(axis=0, keepdims=True)
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    return w


@functools.cache
def _weights() -> tuple[np.ndarray, np.ndarray]:
    """The fixed random filters (same on every machine: numpy's PCG64 with a fixed seed)."""
    rng = np.random.default_rng(GRAM_SEED)
    return _filters(rng, 5, 3, CHANNELS), _filters(rng, 3, CHANNELS, CHANNELS)


def _conv_relu(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """'Valid' convolution as one matrix product over all k x k patches, then ReLU."""
    h, wd, c = x.shape
    win = sliding_window_view(x, (k, k), axis=(0, 1))  # (h-k+1, w-k+1, c, k, k)
    patches = np.ascontiguousarray(win).reshape(-1, c * k * k)
    out = patches @ w
    np.maximum(out, 0.0, out=out)
    return out.reshape(h - k + 1, wd - k + 1, w.shape[1])


def _gram_part(f: np.ndarray) -> np.ndarray:
    flat = f.reshape(-1, f.shape[-1]).astype(np.float64)
    g = flat.T @ flat / max(len(flat), 1)
    iu = np.triu_indices(g.shape[0])
    v = np.sqrt(np.maximum(g[iu], 0.0))
    norm = float(np.linalg.norm(v))
    direction = v / norm if norm > 0 else v
    return np.concatenate([direction, [0.25 * np.log(norm + 1e-6)]])


def gram_descriptor(img: np.ndarray) -> np.ndarray:
    """The random-filter Gram descriptor of an RGB uint8 image (a 602-d float vector)."""
    w1, w2 = _weights()
    small = resize_max_side(img, GRAM_SIDE)
    h, w = small.shape[:2]
    if min(h, w) < MIN_SIDE:  # a sliver of an image: stretch it so both layers have positions to pool
        f = MIN_SIDE / min(h, w)
        small = cv2.resize(small, (max(MIN_SIDE, round(w * f)), max(MIN_SIDE, round(h * f))),
                           interpolation=cv2.INTER_LINEAR)
    x = small.astype(np.float32) * np.float32(1 / 255) - np.float32(0.5)
    f1 = _conv_relu(x, w1, 5)
    h, w = (f1.shape[0] // 2) * 2, (f1.shape[1] // 2) * 2
    pooled = f1[:h, :w].reshape(h // 2, 2, w // 2, 2, CHANNELS).mean(axis=(1, 3))
    f2 = _conv_relu(pooled, w2, 3)
    return np.concatenate([_gram_part(f1), _gram_part(f2)])


def board_distance(desc: np.ndarray, pins: np.ndarray, k: int = 3) -> float:
    """Distance from one descriptor to a board: the mean distance to its ``k`` nearest pins.

    Nearest pins rather than the board's centroid, because a board often holds several looks (a
    centroid between two modes matches neither); ``k`` > 1 so one stray pin cannot decide.
    """
    d = np.linalg.norm(np.asarray(pins) - np.asarray(desc)[None, :], axis=1)
    kk = max(1, min(k, len(d)))
    return float(np.sort(d)[:kk].mean())


def pins_attribution(boards: dict[str, np.ndarray], k: int = 3) -> float:
    """How often a board's own pin, left out, is attributed to its board (rows of ``boards[name]`` are the
    pins' descriptors; the rule is :func:`board_distance`'s).

    The ceiling a descriptor can certify: an output cannot be expected to land on its board more often than
    the board's own pins do. Boards with one pin are skipped (nothing is left to compare with).
    """
    right = total = 0
    for name, own in boards.items():
        if len(own) < 2:
            continue
        for i in range(len(own)):
            rest = {b: (np.delete(d, i, axis=0) if b == name else d) for b, d in boards.items()}
            dists = {b: board_distance(own[i], d, k) for b, d in rest.items() if len(d)}
            right += min(dists, key=dists.__getitem__) == name
            total += 1
    return right / total if total else float("nan")


def lab_thumb(img: np.ndarray, side: int = 64) -> np.ndarray:
    """A small float32 Lab thumbnail (longest side ``side``) for pixel-level comparisons."""
    small = resize_max_side(img, side)
    return cv2.cvtColor(small.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)


def mean_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-pixel CIE76 colour difference between two Lab thumbnails (resized to match)."""
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.sqrt(((a - b) ** 2).sum(axis=-1)).mean())
