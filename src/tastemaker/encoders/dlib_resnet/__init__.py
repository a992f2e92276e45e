"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in plain NumPy.

Why: the ``dlib-bin`` wheel is built without BLAS, so ``compute_face_descriptor`` spends 120-165 ms
on a 150x150 chip. The network is only ~0.3 G multiply-adds; as float32 im2col + ``np.matmul``
(OpenBLAS) it runs in a fraction of that and returns the same 128-d descriptors (float32 rounding
apart) from the same weights file.

The package, from the bytes up: :mod:`.reader` (dlib's serialization format, field by field),
:mod:`.layers` (what each layer computes, NHWC float32), :mod:`.network` (the network's type, walked to
load and check the file, and the ops built from it) and :mod:`.model` (:class:`DlibResNet`: load, then
descriptors for batches of chips).
"""

from __future__ import annotations

from ...errors import DlibModelFormatError
from .model import BATCH as BATCH
from .model import DlibResNet
from .network import CHIP_SIZE, DESCRIPTOR_SIZE

__all__ = ["DESCRIPTOR_SIZE", "CHIP_SIZE", "DlibModelFormatError", "DlibResNet"]
