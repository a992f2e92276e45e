"""Skin-tone fidelity: an output whose skin tone moved from the selfie's is held back and re-rendered.

Colour grading can lighten or darken a person's skin, a known harm of image generators. The tone is measured
as ITA° (:mod:`tastemaker.plugins.skin`) on the selfie and on each released output. Outside monochrome or
toned modes and explicitly stylised requests or modes, an output whose ITA° moved by more than
:data:`THRESHOLD_DEG` gets a ``hold`` verdict: the pipeline renders it again with the face (and its skin)
held more, until it is within the threshold or fully held; what remains is reported, never hidden. ITA°
before and after is in every output's record (``skin_tone``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ..skin import SkinTone, map_landmarks, measure, tone_group
from ..types import OutputView, Verdict

if TYPE_CHECKING:
    from ...engines.base import GenerationRequest, Subject
    from ...taste.profile import Mode, TasteProfile

#: the largest ITA° move released without holding the face more (one Chardon category spans 13–17°)
THRESHOLD_DEG = 8.0
#: words in a mode's name or tags, or in the prompt, that ask for colour that is not the person's own
STYLISED = re.compile(r"\b(stylised|stylized|false[- ]colou?r|pop[- ]art|duotone|neon|psychedelic|infrared|"
                      r"monochrome|black and white|b&w|bw|sepia|grayscale|greyscale)\b", re.I)
_CACHE_KEY = "plugin:skin_tone:selfie"


def exempt_reason(mode: Mode, request: GenerationRequest) -> str | None:
    """Why this output's skin may change colour (a monochrome, toned or explicitly stylised look), or None."""
    from ...engines.look.colour import colour_character

    kind = colour_character(mode.look).kind
    if kind != "colour":
        return f"{kind} mode"
    words = " ".join([mode.name, *mode.tags])
    if STYLISED.search(words):
        return "stylised mode"
    if STYLISED.search(request.prompt or ""):
        return "stylised request"
    return None


def selfie_tone(subject: Subject) -> SkinTone | None:
    """The selfie's skin tone, measured once per subject."""
    if _CACHE_KEY not in subject.cache:
        subject.cache[_CACHE_KEY] = measure(subject.image, subject.face.landmarks, subject.face.box)
    tone: SkinTone | None = subject.cache[_CACHE_KEY]
    return tone


def output_tone(output: OutputView, subject: Subject) -> SkinTone | None:
    """The output's skin tone on the same patches of skin as the selfie's."""
    if output.face_box is None:
        return None
    landmarks = map_landmarks(subject.face.landmarks, subject.face.box, output.face_box)
    return measure(output.pixels, landmarks, output.face_box)


@hookimpl
def check_output(output: OutputView, subject: Subject | None, profile: TasteProfile,
                 request: GenerationRequest) -> Verdict | None:
    if subject is None or getattr(subject, "image", None) is None or getattr(subject, "face", None) is None:
        return None  # an identity alone: no selfie pixels to compare with
    before = selfie_tone(subject)
    after = output_tone(output, subject)
    if before is None or after is None:
        return Verdict.ok(measured=False)
    if not before.has_colour:  # a black-and-white selfie: ITA° near 90° whatever the person's skin
        return Verdict.ok(measured=False, exempt="the selfie has no colour: its skin tone is unknown")
    shift = after.ita - before.ita
    data: dict[str, Any] = {"ita_before_deg": round(before.ita, 2), "ita_after_deg": round(after.ita, 2),
                            "ita_shift_deg": round(shift, 2), "threshold_deg": THRESHOLD_DEG,
                            "tone_group": tone_group(before.ita)}
    why = exempt_reason(output.mode, request)
    if why is not None:
        return Verdict.ok(exempt=why, **data)
    if abs(shift) > THRESHOLD_DEG:
        way = "lighter" if shift > 0 else "darker"
        return Verdict.hold(f"skin rendered {way} than in the selfie (ITA {before.ita:.0f}° -> {after.ita:.0f}°, "
                            f"moved {abs(shift):.1f}° > {THRESHOLD_DEG:g}°)", **data)
    return Verdict.ok(**data)
