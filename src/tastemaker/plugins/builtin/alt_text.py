"""Alt text: every output gets a short text alternative (WCAG 2.2, success criterion 1.1.1).

The description says what a sighted person sees without guessing who it is: "a person" (never a name, age,
gender or ethnicity — tags and mode names are filtered of such words), the framing, the background, the look
in words (the mode's name and heaviest tags, the palette's colours by name, black and white or toned), and
the medium (photograph, painting, line drawing). It is the output's ``alt_text`` in the manifest, the API's
image objects and the web app's ``<img alt>``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ..hookspecs import hookimpl
from ..types import OutputView

if TYPE_CHECKING:
    from ...taste.profile import Mode

#: words never used in a description, whatever a board's tags say: identity, age, gender, ethnicity
IDENTITY_WORDS = frozenset("""
man men woman women boy boys girl girls male female males females lady ladies gentleman gentlemen guy guys
gal gals he she him her his hers husband wife mother father mom dad son daughter sister brother
child children kid kids baby babies toddler teen teens teenager teenage young younger youth old older elderly
aged senior adult adults middle-aged
white black asian african european caucasian latino latina latinx hispanic arab indian native indigenous
ethnic ethnicity race racial skin-tone skintone
trans transgender nonbinary non-binary gay lesbian queer
""".split())
# "black" and "white" are colours too: they are said only as "black and white" for a monochrome look

FRAMING = {
    "closeup": "Close-up of a person's face",
    "portrait": "Head-and-shoulders portrait of a person",
    "half": "Half-length portrait of a person",
    "full": "Full-length picture of a person",
}
BACKGROUND = {
    "keep": "in the photo's own setting",
    "blur": "against a softly blurred background",
    "backdrop": "against a plain backdrop in the look's colours",
    "scene": "placed into a scene from the board",
}
MEDIUM = {"photo": "photograph", "paint": "painting", "line": "line drawing"}
_HUES = ((20, "red"), (50, "orange"), (75, "yellow"), (100, "olive"), (165, "green"), (215, "teal"),
         (260, "blue"), (300, "violet"), (345, "pink"), (361, "red"))


def clean_words(text: str) -> str:
    """``text`` with identity, age, gender and ethnicity words removed (and the punctuation left tidy)."""
    kept = [w for w in re.split(r"\s+", text) if w and re.sub(r"[^\w-]", "", w.lower()) not in IDENTITY_WORDS]
    return re.sub(r"\(\s*\)", "", " ".join(kept)).strip(" ·,-")


def colour_name(lab: list[float] | np.ndarray) -> str:
    """A plain name for a CIELAB colour: lightness, then hue (or grey)."""
    lightness, a, b = (float(v) for v in lab)
    chroma = float(np.hypot(a, b))
    if chroma < 8:
        return "near-black" if lightness < 20 else "grey" if lightness < 80 else "off-white"
    hue = float(np.degrees(np.arctan2(b, a))) % 360
    name = next(n for top, n in _HUES if hue < top)
    if name in ("orange", "red") and lightness < 45 and chroma < 45:
        name = "brown"
    shade = "dark " if lightness < 35 else "pale " if lightness > 78 else ""
    return f"{'muted ' if chroma < 18 else ''}{shade}{name}"


def look_words(mode: Mode) -> str:
    """The mode's look in words: name, heaviest tags and palette."""
    from ...engines.look.colour import colour_character

    parts = []
    name = clean_words(mode.name.replace("·", ","))
    if name:
        parts.append(f"a {name} look".replace(" ,", ","))
    tags = [clean_words(t) for t in sorted(mode.tags, key=lambda t: (-mode.tags[t], t))]
    tags = [t for t in tags if t][:3]
    if tags:
        parts.append("tagged " + ", ".join(tags))
    kind = colour_character(mode.look).kind
    if kind == "monochrome":
        parts.append("in black and white")
    else:
        names = list(dict.fromkeys(colour_name(c) for c in mode.look.palette[:4]))[:3]
        if names:
            parts.append(("toned in " if kind == "toned" else "in ") + _and(names))
    return ", ".join(parts)


def medium_word(output: OutputView) -> str:
    medium = output.info.get("medium") or {}
    kind = medium.get("kind") if isinstance(medium, dict) and not medium.get("reason") else None
    if kind is None:
        kind = output.mode.medium.kind if output.mode.medium is not None and not medium.get("reason") else "photo"
    return MEDIUM.get(str(kind), str(kind))


def describe(output: OutputView) -> str:
    """The alt text of one output (see the module docstring)."""
    what = FRAMING.get(output.framing, "Picture of a person")
    where = BACKGROUND.get(output.background, "")
    medium = medium_word(output)
    text = f"{what}{' ' + where if where else ''}, {look_words(output.mode)}; a {medium}."
    return text[0].upper() + text[1:]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@hookimpl
def describe_output(output: OutputView) -> str:
    return describe(output)
