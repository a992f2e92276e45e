"""The engine contract, written once and run against every engine (diffusers' pipeline-common-tests idea).

Each backend class provides an ``engine`` fixture; ``EngineContract`` checks what the pipeline relies on:
plan fields, determinism, n outputs, sizes and aspects, uint8 HxWx3 pixels that every output format encodes.
The diffusion engine runs on tiny random models and is skipped without the ``[diffusion]`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tastemaker.engines import Engine, create_engine
from tastemaker.engines.base import GenerationRequest, Rendered, Subject, VariationPlan
from tastemaker.media import decode_image, encode_image
from tastemaker.prompt import parse_prompt
from tastemaker.taste.profile import TasteProfile


@pytest.fixture(scope="module")
def subject(selfie_path: Any) -> Subject:
    from tastemaker.pipeline import prepare_subject

    return prepare_subject([selfie_path])


def _plan(engine: Engine, req: GenerationRequest, subject: Subject, profile: TasteProfile) -> list[VariationPlan]:
    intent = parse_prompt(req.prompt, [(m.id, m.text, m.weight) for m in profile.modes], None)
    return engine.plan(req, subject, profile, intent)


def _render(engine: Engine, req: GenerationRequest, subject: Subject, profile: TasteProfile) -> list[Rendered]:
    plans = _plan(engine, req, subject, profile)
    return engine.render(plans, subject, profile, req, hold=[0.0] * len(plans))


class EngineContract:
    """Behaviour every engine owes the pipeline. Subclasses provide the ``engine`` fixture."""

    def test_is_an_engine(self, engine: Engine) -> None:
        assert isinstance(engine, Engine)
        assert engine.name and engine.version

    def test_plan_fields(self, engine: Engine, subject: Subject, demo_profile: TasteProfile) -> None:
        req = GenerationRequest(n=3, size=256, seed=4, strength=0.6)
        plans = _plan(engine, req, subject, demo_profile)
        assert [p.index for p in plans] == [0, 1, 2]
        assert len({p.seed for p in plans}) == 3 and all(isinstance(p.seed, int) and p.seed >= 0 for p in plans)
        modes = {m.id for m in demo_profile.modes}
        for p in plans:
            assert p.mode_id in modes and p.strength == 0.6
            assert isinstance(p.background, str) and p.background
            assert p.framing in ("closeup", "portrait", "half", "full")
        assert _plan(engine, req, subject, demo_profile) == plans  # plans are deterministic for a seed
        forced = _plan(engine, req.model_copy(update={"mode": "m2", "framing": "closeup"}), subject, demo_profile)
        assert {p.mode_id for p in forced} == {"m2"} and {p.framing for p in forced} == {"closeup"}

    def test_render_returns_rendered_uint8_rgb(self, engine: Engine, subject: Subject,
                                               demo_profile: TasteProfile) -> None:
        req = GenerationRequest(n=2, size=256, aspect="4:5", seed=1)
        plans = _plan(engine, req, subject, demo_profile)
        out = engine.render(plans, subject, demo_profile, req, hold=[0.0, 0.5])
        assert len(out) == 2
        for r, p, h in zip(out, plans, (0.0, 0.5), strict=True):
            assert isinstance(r, Rendered) and r.plan == p and r.hold == h
            assert r.pixels.dtype == np.uint8 and r.pixels.ndim == 3 and r.pixels.shape == (256, 205, 3)
            assert r.face_box is None or len(r.face_box) == 4

    def test_same_seed_same_pixels(self, engine: Engine, subject: Subject, demo_profile: TasteProfile) -> None:
        req = GenerationRequest(n=2, size=256, aspect="1:1", seed=9)
        a, b = _render(engine, req, subject, demo_profile), _render(engine, req, subject, demo_profile)
        c = _render(engine, req.with_seed(10), subject, demo_profile)
        for x, y, z in zip(a, b, c, strict=True):
            assert np.array_equal(x.pixels, y.pixels)
            assert not np.array_equal(x.pixels, z.pixels)

    @pytest.mark.parametrize("n", [1, 3])
    def test_n_outputs(self, engine: Engine, subject: Subject, demo_profile: TasteProfile, n: int) -> None:
        assert len(_render(engine, GenerationRequest(n=n, size=256, seed=2), subject, demo_profile)) == n

    @pytest.mark.parametrize(("size", "aspect", "shape"), [(256, "1:1", (256, 256)), (300, "9:16", (300, 169)),
                                                           (320, "2:3", (320, 213))])
    def test_sizes_and_aspects(self, engine: Engine, subject: Subject, demo_profile: TasteProfile, size: int,
                               aspect: str, shape: tuple[int, int]) -> None:
        req = GenerationRequest(n=1, size=size, aspect=aspect, seed=3)
        assert _render(engine, req, subject, demo_profile)[0].pixels.shape == (*shape, 3)

    def test_original_aspect_follows_the_selfie(self, engine: Engine, subject: Subject,
                                                demo_profile: TasteProfile) -> None:
        assert subject.image is not None
        h, w = subject.image.shape[:2]
        px = _render(engine, GenerationRequest(n=1, size=256, aspect="original", seed=3), subject, demo_profile)
        got_h, got_w = px[0].pixels.shape[:2]
        assert max(got_h, got_w) == 256 and abs(got_w / got_h - w / h) < 0.02

    @pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
    def test_outputs_encode_in_every_format(self, engine: Engine, subject: Subject, demo_profile: TasteProfile,
                                            fmt: str) -> None:
        req = GenerationRequest(n=1, size=256, seed=5, format=fmt)
        px = _render(engine, req, subject, demo_profile)[0].pixels
        back = decode_image(encode_image(px, req.format))
        assert back.shape == px.shape


class TestLookEngine(EngineContract):
    @pytest.fixture(scope="class")
    def engine(self) -> Engine:
        return create_engine("look")


class TestDiffusionEngine(EngineContract):
    @pytest.fixture(scope="class")
    def engine(self, demo_board: Any, demo_profile: TasteProfile) -> Engine:
        from tests.engines.diffusion.helpers import require, tiny_engine

        require()
        eng = tiny_engine()
        eng.prepare_board(demo_board, demo_profile)
        return eng
