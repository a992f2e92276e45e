"""Contrast and legibility: a note on outputs whose face has too little local contrast to read well.

Very dark or very light looks (and text overlays) can flatten a face until eyes, brows and mouth are hard
to make out, for low-vision viewers first. The face's local contrast (:func:`~tastemaker.plugins.skin.
local_contrast`, L* units) below :data:`MIN_LOCAL_CONTRAST` — or well below the selfie's own — is annotated,
never refused: the person decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl
from ..skin import local_contrast
from ..types import OutputView, Verdict

if TYPE_CHECKING:
    from ...engines.base import Subject

#: below this local contrast (L* std of the face's detail) a face is hard to read
MIN_LOCAL_CONTRAST = 2.5
#: or below this share of the selfie's own
MIN_SHARE_OF_SELFIE = 0.4
_CACHE_KEY = "plugin:contrast:selfie"


@hookimpl
def check_output(output: OutputView, subject: Subject | None) -> Verdict | None:
    if output.face_box is None:
        return None
    value = local_contrast(output.pixels, output.face_box)
    own = None
    if subject is not None and getattr(subject, "image", None) is not None and subject.face is not None:
        if _CACHE_KEY not in subject.cache:
            subject.cache[_CACHE_KEY] = local_contrast(subject.image, subject.face.box)
        own = float(subject.cache[_CACHE_KEY])
    data = {"face_local_contrast": round(value, 2), "min": MIN_LOCAL_CONTRAST}
    if value < MIN_LOCAL_CONTRAST:
        return Verdict.annotate(f"the face has low local contrast ({value:.1f} < {MIN_LOCAL_CONTRAST:g} L*): "
                                "it may be hard to read for low-vision viewers", **data)
    if own is not None and own > 0 and value < MIN_SHARE_OF_SELFIE * own:
        return Verdict.annotate(f"the face has much less local contrast than in the selfie ({value:.1f} vs "
                                f"{own:.1f} L*): it may be hard to read", **data)
    return Verdict.ok(**data)
