"""Every hook driven through the pipeline itself, with plugins registered as a program embedding Tastemaker would
(pluggy registration of a module or object), and the built-in skin-tone plugin against a deliberately shifted
output."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from tastemaker.engines import create_engine
from tastemaker.engines.base import GenerationRequest, Rendered, Subject, VariationPlan
from tastemaker.errors import OutputVetoedError, PluginError
from tastemaker.pipeline import Pipeline, prepare_subject
from tastemaker.plugins import Plugins, Verdict, hookimpl
from tastemaker.plugins.builtin import skin_tone
from tastemaker.plugins.builtin.alt_text import IDENTITY_WORDS
from tastemaker.plugins.skin import map_landmarks, measure
from tastemaker.provenance.service import Provenance
from tastemaker.taste.profile import TasteProfile

from .conftest import CRASH, DESCRIBE, HOLD, HOUSE_RULES, VETO


@pytest.fixture(scope="module")
def subject(selfie_path: Path) -> Subject:
    return prepare_subject([selfie_path])


@pytest.fixture
def prov(tmp_path: Path) -> Provenance:
    return Provenance(tmp_path / "prov", secret="plugins-test", repeatable=True)


def house_rules(tmp_path: Path) -> Any:
    """The test plugin's module, imported from a file (pluggy registration, no entry point)."""
    (tmp_path / "tm_house_rules_direct.py").write_text(HOUSE_RULES)
    spec = importlib.util.spec_from_file_location("tm_house_rules_direct", tmp_path / "tm_house_rules_direct.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plugins_with(*pairs: tuple[str, object], on_error: str = "") -> Plugins:
    plugins = Plugins.load("none", on_error=on_error)
    for name, plugin in pairs:
        plugins.register(plugin, name)
    return plugins


def run(plugins: Plugins, prov: Provenance, subject: Subject, profile: TasteProfile, seed: int = 5,
        prompt: str = "") -> Any:
    pipe = Pipeline("look", guard_workers=0, provenance=prov, plugins=plugins, text_encoder="lexical")
    return pipe(GenerationRequest(prompt=prompt, n=1, size=256, seed=seed), subject=subject, profile=profile)


def test_every_hook_of_a_plugin_runs(tmp_path: Path, prov: Provenance, subject: Subject,
                                     demo_profile: TasteProfile) -> None:
    plugins = plugins_with(("house_rules", house_rules(tmp_path)))
    pipe = Pipeline("house_look", guard_workers=0, provenance=prov, plugins=plugins, text_encoder="house_words")
    assert pipe.engine.name == "house_look"  # register_engines
    assert type(pipe.text_encoder).__name__ == "HouseWords"  # register_encoders
    result = pipe(GenerationRequest(n=1, size=256, seed=DESCRIBE, strength=0.9), subject=subject,
                  profile=demo_profile)
    assert result.request.strength == 0.7  # adjust_request
    assert all(m.name.startswith("house ") and "house" in m.tags for m in result.profile.modes)  # adjust_profile
    im = result.images[0]
    assert im.mode_name.startswith("house ")
    assert im.info["plugins"]["house_rules"] == {"verdict": "annotate", "reason": "checked by house rules",
                                                 "mode": im.mode_id, "mode_name": im.mode_name,
                                                 "strength": 0.7}  # check_output
    assert "variation 0: house_rules: checked by house rules" in result.notes()
    assert im.info["alt_text"] == "House description of variation 0."  # describe_output, first answer wins


def test_a_veto_is_an_error_and_nothing_is_released(tmp_path: Path, prov: Provenance, subject: Subject,
                                                    demo_profile: TasteProfile) -> None:
    plugins = plugins_with(("house_rules", house_rules(tmp_path)))
    before = prov.ledger.size
    with pytest.raises(OutputVetoedError, match="variation 0 refused by plugin 'house_rules': no outputs on veto"):
        run(plugins, prov, subject, demo_profile, VETO)
    with pytest.raises(OutputVetoedError, match="refused by plugin 'house_rules'.*'forbidden'"):
        run(plugins, prov, subject, demo_profile, prompt="forbidden")
    assert prov.ledger.size == before  # nothing was logged, nothing released


def test_a_raising_check_fails_closed_unless_set_to_skip(tmp_path: Path, prov: Provenance, subject: Subject,
                                                         demo_profile: TasteProfile) -> None:
    module = house_rules(tmp_path)
    with pytest.raises(PluginError, match="plugin 'house_rules' failed in check_output.*house rules crashed"):
        run(plugins_with(("house_rules", module)), prov, subject, demo_profile, CRASH)
    result = run(plugins_with(("house_rules", module), on_error="check_output=skip"), prov, subject, demo_profile,
                 CRASH)
    assert any("plugin 'house_rules' skipped in check_output: RuntimeError" in n for n in result.notes())


def test_a_hold_verdict_renders_again_with_the_face_held_more(tmp_path: Path, prov: Provenance, subject: Subject,
                                                              demo_profile: TasteProfile) -> None:
    result = run(plugins_with(("house_rules", house_rules(tmp_path))), prov, subject, demo_profile, HOLD)
    im = result.images[0]
    assert im.hold >= 0.6 and im.info["plugin_held"] >= 1
    assert im.info["plugins"]["house_rules"]["held_back"] == im.info["plugin_held"]
    assert im.info["plugins"]["house_rules"]["first"]["verdict"] == "hold"


# ------------------------------------------------------------------------------------------ skin tone
class DarkeningEngine:
    """The look engine, except that below hold 0.9 it darkens the face's skin (a grade that harms skin tone)."""

    def __init__(self) -> None:
        self.inner = create_engine("look")
        self.name, self.version, self.accepts_identity_only = "darkening", "1", False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def render(self, plans: Sequence[VariationPlan], subject: Subject, profile: TasteProfile,
               request: GenerationRequest, *, hold: Sequence[float], assets: Any = None) -> list[Rendered]:
        out = self.inner.render(plans, subject, profile, request, hold=hold, assets=assets)
        return [darken(r) if r.hold < 0.9 else r for r in out]


def darken(r: Rendered) -> Rendered:
    assert r.face_box is not None
    x0, y0, x1, y1 = r.face_box
    lab = cv2.cvtColor(r.pixels.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    region = lab[max(0, y0):y1, max(0, x0):x1]
    region[..., 0] *= 0.72
    region[..., 2] += 6.0
    pixels = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
    return dataclasses.replace(r, pixels=pixels)


def ita_shift(subject: Subject, pixels: np.ndarray, face_box: tuple[int, int, int, int]) -> float:
    before = measure(subject.image, subject.face.landmarks, subject.face.box)
    after = measure(pixels, map_landmarks(subject.face.landmarks, subject.face.box, face_box), face_box)
    assert before is not None and after is not None
    return after.ita - before.ita


def colour_profile(profile: TasteProfile) -> TasteProfile:
    """The demo profile with only its colour modes (the skin-tone check does not apply to monochrome ones)."""
    modes = [m for m in profile.modes if skin_tone.exempt_reason(m, GenerationRequest()) is None]
    assert modes
    return profile.model_copy(update={"modes": modes})


def test_skin_tone_holds_back_a_darkened_output(prov: Provenance, subject: Subject,
                                                demo_profile: TasteProfile) -> None:
    profile = colour_profile(demo_profile)
    pipe = Pipeline(DarkeningEngine(), guard_workers=0, provenance=prov, plugins=Plugins.load("skin_tone"))
    request = GenerationRequest(n=1, size=320, seed=5, background="keep")
    result = pipe(request, subject=subject, profile=profile)
    im = result.images[0]
    rec = im.info["plugins"]["skin_tone"]
    assert rec["held_back"] >= 1 and rec["first"]["verdict"] == "hold"
    assert abs(rec["first"]["ita_shift_deg"]) > skin_tone.THRESHOLD_DEG
    assert abs(rec["ita_shift_deg"]) <= skin_tone.THRESHOLD_DEG and rec["verdict"] == "pass"
    assert im.hold >= 0.9
    # without the plugin the same request releases the darkened face
    bare = Pipeline(DarkeningEngine(), guard_workers=0, provenance=prov, plugins=Plugins.none())
    shifted = bare(request, subject=subject, profile=profile).images[0]
    assert "plugins" not in shifted.info and shifted.hold < 0.9


def test_alt_text_is_on_every_output_and_names_no_one(prov: Provenance, subject: Subject,
                                                      demo_profile: TasteProfile) -> None:
    pipe = Pipeline("look", guard_workers=0, provenance=prov, plugins=Plugins.load("alt_text,contrast"))
    result = pipe(GenerationRequest(n=2, size=256, seed=9), subject=subject, profile=demo_profile)
    for im in result.images:
        text = im.info["alt_text"]
        assert "person" in text and im.mode_name.split(" ")[0] in text
        words = {w.strip(".,;()").lower() for w in text.split()}
        assert not (words & (IDENTITY_WORDS - {"black", "white"})), text
        assert im.info["plugins"]["contrast"]["verdict"] in ("pass", "annotate")
        assert im.record()["alt_text"] == text  # the manifest entry


def test_a_check_that_returns_a_bare_string_is_an_annotation(prov: Provenance, subject: Subject,
                                                              demo_profile: TasteProfile) -> None:
    def check_output(output: Any) -> Any:
        return "looks fine"

    result = run(plugins_with(("lenient", SimpleNamespace(check_output=hookimpl(check_output)))), prov, subject,
                 demo_profile)
    assert result.images[0].info["plugins"]["lenient"]["verdict"] == "annotate"
    assert isinstance(Verdict.ok(), Verdict)
