"""The look engine through the pipeline: identity holds, style moves toward the board, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastemaker.encoders.identity import IdentityEncoder, _numpy_net, identity_distance
from tastemaker.encoders.style import describe
from tastemaker.engines import create_engine, list_engines
from tastemaker.engines.base import GenerationRequest, Subject
from tastemaker.errors import IdentityGuardError, RequestError
from tastemaker.pipeline import GenerationResult, generate, prepare_subject
from tastemaker.prompt import parse_prompt
from tastemaker.provenance.service import Provenance
from tastemaker.taste.profile import TasteProfile

SIZE = 512


@pytest.fixture(scope="module")
def subject(selfie_path) -> Subject:  # type: ignore[no-untyped-def]
    return prepare_subject([selfie_path])


@pytest.fixture(scope="module")
def demo_result(subject: Subject, demo_profile: TasteProfile) -> GenerationResult:
    return generate(GenerationRequest(n=4, size=SIZE, seed=11), subject=subject, profile=demo_profile)


def test_every_output_keeps_identity(demo_result: GenerationResult, selfie: np.ndarray) -> None:
    """Measured independently of the guard: full detection on each output, distance to the selfie."""
    enc = IdentityEncoder()
    _, ref = enc.embed(selfie)
    for img in demo_result.images:
        _, vec = enc.embed(img.pixels)
        assert identity_distance(vec, ref) < 0.35
        assert img.identity_distance < 0.35


def test_the_guard_measures_the_released_picture(demo_result: GenerationResult, subject: Subject) -> None:
    """The distance an output reports is a verifier's: full detection on the released (watermarked) pixels.
    (The guard used to measure the render before marking, inside the engine's box; the watermark moves a
    marginal face detection, and outputs passed the guard that a verifier could not find a face in.)"""
    enc = IdentityEncoder()
    for img in demo_result.images:
        _, vec = enc.embed(img.pixels)
        assert identity_distance(vec, subject.identity) == pytest.approx(img.identity_distance, abs=1e-4)


def test_outputs_match_their_own_board_not_a_control(
    demo_result: GenerationResult, demo_profile: TasteProfile, control_profile: TasteProfile
) -> None:
    for img in demo_result.images:
        d = describe(img.pixels)
        assert demo_profile.style_score(d) > control_profile.style_score(d)


def test_style_moves_toward_the_board(demo_result: GenerationResult, demo_profile: TasteProfile) -> None:
    selfie_score = demo_profile.style_score(describe(demo_result.selfie))
    assert demo_result.selfie_style_score == pytest.approx(selfie_score)
    for img in demo_result.images:
        assert img.style_score > selfie_score + 0.05
        # and it is closest to the mode it was drawn in
        sims = demo_profile.mode_similarities(describe(img.pixels))
        assert max(sims, key=sims.get) == img.mode_id  # type: ignore[arg-type]


def test_variations_differ_and_cover_modes(demo_result: GenerationResult) -> None:
    imgs = demo_result.images
    assert {i.mode_id for i in imgs} == {"m1", "m2"}
    assert len({i.background for i in imgs}) >= 3
    for a in range(len(imgs)):
        for b in range(a + 1, len(imgs)):
            assert not np.array_equal(imgs[a].pixels, imgs[b].pixels)


def test_same_seed_same_pixels(subject: Subject, demo_profile: TasteProfile) -> None:
    """The engine is deterministic; outputs of generate differ only by their (unique) watermarks."""
    from tastemaker.provenance.watermark import psnr

    req = GenerationRequest(n=2, size=384, seed=5, aspect="1:1")
    eng = create_engine("look")
    intent = parse_prompt("", [(m.id, m.text, m.weight) for m in demo_profile.modes])
    plans = eng.plan(req, subject, demo_profile, intent)
    r1 = eng.render(plans, subject, demo_profile, req, hold=[0.0, 0.0])
    r2 = create_engine("look").render(plans, subject, demo_profile, req, hold=[0.0, 0.0])
    for x, y in zip(r1, r2, strict=True):
        assert np.array_equal(x.pixels, y.pixels)
    a = generate(req, subject=subject, profile=demo_profile)
    b = generate(req, subject=subject, profile=demo_profile)
    c = generate(req.with_seed(6), subject=subject, profile=demo_profile)
    for x, y, z in zip(a.images, b.images, c.images, strict=True):
        assert x.record_id != y.record_id
        assert psnr(x.pixels, y.pixels) > 36.0  # same image, two different marks
        assert psnr(x.pixels, z.pixels) < 30.0


@pytest.mark.parametrize(("aspect", "shape"), [("1:1", (300, 300)), ("4:5", (300, 240)), ("9:16", (300, 169)),
                                                ("2:3", (300, 200)), ("original", (300, 300))])
def test_aspect_and_size(subject: Subject, demo_profile: TasteProfile, aspect: str, shape: tuple[int, int]) -> None:
    res = generate(GenerationRequest(n=1, size=300, seed=1, aspect=aspect), subject=subject, profile=demo_profile)
    assert res.images[0].pixels.shape[:2] == shape


def test_strength_zero_leaves_colours_alone(subject: Subject, demo_profile: TasteProfile) -> None:
    req = GenerationRequest(n=1, size=256, seed=2, aspect="original", strength=0.0, background="keep",
                            framing="full")
    out = generate(req, subject=subject, profile=demo_profile).images[0].pixels
    ref = subject.image if subject.image.shape[0] == 256 else __import__("cv2").resize(subject.image, (256, 256))
    # no colour cast, no tone change: only resampling and the watermark differ
    assert np.abs(out.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).max() < 1.5
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 6


def test_guard_raises_hold_until_identity_holds(subject: Subject, demo_profile: TasteProfile) -> None:
    req = GenerationRequest(n=2, size=384, seed=3, strength=1.0)
    strict = generate(req, subject=subject, profile=demo_profile, identity_threshold=0.15)
    assert all(i.identity_distance <= strict.guard_threshold for i in strict.images)
    assert max(i.hold for i in strict.images) > 0.0


def test_guard_fails_closed(subject: Subject, demo_profile: TasteProfile) -> None:
    class Scrambler:
        name, version = "scrambler", "0"

        def __init__(self) -> None:
            self.inner = create_engine("look")

        def plan(self, *a, **k):  # type: ignore[no-untyped-def]
            return self.inner.plan(*a, **k)

        def render(self, plans, subject, profile, request, *, hold, assets=None):  # type: ignore[no-untyped-def]
            out = self.inner.render(plans, subject, profile, request, hold=hold, assets=assets)
            for r in out:
                r.pixels = np.ascontiguousarray(r.pixels[::-1])  # upside down: no face where promised
            return out

    with pytest.raises(IdentityGuardError, match="drifted from the selfie"):
        generate(GenerationRequest(n=1, size=256, seed=1), subject=subject, profile=demo_profile, engine=Scrambler())


def test_a_variation_failing_even_fully_held_is_drawn_again(subject: Subject, demo_profile: TasteProfile) -> None:
    """The first draw of variation 1 has no face where promised at any hold: it is drawn afresh (a plan from a
    derived seed), passes, and says so; variation 0 is untouched."""
    req = GenerationRequest(n=2, size=256, seed=5)
    first = generate(req, subject=subject, profile=demo_profile)
    bad_seed = first.images[1].seed

    class FirstDrawFails:
        name, version = "first-draw-fails", "0"

        def __init__(self) -> None:
            self.inner = create_engine("look")
            self.calls = 0

        def plan(self, *a, **k):  # type: ignore[no-untyped-def]
            return self.inner.plan(*a, **k)

        def render(self, plans, subject, profile, request, *, hold, assets=None):  # type: ignore[no-untyped-def]
            out = self.inner.render(plans, subject, profile, request, hold=hold, assets=assets)
            for r in out:
                if r.plan.seed == bad_seed:
                    r.pixels = np.ascontiguousarray(r.pixels[::-1])
            return out

    got = generate(req, subject=subject, profile=demo_profile, engine=FirstDrawFails())
    assert got.images[0].seed == first.images[0].seed and "redrawn" not in got.images[0].info
    assert got.images[1].seed != bad_seed and got.images[1].info["redrawn"] == 1
    assert got.images[1].identity_distance <= got.guard_threshold
    assert any("drawn again" in n for n in got.notes())
    again = generate(req, subject=subject, profile=demo_profile, engine=FirstDrawFails())
    assert again.images[1].seed == got.images[1].seed  # a redraw is as reproducible as a first draw


def test_guard_gives_the_same_result_with_dlibs_runner_in_workers(
    subject: Subject, demo_profile: TasteProfile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the guard measures the marked output: two stores that mark the same pixels the same way
    def store(name: str) -> Provenance:
        return Provenance(tmp_path / name, secret="guard-runner-test", repeatable=True)

    req = GenerationRequest(n=2, size=256, seed=9)
    a = generate(req, subject=subject, profile=demo_profile, guard_workers=0, provenance=store("a"))
    monkeypatch.setenv("TASTEMAKER_FACE_NET", "dlib")
    _numpy_net.cache_clear()
    try:
        b = generate(req, subject=subject, profile=demo_profile, guard_workers=2, provenance=store("b"))
    finally:
        monkeypatch.delenv("TASTEMAKER_FACE_NET")
        _numpy_net.cache_clear()
    assert [i.identity_distance for i in a.images] == pytest.approx([i.identity_distance for i in b.images], abs=1e-5)


def test_prompt_selects_mode_and_composition(subject: Subject, demo_profile: TasteProfile) -> None:
    res = generate(
        GenerationRequest(n=3, size=256, seed=4, prompt="moody blue hour noir, close-up, blurred background"),
        subject=subject,
        profile=demo_profile,
    )
    assert {i.mode_id for i in res.images} == {"m2"}
    assert {i.background for i in res.images} == {"blur"}
    assert {i.framing for i in res.images} == {"closeup"}
    # same mode and background: the later variations still differ in more than grain
    means = [i.pixels.reshape(-1, 3).mean(0) for i in res.images]
    assert max(np.abs(means[0] - m).max() for m in means[1:]) > 2.0


@pytest.mark.parametrize("backend", ["lexical", pytest.param("minilm", marks=pytest.mark.text)])
def test_parse_prompt_vocabulary(backend: str) -> None:
    from tastemaker.encoders.text import get_text_encoder, minilm_available

    if backend == "minilm" and not minilm_available():
        pytest.skip("needs the [text] extra")
    enc = get_text_encoder(backend)
    modes = [("m1", "warm film golden hour cafe", 0.6), ("m2", "cool moody noir night", 0.4)]
    p = parse_prompt("golden cafe vibes, full body, studio backdrop", modes, enc)
    assert (p.framing, p.background, p.matched) == ("full", "backdrop", True)
    assert set(p.mode_weights) == {"m1"}
    q = parse_prompt("", modes, enc)
    assert q.framing is None and q.mode_weights == pytest.approx({"m1": 0.6, "m2": 0.4})
    assert parse_prompt("zebra spaceship", modes, enc).matched is False
    r = parse_prompt("a dark rainy night, head and shoulders, keep background", modes, enc)
    assert (r.framing, r.background, set(r.mode_weights)) == ("portrait", "keep", {"m2"})


def test_board_and_profile_paths_agree(subject: Subject, demo_board, demo_profile: TasteProfile) -> None:  # type: ignore[no-untyped-def]
    req = GenerationRequest(n=1, size=256, seed=8)
    from tastemaker.provenance.watermark import psnr

    a = generate(req, subject=subject, board=demo_board)
    b = generate(req, subject=subject, profile=demo_profile)
    assert psnr(a.images[0].pixels, b.images[0].pixels) > 36.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 9}, "n: Input should be less than or equal to 8"),
        ({"n": 0}, "n: Input should be greater than or equal to 1"),
        ({"size": 100}, "size: Input should be greater than or equal to 256"),
        ({"size": 4096}, "size: Input should be less than or equal to 2048"),
        ({"aspect": "3:1"}, "aspect: must be one of 1:1, 4:5, 2:3, 9:16, 3:2, original"),
        ({"format": "bmp"}, "format 'bmp' is not supported"),
        ({"strength": 1.5}, "strength: Input should be less than or equal to 1"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ],
)
def test_request_validation(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(RequestError, match=message):
        GenerationRequest.create(**kwargs)


def test_unknown_mode_and_engine(subject: Subject, demo_profile: TasteProfile) -> None:
    from tastemaker.errors import ProfileError

    with pytest.raises(ProfileError, match="no mode 'm9'"):
        generate(GenerationRequest(n=1, size=256, mode="m9"), subject=subject, profile=demo_profile)
    with pytest.raises(RequestError, match="unknown engine 'nope'"):
        generate(GenerationRequest(n=1, size=256), subject=subject, profile=demo_profile, engine="nope")
    assert "look" in list_engines()


def test_subject_reused_with_another_profile_gets_that_profiles_look(
    selfie_path, demo_profile: TasteProfile, control_profile: TasteProfile, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """Engine caches are keyed by the look itself, not by mode id ('m1' exists in both profiles)."""
    from tastemaker.provenance.watermark import psnr

    # the guard measures marked outputs: stores that mark the same pixels the same way, so both runs hold alike
    def store(name: str) -> Provenance:
        return Provenance(tmp_path / name, secret="reuse-test", repeatable=True)

    shared = prepare_subject([selfie_path])
    req = GenerationRequest(n=1, size=256, seed=3, mode="m1")
    generate(req, subject=shared, profile=demo_profile, provenance=store("first"))
    reused = generate(req, subject=shared, profile=control_profile, provenance=store("reused")).images[0].pixels
    fresh = generate(req, subject=prepare_subject([selfie_path]), profile=control_profile,
                     provenance=store("fresh")).images[0].pixels
    assert psnr(reused, fresh) > 36.0  # equal up to the watermarks (the same here, but not required)


def test_a_fresh_provenance_store_opened_by_two_threads_at_once_is_one_store(tmp_path: Path) -> None:
    """Each opening of a fresh store made its own C2PA signing identity; the loser's images verified as untrusted."""
    import threading

    from tastemaker.pipeline import provenance_for

    start = threading.Barrier(4)
    got: list[Provenance] = []

    def open_it() -> None:
        start.wait()
        got.append(provenance_for(tmp_path / "store", "two-threads-secret"))

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(p is got[0] for p in got)


def test_the_guard_aims_its_hold_steps() -> None:
    """A far-off variation jumps to the hold its distances say it needs instead of one level per round."""
    from tastemaker.pipeline.guard import HOLD_LEVELS
    from tastemaker.pipeline.holding import FULL_HOLD_DISTANCE, next_level

    thr = 0.35
    # one draw at hold 0, 0.58 away: the line to (1, FULL_HOLD_DISTANCE) needs ~0.6
    need = (0.58 - thr) / (0.58 - FULL_HOLD_DISTANCE)
    level = next_level(0, [(0.0, 0.58)], thr, near_but_hidden=False)
    assert HOLD_LEVELS[level] >= need and HOLD_LEVELS[level - 1] < need
    # a near miss is one step
    assert next_level(0, [(0.0, 0.37)], thr, near_but_hidden=False) == 1
    # two draws: the secant through them (0.45 at 0.4, 0.40 at 0.6 -> 0.35 at 0.8)
    assert HOLD_LEVELS[next_level(2, [(0.4, 0.45), (0.6, 0.40)], thr, near_but_hidden=False)] == 0.8
    # a face near enough that a detector misses, a distance that does not fall, no face at all: one step
    assert next_level(1, [(0.4, 0.30)], thr, near_but_hidden=True) == 2
    assert next_level(2, [(0.4, 0.40), (0.6, 0.41)], thr, near_but_hidden=False) == 3
    assert next_level(0, [(0.0, float("inf"))], thr, near_but_hidden=False) == 1
    # never past full hold
    assert next_level(len(HOLD_LEVELS) - 2, [(0.9, 0.9)], thr, near_but_hidden=False) == len(HOLD_LEVELS) - 1
