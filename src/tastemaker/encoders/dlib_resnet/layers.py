"""The network's forward-pass operations in NumPy (NHWC float32): convolution as im2col + matmul, pooling, etc.

Separate from the loader so that what each layer computes reads on its own. Forward semantics, as in
``dlib/dnn/layers.h`` and ``cpu_dlib.cpp``: ``con`` is a cross-correlation with the padding stored in the
file (``stride != 1 ? 0 : size/2``), plus bias; ``affine`` is a per-channel ``x * gamma + beta`` (folded
into the preceding convolution by the loader); pooling windows start at ``out * stride - padding`` and
average/max over the part inside the image; ``avg_pool_everything`` is the spatial mean; ``add_prev`` adds
two tensors of possibly different shapes into one of the element-wise maximum shape, a missing element
counting as 0 (the stride-2 branch is 3x3 where the pooled shortcut is 4x4, and has more channels);
``fc_no_bias`` flattens in dlib's (k, nr, nc) order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided


@dataclass
class Conv:
    """Convolution (+ folded per-channel affine) (+ fused ReLU) as im2col and one matmul."""

    weights: np.ndarray  # (kr*kc*cin, cout), rows ordered (row, col, channel) to match NHWC im2col
    bias: np.ndarray  # (cout,)
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    relu: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        (kr, kc), (sy, sx), (py, px) = self.kernel, self.stride, self.padding
        if py or px:
            xp = np.zeros((n, h + 2 * py, w + 2 * px, c), np.float32)
            xp[:, py : py + h, px : px + w] = x
        else:
            xp = x
        ho = 1 + (h + 2 * py - kr) // sy
        wo = 1 + (w + 2 * px - kc) // sx
        # im2col in one copy: for output (r, c) and kernel row i, the kc*C inputs are one contiguous run
        # of the (C-contiguous) padded row r*sy + i, starting at column c*sx.
        xp = np.ascontiguousarray(xp)
        s0, s1, s2, s3 = xp.strides
        patches = as_strided(xp, (n, ho, wo, kr, kc * c), (s0, sy * s1, sx * s2, s1, s3), writeable=False)
        cols = np.ascontiguousarray(patches).reshape(n * ho * wo, kr * kc * c)
        out = cols @ self.weights
        out += self.bias
        if self.relu:
            np.maximum(out, 0.0, out=out)
        return out.reshape(n, ho, wo, -1)


@dataclass
class Affine:
    """Per-channel ``x * gamma + beta`` when there is no convolution to fold it into."""

    gamma: np.ndarray
    beta: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x *= self.gamma
        x += self.beta
        return x


@dataclass
class Relu:
    """``relu`` in place (the loader fuses it into a convolution below it where there is one)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0, out=x)


@dataclass
class Pool:
    """Max or average pooling over the in-image part of each window (dlib's ``subm_clipped``)."""

    average: bool
    window: tuple[int, int]  # 0 = the whole input (avg_pool_everything)
    stride: tuple[int, int]
    padding: tuple[int, int]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        kr, kc = self.window[0] or h, self.window[1] or w
        (sy, sx), (py, px) = self.stride, self.padding
        if (kr, kc) == (h, w) and not (py or px):
            return x.mean(axis=(1, 2), keepdims=True, dtype=np.float32)
        ho = 1 + (h + 2 * py - kr) // sy
        wo = 1 + (w + 2 * px - kc) // sx
        fill = 0.0 if self.average else -np.inf
        if py or px:
            xp = np.full((n, h + 2 * py, w + 2 * px, c), fill, np.float32)
            xp[:, py : py + h, px : px + w] = x
        else:
            xp = x
        out: np.ndarray | None = None
        for i in range(kr):
            for j in range(kc):
                win = xp[:, i : i + sy * (ho - 1) + 1 : sy, j : j + sx * (wo - 1) + 1 : sx]
                if out is None:
                    out = win.copy()
                elif self.average:
                    out += win
                else:
                    np.maximum(out, win, out=out)
        assert out is not None
        if self.average:
            if py or px:  # divide by the number of in-image elements of each window
                ones = np.zeros((h + 2 * py, w + 2 * px), np.float32)
                ones[py : py + h, px : px + w] = 1.0
                counts = sum(
                    ones[i : i + sy * (ho - 1) + 1 : sy, j : j + sx * (wo - 1) + 1 : sx]
                    for i in range(kr)
                    for j in range(kc)
                )
                out /= np.asarray(counts)[None, :, :, None]
            else:
                out /= np.float32(kr * kc)
        return out


@dataclass
class Tag:
    """``tag<N>``: the forward pass keeps the output here under ``ident`` (for a later skip or add_prev)."""

    ident: int


@dataclass
class Skip:
    """``skip<N>``: the forward pass goes on from the output kept under ``ident``."""

    ident: int


@dataclass
class AddPrev:
    """``tt::add(out, x, tagged)``: shapes may differ; the result has the max of each dimension."""

    ident: int

    def __call__(self, x: np.ndarray, other: np.ndarray) -> np.ndarray:
        if x.shape == other.shape:
            return x + other
        shape = tuple(max(a, b) for a, b in zip(x.shape, other.shape, strict=True))
        out = np.zeros(shape, np.float32)
        out[tuple(slice(0, s) for s in x.shape)] += x
        out[tuple(slice(0, s) for s in other.shape)] += other
        return out


@dataclass
class Dense:
    """``fc_no_bias``: the (k, nr, nc)-ordered flattening of each sample times W."""

    weights: np.ndarray  # (num_inputs, num_outputs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)
        return flat @ self.weights


#: any of the ops a loaded network is a list of
Op = Conv | Affine | Relu | Pool | Tag | Skip | AddPrev | Dense
