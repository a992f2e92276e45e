"""One image, looked at once: its style vector and palette (what search compares) and whether it shows a face.

The style vector is the one the taste profile is made of (:func:`tastemaker.encoders.style.describe`, on the
same 256 px thumbnail a board makes), so an indexed image and a board's pins are described identically. Faces
are found with dlib's detector (the identity guard's) on a copy of at most :data:`FACE_SIDE` pixels: any face
it finds counts, however small, because the rule it serves is "never index or export a person by default".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boards import make_thumb
from ..encoders.style import describe
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, check_image, decode_image, resize_max_side

#: Longest side faces are looked for at (dlib then also scans at twice that, so faces down to ~20 px count).
FACE_SIDE = 800


@dataclass(frozen=True)
class ImageFacts:
    """What search needs of one image (no pixels)."""

    vector: np.ndarray  #: the style descriptor's weighted vector (float32)
    palette: list[list[float]]  #: up to 5 Lab colours with their weights: ``[L, a, b, w]``, heaviest first
    width: int
    height: int
    faces: int  #: faces found (-1: not looked for)


def count_faces(img: np.ndarray) -> int:
    """How many faces dlib's frontal detector finds in ``img`` (scanned at <= :data:`FACE_SIDE` px)."""
    from ..encoders.identity import IdentityEncoder

    return len(IdentityEncoder(min_face_px=0).detect(resize_max_side(img, FACE_SIDE)))


def analyse_image(
    data: bytes,
    name: str,
    *,
    look_for_faces: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImageFacts:
    """Describe one encoded image. Raises :class:`~tastemaker.errors.ImageError` for bytes that are not one."""
    width, height = check_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes)
    thumb = make_thumb(data, name, max_pixels=max_pixels, max_bytes=max_bytes)
    desc = describe(thumb)
    palette = [[round(float(v), 3) for v in c] + [round(float(w), 4)]
               for c, w in zip(desc.palette, desc.palette_weights, strict=True)]
    faces = -1
    if look_for_faces:
        big = decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes, reduce_longest=FACE_SIDE)
        faces = count_faces(big)
    return ImageFacts(desc.vector.astype(np.float32), palette, width, height, faces)
