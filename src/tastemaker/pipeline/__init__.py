"""The flow: selfie(s) + board or profile + request -> guarded, stamped images (see :mod:`.generate`).

* :mod:`.generate`: :class:`Pipeline` (built once, called per request), :func:`generate`, :func:`prepare_subject`
  and the provenance stores (:func:`provenance_for`, :func:`default_provenance`);
* :mod:`.guard`: the identity guard every output passes;
* :mod:`.output`: what a run returns (:class:`GenerationResult`) and writes (:func:`save_result`).
"""

from .generate import (
    PIPELINE_OPTIONS,
    Pipeline,
    Progress,
    default_provenance,
    generate,
    prepare_subject,
    provenance_for,
)
from .guard import GUARD_MARGIN, HOLD_LEVELS, OWN_DISTANCE, IdentityGuard, own_distance
from .output import GeneratedImage, GenerationResult, make_contact_sheet, save_result

__all__ = [
    "GUARD_MARGIN",
    "HOLD_LEVELS",
    "OWN_DISTANCE",
    "PIPELINE_OPTIONS",
    "GeneratedImage",
    "GenerationResult",
    "IdentityGuard",
    "Pipeline",
    "Progress",
    "default_provenance",
    "generate",
    "make_contact_sheet",
    "own_distance",
    "prepare_subject",
    "provenance_for",
    "save_result",
]
