"""The built-in plugins' measurements and words on small, known inputs (no rendering)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tastemaker.engines.base import GenerationRequest, VariationPlan
from tastemaker.plugins import OutputView
from tastemaker.plugins.builtin import alt_text, contrast, skin_tone
from tastemaker.plugins.skin import ita_deg, local_contrast, measure, tone_group
from tastemaker.taste.profile import TasteProfile


def lab_image(lightness: float, a: float, b: float, size: int = 64) -> np.ndarray:
    lab = np.zeros((size, size, 3), np.float32)
    lab[...] = (lightness, a, b)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def view(pixels: np.ndarray, mode: object, framing: str = "portrait", background: str = "blur") -> OutputView:
    plan = VariationPlan(index=0, seed=1, mode_id="m1", background=background, framing=framing, strength=0.8)
    return OutputView(pixels=pixels, index=0, mode=mode, plan=plan, hold=0.0,  # type: ignore[arg-type]
                      face_box=(8, 8, 56, 56), info={})


def test_ita_on_a_known_colour() -> None:
    landmarks = np.tile(np.array([[32.0, 32.0]], np.float32), (68, 1))
    tone = measure(lab_image(60.0, 12.0, 18.0), landmarks, (8, 8, 56, 56))
    assert tone is not None
    assert tone.ita == pytest.approx(ita_deg(60.0, 18.0), abs=1.5) and tone.ita == pytest.approx(29.05, abs=1.5)
    assert [tone_group(v) for v in (55.0, 30.0, -20.0)] == ["light", "medium", "dark"]


def test_contrast_annotates_a_flat_face_only() -> None:
    flat = lab_image(50.0, 5.0, 10.0)
    assert local_contrast(flat, (8, 8, 56, 56)) < contrast.MIN_LOCAL_CONTRAST
    verdict = contrast.check_output(view(flat, None), None)
    assert verdict is not None and verdict.kind == "annotate" and "low local contrast" in verdict.reason
    rng = np.random.default_rng(0)
    busy = np.clip(flat.astype(int) + rng.integers(-60, 60, flat.shape), 0, 255).astype(np.uint8)
    ok = contrast.check_output(view(busy, None), None)
    assert ok is not None and ok.kind == "pass"


def test_alt_text_words_come_from_the_look_and_never_from_identity(demo_profile: TasteProfile) -> None:
    mode = demo_profile.modes[0].model_copy(update={
        "name": "warm · film (young woman)", "tags": {"african": 2.0, "golden hour": 1.0, "old man": 0.9}})
    text = alt_text.describe(view(lab_image(50, 0, 0), mode, framing="closeup", background="scene"))
    assert text.startswith("Close-up of a person's face placed into a scene from the board")
    assert "golden hour" in text and "warm" in text and text.endswith(".")
    words = {w.strip(".,;()").lower() for w in text.split()}
    assert not words & {"young", "woman", "african", "old", "man"}, text


def test_monochrome_and_stylised_looks_are_exempt(demo_profile: TasteProfile) -> None:
    colour = demo_profile.modes[0]
    grey = colour.model_copy(update={"look": colour.look.model_copy(update={"colors": ["#808080", "#202020"] * 8})})
    assert skin_tone.exempt_reason(grey, GenerationRequest()) == "monochrome mode"
    assert skin_tone.exempt_reason(colour, GenerationRequest(prompt="neon pop art")) == "stylised request"
    named = colour.model_copy(update={"name": "false colour"})
    assert skin_tone.exempt_reason(named, GenerationRequest()) == "stylised mode"


def test_skin_tone_has_nothing_to_say_without_selfie_pixels(demo_profile: TasteProfile) -> None:
    identity_only = SimpleNamespace(image=None, face=None, cache={})
    out = view(lab_image(50, 10, 15), demo_profile.modes[0])
    assert skin_tone.check_output(out, identity_only, demo_profile, GenerationRequest()) is None


def test_a_black_and_white_selfie_has_no_skin_tone_to_hold(demo_profile: TasteProfile) -> None:
    """A grey selfie measures ITA ~90° whatever the skin: holding colour outputs to it would pin them grey."""
    landmarks = np.tile(np.array([[32.0, 32.0]], np.float32), (68, 1))
    grey = measure(lab_image(62.0, 0.0, 0.0), landmarks, (8, 8, 56, 56))
    warm = measure(lab_image(62.0, 12.0, 18.0), landmarks, (8, 8, 56, 56))
    assert grey is not None and not grey.has_colour and abs(grey.ita) > 80
    assert warm is not None and warm.has_colour
    subject = SimpleNamespace(image=lab_image(62.0, 0.0, 0.0), face=SimpleNamespace(landmarks=landmarks,
                              box=(8, 8, 56, 56)), cache={})
    colour = next(m for m in demo_profile.modes if skin_tone.exempt_reason(m, GenerationRequest()) is None)
    verdict = skin_tone.check_output(view(lab_image(55.0, 14.0, 22.0), colour), subject, demo_profile,
                                     GenerationRequest())
    assert verdict is not None and verdict.kind == "pass" and "no colour" in verdict.data["exempt"]
