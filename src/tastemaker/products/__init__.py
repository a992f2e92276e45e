"""Products as the subject: a product photo cut out without learned weights and shown in a board's look.

``cut_out`` (or ``decode_product`` + ``cut_out``) makes the :class:`Cutout`; a :class:`ProductPipeline` renders
it in the modes of a board or profile, guarded by the product fidelity guard (:mod:`.fidelity`) and stamped with
provenance like every other output; ``save_product_result`` writes the files. :mod:`.catalogue` renders a CSV of
products in every mode of a board.
"""

from __future__ import annotations

from .cutout import Cutout, cut_out, decode_product
from .errors import (
    AmbiguousSubjectError,
    NoProductFoundError,
    ProductFidelityError,
    ProductFillsFrameError,
    ProductPhotoError,
    ProductTooThinError,
)
from .fidelity import MAX_DELTA_E, MIN_SHAPE_SSIM, Fidelity, FidelityGuard, ciede2000
from .output import ProductImage, ProductResult, save_product_result
from .pipeline import ENGINE, ProductPipeline, wants_restyle

__all__ = [
    "ENGINE",
    "MAX_DELTA_E",
    "MIN_SHAPE_SSIM",
    "AmbiguousSubjectError",
    "Cutout",
    "Fidelity",
    "FidelityGuard",
    "NoProductFoundError",
    "ProductFidelityError",
    "ProductFillsFrameError",
    "ProductImage",
    "ProductPhotoError",
    "ProductPipeline",
    "ProductResult",
    "ProductTooThinError",
    "ciede2000",
    "cut_out",
    "decode_product",
    "save_product_result",
    "wants_restyle",
]
