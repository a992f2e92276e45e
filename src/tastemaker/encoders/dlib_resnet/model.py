"""The loaded network and its forward pass over batches of aligned 150x150 face chips: :class:`DlibResNet`.

Separate from the loader (:mod:`.network`) because this is what callers use: load once, then
:meth:`DlibResNet.descriptors`. The input is ``(pixel - channel_mean) / 256`` (RGB planes); ``loss_metric``'s
output is the ``fc_no_bias`` output itself, not normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import ImageError
from .layers import AddPrev, Affine, Op, Relu, Skip, Tag
from .network import CHIP_SIZE, DESCRIPTOR_SIZE, parse

#: Chips per forward pass in :meth:`DlibResNet.descriptors` (bounds im2col memory, ~3 MB per chip).
BATCH = 16


class DlibResNet:
    """The dlib face-descriptor network, loaded from dlib's ``.dat`` file, run with NumPy."""

    def __init__(self, mean_rgb: np.ndarray, ops: list[Op], meta: dict[str, float]) -> None:
        self._mean = np.asarray(mean_rgb, np.float32).reshape(1, 1, 1, 3)
        self._ops = ops
        #: loss_metric parameters from the file (``distance_threshold`` is dlib's same-person cut-off).
        self.meta = dict(meta)

    @classmethod
    def load(cls, path: str | Path) -> DlibResNet:
        """Parse ``dlib_face_recognition_resnet_model_v1.dat``; raises :class:`DlibModelFormatError`."""
        data = Path(path).read_bytes()
        mean, ops, meta = parse(data)
        return cls(mean, ops, meta)

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        """128-d float64 descriptor of one aligned 150x150 chip (as ``dlib.get_face_chip`` makes)."""
        return self.descriptors([chip])[0]

    def descriptors(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 128) float64 descriptors; chips go through the network in batches of :data:`BATCH`."""
        arrays = [_check_chip(chip, i) for i, chip in enumerate(chips)]
        if not arrays:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float64)
        parts = [self._forward(np.stack(arrays[i : i + BATCH])) for i in range(0, len(arrays), BATCH)]
        return np.concatenate(parts).astype(np.float64)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        # input_rgb_image_sized: (pixel - mean) / 256, computed in float32 as dlib does
        x = (batch.astype(np.float32) - self._mean) / np.float32(256.0)
        tags: dict[int, np.ndarray] = {}
        for op in self._ops:
            if isinstance(op, Tag):
                tags[op.ident] = x
            elif isinstance(op, Skip):
                x = tags[op.ident]
            elif isinstance(op, AddPrev):
                x = op(x, tags[op.ident])
            elif isinstance(op, Affine | Relu):
                if any(x is t for t in tags.values()):  # never modify a tagged output in place
                    x = x.copy()
                x = op(x)
            else:
                x = op(x)
        return x.reshape(x.shape[0], -1)


def _check_chip(chip: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(chip)
    if arr.dtype != np.uint8:
        raise ImageError(f"chip {index}: dtype {arr.dtype}, expected uint8 (as dlib.get_face_chip returns)")
    if arr.shape != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ImageError(f"chip {index}: shape {arr.shape}, expected ({CHIP_SIZE}, {CHIP_SIZE}, 3) RGB")
    return arr
