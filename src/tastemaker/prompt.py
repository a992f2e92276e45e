"""Reading a prompt: composition words, background words, and which taste modes it points at.

Composition vocabulary (case-insensitive; the first match of each kind wins):

============  ==============================================================================
framing       ``close-up``, ``closeup``, ``headshot``, ``tight`` -> closeup;
              ``portrait``, ``head and shoulders``, ``bust`` -> portrait;
              ``half body``, ``waist up``, ``upper body``, ``medium shot`` -> half;
              ``full body``, ``full length``, ``wide shot``, ``wide``, ``environmental`` -> full
background    ``blurred background``, ``blurry background``, ``bokeh``, ``shallow depth of field``,
              ``blur`` -> blur; ``studio``, ``backdrop``, ``plain background``, ``new background``,
              ``abstract background`` -> backdrop; ``keep background``, ``original background``,
              ``same background``, ``as is`` -> keep
scene         a place: ``in``/``at``/``on``/``inside``/``by``/``near`` (+ ``a``/``an``/``the``/``my``) and
              a place word — ``café``/``cafe``/``coffee shop``, ``street``, ``city``, ``park``, ``garden``,
              ``beach``, ``sea``, ``forest``, ``woods``, ``field``, ``meadow``, ``mountains``, ``room``,
              ``kitchen``, ``library``, ``studio``, ``club``, ``bar``, ``restaurant``, ``station``, ``market``,
              ``office``, ``home``, ``house``, ``window``, ``river``, ``lake``, ``snow``, ``night`` — or the
              words ``scene``, ``that place``, ``in the picture`` -> scene (the person is put into one
              of the board's pictures: the pin whose title/tags best match the place words, else
              by engagement; with no pins at hand, a backdrop and a note in the manifest)
============  ==============================================================================

What remains is matched against each mode's name, tags and pin titles with the text encoder
(MiniLM with the ``[text]`` extra, lexical otherwise). When some mode matches clearly (similarity at
least the encoder's ``match_min``: 0.12 lexical, 0.35 MiniLM), variations use only the modes within the
encoder's ``keep_ratio`` of the best match (0.5 lexical, 0.85 MiniLM); otherwise all modes are used in
proportion to their engagement weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .encoders.text import TextEncoder, get_text_encoder

_FRAMING: list[tuple[str, str]] = [
    (r"close[\s-]?up|headshot|tight(ly)? (framed|crop)|tight", "closeup"),
    (r"full[\s-]?(body|length)|whole body|wide[\s-]?shot|environmental|\bwide\b", "full"),
    (r"half[\s-]?body|waist[\s-]?up|upper[\s-]?body|medium[\s-]?shot", "half"),
    (r"head and shoulders|\bbust\b|\bportrait\b", "portrait"),
]
_BACKGROUND: list[tuple[str, str]] = [
    (r"(keep|original|same|real) background|as[\s-]is", "keep"),
    (
        r"(blurr?(ed|y)?|soft|out[\s-]of[\s-]focus) background|bokeh|shallow depth( of field)?|\bblur\b",
        "blur",
    ),
    (r"backdrop|(plain|new|abstract|solid|clean) background|replace the background|\bstudio\b", "backdrop"),
]
_PLACES = (
    r"caf[eé]s?|coffee[\s-]?shops?|streets?|city|park|gardens?|beach|sea(side)?|forest|woods|fields?|meadows?|"
    r"mountains?|room|kitchen|library|studio|club|bar|restaurant|station|market|office|home|house|window|"
    r"river|lake|snow|night"
)
_SCENE = re.compile(
    r"\b(?:in|at|on|inside|by|near)\s+(?:(?:a|an|the|my|some)\s+)?(?P<place>(?:\w+\s+)?(?:" + _PLACES + r"))\b"
    r"|\b(?P<generic>scene|that place|in the picture)\b",
    flags=re.IGNORECASE,
)


@dataclass(frozen=True)
class PromptIntent:
    """What a prompt asks for, after composition words are taken out."""

    framing: str | None
    background: str | None
    style_text: str
    mode_weights: dict[str, float]
    matched: bool
    #: the place words of a scene request ("cafe", "rainy street"), matched to pin titles and tags
    scene: str | None = None


def _take(text: str, table: list[tuple[str, str]]) -> tuple[str | None, str]:
    for pattern, value in table:
        m = re.search(pattern, text, flags=re.IGNORECASE)
        if m:
            return value, (text[: m.start()] + " " + text[m.end() :])
    return None, text


def parse_prompt(prompt: str, modes: list[tuple[str, str, float]], encoder: TextEncoder | None = None) -> PromptIntent:
    """``modes`` is ``[(mode_id, mode_text, weight)]``; returns framing, background and mode weights."""
    text = prompt or ""
    scene = None
    m = _SCENE.search(text)
    if m:
        scene = (m.group("place") or "").strip() or None
        text = text[: m.start()] + " " + text[m.end() :]
    background, text = _take(text, _BACKGROUND)
    if m and background is None:
        background = "scene"
    framing, text = _take(text, _FRAMING)
    style_text = re.sub(r"\s+", " ", text).strip(" ,.;")
    base = {mid: max(w, 1e-9) for mid, _, w in modes}
    matched = False
    if style_text and modes:
        enc = encoder or get_text_encoder()
        sims = enc.similarity(style_text, [t for _, t, _ in modes])
        best = float(sims.max())
        if best >= enc.match_min:
            matched = True
            keep = best * enc.keep_ratio
            base = {mid: w for (mid, _, _), w, s in zip(modes, base.values(), sims, strict=True) if s >= keep}
    total = sum(base.values())
    return PromptIntent(
        framing=framing,
        background=background,
        style_text=style_text,
        mode_weights={k: v / total for k, v in base.items()},
        matched=matched,
        scene=scene,
    )
