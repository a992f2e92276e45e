"""The service's product jobs (``subject=product`` on ``POST /v1/generations``): the admission check and the render.

A product job travels through the same job machinery as a person's (keys, scopes, limits, quota, the queue, the
sealed input, provenance): the product photo rides in the job's selfie slot (bytes, never stored), and a
:class:`ProductSubject` in its face slot says it is a product and what admission found. Admission cuts the
product out once in the CPU pool (:func:`prepare_product`, run as ``tasks.task_prepare_product``), so a photo
that cannot be cut out is a 422 now, not a failed job later; the worker cuts it out again from the bytes and
renders it (:func:`render_product`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProductSubject:
    """A product job's marker in the face slot: whether a face in the photo was accepted (``consent``), and the
    cut-out admission found (its source and box, for the audit trail)."""

    allow_face: bool
    source: str
    box: tuple[int, int, int, int]


def prepare_product(data: bytes, name: str, max_pixels: int, max_bytes: int, consent: bool) -> ProductSubject:
    """Decode and cut out the product photo: its :class:`ProductSubject` (no pixels), or the error that refuses it.

    A face in the photo is accepted only with ``consent`` (it is then a person's picture too)."""
    from ..products import cut_out, decode_product
    from ..products.errors import AmbiguousSubjectError

    img = decode_product(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes)
    try:
        cut = cut_out(img, name=name, allow_face=consent)
    except AmbiguousSubjectError as exc:
        exc.message = (f"{name}: this product photo shows a person's face; send consent=true (you have the "
                       "person's consent) to render it as a product with the person in it, or send it as a "
                       "person's selfie (subject=person)")
        raise
    return ProductSubject(allow_face=consent, source=cut.source, box=cut.box)


def render_product(request: Any, data: bytes, name: str, marker: ProductSubject, profile: Any, assets: Any,
                   provenance: Any, *, account: str, progress: Callable[[str, int, int], None], log: bool,
                   max_pixels: int, max_bytes: int) -> Any:
    """A product job's images (a :class:`~tastemaker.products.ProductResult`), stamped into ``provenance``."""
    from ..products import ProductPipeline, cut_out, decode_product

    img = decode_product(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes)
    cut = cut_out(img, name=name, allow_face=marker.allow_face)
    return ProductPipeline(provenance)(request, cut, profile=profile, assets=assets, account=account,
                                       progress=progress, log=log)
