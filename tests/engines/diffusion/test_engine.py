"""The diffusion engine on tiny random models: determinism, adapters' effects, batching, hold, files, pipeline."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .helpers import require, settings, tiny_paths

require()

from tastemaker.encoders.identity import IdentityEmbedding  # noqa: E402
from tastemaker.engines.base import GenerationRequest, IdentitySubject, Subject  # noqa: E402
from tastemaker.engines.diffusion import (  # noqa: E402
    DiffusionEngine,
    ModelFilesError,
    PinEmbeddings,
    StyleEmbed,
    hold_schedule,
    mode_prototypes,
)
from tastemaker.errors import NoFaceError  # noqa: E402
from tastemaker.prompt import parse_prompt  # noqa: E402
from tastemaker.taste.profile import TasteProfile  # noqa: E402


def _plans(engine: Any, req: GenerationRequest, subject: Any, profile: TasteProfile) -> list[Any]:
    intent = parse_prompt(req.prompt, [(m.id, m.text, m.weight) for m in profile.modes], None)
    return engine.plan(req, subject, profile, intent)


def _render(engine: Any, req: GenerationRequest, subject: Any, profile: TasteProfile, hold: float = 0.0) -> list[Any]:
    plans = _plans(engine, req, subject, profile)
    return [r.pixels for r in engine.render(plans, subject, profile, req, hold=[hold] * len(plans))]


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float rounding: batched and single matmuls may round differently (at most 1 level of 255)."""
    return a.shape == b.shape and int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= 1


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_same_seed_same_pixels_other_seed_differs(engine: Any, subject: Subject, demo_profile: TasteProfile,
                                                  request_2: GenerationRequest) -> None:
    a = _render(engine, request_2, subject, demo_profile)
    b = _render(engine, request_2, subject, demo_profile)
    c = _render(engine, request_2.with_seed(8), subject, demo_profile)
    assert _same(a, b)
    assert not any(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert not np.array_equal(a[0], a[1])  # variations differ


@pytest.mark.parametrize("img2img", [False, True])
def test_zero_scales_equal_the_bare_base_model(engine: Any, subject: Subject, demo_profile: TasteProfile,
                                               request_2: GenerationRequest, img2img: bool) -> None:
    p = tiny_paths()
    bare = DiffusionEngine(base=p.base, device="cpu", img2img=img2img)  # no adapter installed at all
    assert bare.adapter is None
    with settings(engine, style_scale=0.0, identity_scale=0.0, hold_identity_scale=0.0, img2img=img2img):
        got = _render(engine, request_2, subject, demo_profile)
    assert _same(got, _render(bare, request_2, subject, demo_profile))
    with settings(engine, img2img=img2img):
        assert not _same(got, _render(engine, request_2, subject, demo_profile))


def _perturbed(engine: Any, delta: float) -> PinEmbeddings:
    old = engine.embeddings
    return PinEmbeddings(old.encoder, {k: v + delta for k, v in old.vectors.items()})


def test_board_prototype_steers_the_output_and_style_zero_ignores_it(
    engine: Any, subject: Subject, demo_profile: TasteProfile, request_2: GenerationRequest
) -> None:
    original = PinEmbeddings(engine.embeddings.encoder, dict(engine.embeddings.vectors))
    base = _render(engine, request_2, subject, demo_profile)
    with settings(engine, style_scale=0.0):
        no_style = _render(engine, request_2, subject, demo_profile)
    try:
        engine.add_embeddings(_perturbed(engine, 0.5))
        moved = _render(engine, request_2, subject, demo_profile)
        with settings(engine, style_scale=0.0):
            no_style_moved = _render(engine, request_2, subject, demo_profile)
    finally:
        engine.add_embeddings(original)
    assert not _same(base, moved)
    assert _same(no_style, no_style_moved)  # scale 0: the style input takes no part at all (fusion included)
    assert _same(base, _render(engine, request_2, subject, demo_profile))


def test_identity_embedding_steers_the_output(engine: Any, subject: Subject, demo_profile: TasteProfile,
                                              request_2: GenerationRequest) -> None:
    other = dataclasses.replace(subject, identity=IdentityEmbedding(vector=subject.identity.vector + 0.05), cache={})
    with settings(engine, img2img=False):
        a = _render(engine, request_2, subject, demo_profile)
        b = _render(engine, request_2, other, demo_profile)
        with settings(engine, identity_scale=0.0, hold_identity_scale=0.0):
            c = _render(engine, request_2, subject, demo_profile)
            d = _render(engine, request_2, other, demo_profile)
    assert not _same(a, b)
    assert _same(c, d)


def test_batch_of_n_equals_n_single_runs(engine: Any, subject: Subject, demo_profile: TasteProfile) -> None:
    req = GenerationRequest(n=3, size=256, aspect="4:5", seed=3)
    plans = _plans(engine, req, subject, demo_profile)
    assert len({p.mode_id for p in plans}) == 2  # per-sample style tokens in one batch
    batch = engine.render(plans, subject, demo_profile, req, hold=[0.0] * 3)
    for plan, r in zip(plans, batch, strict=True):
        single = engine.render([plan], subject, demo_profile, req, hold=[0.0])[0]
        assert _close(single.pixels, r.pixels)
        assert r.face_box is None and r.pixels.shape == (256, 205, 3)


def test_hold_raises_identity_lowers_style_and_denoise(engine: Any, subject: Subject, demo_profile: TasteProfile,
                                                       request_2: GenerationRequest) -> None:
    kw = dict(strength=0.8, style_scale=0.8, identity_scale=0.6, hold_identity_scale=1.2)
    levels = [hold_schedule(h, img2img=True, **kw) for h in (0.0, 0.5, 0.8, 1.0)]
    for (s0, i0, d0), (s1, i1, d1) in zip(levels, levels[1:], strict=False):
        assert s1 < s0 and i1 > i0 and d1 < d0
    assert levels[0] == pytest.approx((0.8, 0.6, 0.8)) and levels[-1] == pytest.approx((0.4, 1.2, 0.32))
    assert hold_schedule(0.0, img2img=False, **kw)[0] == pytest.approx(0.64)  # text-to-image: strength x style
    a = _render(engine, request_2, subject, demo_profile, hold=0.0)
    b = _render(engine, request_2, subject, demo_profile, hold=1.0)
    assert not _same(a, b)
    plans = _plans(engine, request_2, subject, demo_profile)
    mixed = engine.render(plans, subject, demo_profile, request_2, hold=[1.0, 0.0])
    assert _close(mixed[0].pixels, b[0]) and _close(mixed[1].pixels, a[1])


def test_identity_only_subject_renders_text_to_image(engine: Any, subject: Subject, demo_profile: TasteProfile,
                                                     request_2: GenerationRequest) -> None:
    only = IdentitySubject(identity=subject.identity)
    a = _render(engine, request_2, only, demo_profile)
    with settings(engine, img2img=False):
        b = _render(engine, request_2, subject, demo_profile)
    assert _same(a, b)  # without pixels it is text-to-image from the same identity
    assert not _same(a, _render(engine, request_2, subject, demo_profile))  # img2img from the selfie differs


def test_pipeline_guard_provenance_and_identity_file(engine: Any, subject: Subject, demo_board: Any,
                                                     demo_profile: TasteProfile, tmp_path: Path) -> None:
    from tastemaker.pipeline import generate, save_result

    req = GenerationRequest(n=2, size=256, aspect="1:1", seed=5, format="jpeg")
    # tiny random models draw no face, so the guard (full detection: face_box is None) is told to accept any
    res = generate(req, subject=subject, board=demo_board, engine=engine, identity_threshold=math.inf)
    assert res.engine == "diffusion" and len(res.images) == 2
    assert all(img.identity_distance == math.inf for img in res.images)
    manifest = json.loads(save_result(res, tmp_path / "a").read_text())
    assert manifest["engine"]["name"] == "diffusion" and len(manifest["images"]) == 2

    ident = IdentityEmbedding.from_dict(json.loads(json.dumps(subject.identity.to_dict())))
    res2 = generate(req, identity=ident, profile=demo_profile, engine=engine, identity_threshold=math.inf)
    assert res2.selfie is None and math.isnan(res2.selfie_style_score)
    assert (save_result(res2, tmp_path / "b").parent / "contact_sheet.png").is_file()
    with pytest.raises(NoFaceError, match="look engine redraws a selfie"):
        generate(req, identity=ident, profile=demo_profile, engine="look")


def test_profile_only_embeddings_file_round_trips(engine: Any, demo_profile: TasteProfile, tmp_path: Path) -> None:
    path = engine.embeddings.save(tmp_path / "board.clip.json")
    loaded = PinEmbeddings.load(path)
    assert loaded.encoder == engine.embeddings.encoder and loaded.dim == 16
    a, b = mode_prototypes(demo_profile, engine.embeddings), mode_prototypes(demo_profile, loaded)
    assert a.keys() == b.keys() == {m.id for m in demo_profile.modes}
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    p = tiny_paths()
    fresh = DiffusionEngine(base=p.base, image_encoder=p.image_encoder, styleembed=p.styleembed, device="cpu",
                            clip_embeddings=path)
    req = GenerationRequest(n=1, size=256, aspect="1:1", seed=2)
    subject = IdentitySubject(identity=IdentityEmbedding(vector=np.full(128, 0.05)))
    assert len(_render(fresh, req, subject, demo_profile)) == 1
    bad = PinEmbeddings("another-encoder", loaded.vectors)
    with pytest.raises(Exception, match="re-run `tastemaker clip-embed`"):
        fresh.add_embeddings(bad)


def test_missing_embeddings_are_a_clear_error(demo_profile: TasteProfile) -> None:
    from tastemaker.errors import ProfileError

    with pytest.raises(ProfileError, match="tastemaker clip-embed"):
        mode_prototypes(demo_profile, PinEmbeddings("x", {}))


def test_missing_weight_files_name_the_file(tmp_path: Path) -> None:
    p = tiny_paths()
    with pytest.raises(ModelFilesError, match=r"model_index\.json not found"):
        DiffusionEngine(base=tmp_path / "nowhere", device="cpu")
    broken = tmp_path / "styleembed"
    shutil.copytree(p.styleembed, broken)
    (broken / "styleembed.safetensors").unlink()
    with pytest.raises(ModelFilesError, match=r"styleembed\.safetensors not found"):
        StyleEmbed.load(broken)
    with pytest.raises(ModelFilesError, match=r"styleembed\.safetensors not found"):
        DiffusionEngine(base=p.base, styleembed=broken, device="cpu")
    with pytest.raises(ModelFilesError, match=r"config\.json not found"):
        DiffusionEngine(base=p.base, image_encoder=tmp_path / "no-encoder", device="cpu")
    with pytest.raises(ModelFilesError, match=r"ip-adapter\.bin not found"):
        DiffusionEngine(base=p.base, ip_adapter=tmp_path / "ip-adapter.bin", device="cpu")
    unet_less = tmp_path / "base"
    shutil.copytree(p.base, unet_less)
    shutil.rmtree(unet_less / "unet")
    with pytest.raises(ModelFilesError, match=str(unet_less)):
        DiffusionEngine(base=unet_less, device="cpu")


def test_public_ip_adapter_file_seeds_the_style_slot(engine: Any, tmp_path: Path, subject: Subject,
                                                     demo_profile: TasteProfile, request_2: GenerationRequest) -> None:
    import torch
    from safetensors.torch import save_file

    se = engine.adapter
    flat = {
        "image_proj.proj.weight": se.style_proj.image_embeds.weight,
        "image_proj.proj.bias": se.style_proj.image_embeds.bias,
        "image_proj.norm.weight": se.style_proj.norm.weight,
        "image_proj.norm.bias": se.style_proj.norm.bias,
    }
    for i in range(len(se.config.layers)):
        flat[f"ip_adapter.{1 + 2 * i}.to_k_ip.weight"] = se.kv(i)[0][0].weight
        flat[f"ip_adapter.{1 + 2 * i}.to_v_ip.weight"] = se.kv(i)[1][0].weight
    path = tmp_path / "ip-adapter.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in flat.items()}, str(path))
    p = tiny_paths()
    eng = DiffusionEngine(base=p.base, image_encoder=p.image_encoder, ip_adapter=path, device="cpu")
    assert eng.adapter is not None and eng.adapter.n_slots == 1
    assert torch.equal(eng.adapter.style_proj.image_embeds.weight, se.style_proj.image_embeds.weight)
    eng.add_embeddings(engine.embeddings)
    out = _render(eng, request_2, subject, demo_profile)
    with settings(eng, style_scale=0.0):
        assert not _same(out, _render(eng, request_2, subject, demo_profile))


def test_factory_needs_a_base_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tastemaker.engines.diffusion import create_diffusion_engine
    from tastemaker.errors import MissingDependencyError, RequestError

    with pytest.raises(RequestError, match="TASTEMAKER_DIFFUSION_BASE"):
        create_diffusion_engine()
    monkeypatch.setenv("TASTEMAKER_DIFFUSION_BASE", str(tiny_paths().base))
    monkeypatch.setenv("TASTEMAKER_DIFFUSION_DEVICE", "cpu")
    eng = create_diffusion_engine(steps=1)
    assert eng.name == "diffusion" and eng.steps == 1 and eng.adapter is None
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'tastemaker\[diffusion\]'"):
        create_diffusion_engine()
