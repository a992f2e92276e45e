"""Taste profile: weights, modes, order independence, JSON round-trip, schema checks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker.boards import Board, Pin, build_board
from tastemaker.encoders.style import describe, style_similarity
from tastemaker.errors import EmptyBoardError, ProfileError
from tastemaker.media import encode_image
from tastemaker.taste.profile import TasteProfile, build_profile
from tastemaker.taste.weights import WeightConfig, pin_weights

from ..conftest import make_board, neon_image

engagement = st.tuples(
    st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0, 1e5, allow_nan=False, allow_infinity=False)
)


@settings(max_examples=150, deadline=None)
@given(
    others=st.lists(engagement, min_size=1, max_size=12),
    mine=engagement,
    extra=st.tuples(st.integers(0, 500), st.integers(0, 500), st.floats(0, 1e4, allow_nan=False)),
    which=st.integers(0, 2),
)
def test_more_engagement_never_lowers_a_pins_weight(others, mine, extra, which) -> None:  # type: ignore[no-untyped-def]
    def pins(m: tuple[int, int, float]) -> list[Pin]:
        rows = [m, *others]
        return [Pin(image=f"{i}", saves=s, clicks=c, dwell_seconds=d) for i, (s, c, d) in enumerate(rows)]

    bumped = list(mine)
    bumped[which] += extra[which]
    before = pin_weights(pins(mine))[0]
    after = pin_weights(pins(tuple(bumped)))[0]  # type: ignore[arg-type]
    assert after >= before - 1e-12


def test_weights_sum_to_one_and_cap_dominance() -> None:
    pins = [Pin(image="viral", saves=10**6, clicks=10**6, dwell_seconds=1e6)] + [
        Pin(image=str(i)) for i in range(19)
    ]
    w = pin_weights(pins)
    assert abs(w.sum() - 1) < 1e-9
    assert w[0] <= 0.2 + 1e-9  # max_share for 20 pins
    assert w[0] > w[1]  # ...but it still counts most


def test_recency_half_life() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    cfg = WeightConfig(half_life_days=30, cap_ratio=100, max_share=1)
    pins = [Pin(image="new", pinned_at=now), Pin(image="old", pinned_at=now - timedelta(days=30)), Pin(image="x")]
    w = pin_weights(pins, cfg)
    assert w[1] == pytest.approx(w[0] / 2)
    assert w[2] == pytest.approx(w[0])  # undated pins count as newest


def test_demo_board_has_two_modes(demo_profile: TasteProfile) -> None:
    assert len(demo_profile.modes) == 2
    warm, cool = demo_profile.modes
    assert warm.weight > cool.weight
    assert warm.features["b_mean"] > cool.features["b_mean"] + 10  # warm vs cool, as the board was made
    assert "film" in warm.tags and "moody" in cool.tags
    assert all(len(m.medoids) >= 2 for m in demo_profile.modes)
    assert sum(m.weight for m in demo_profile.modes) == pytest.approx(1.0)


def test_one_look_one_mode(demo_board: Board) -> None:
    """Near-identical looks (one photo, flipped, slightly re-exposed) never split into modes."""
    cat = demo_board.thumbs[[p.image for p in demo_board.pins].index("cat-nap.jpg")]
    variants = [np.clip(cat.astype(int) + d, 0, 255).astype(np.uint8) for d in (-6, -3, 0, 3, 6)]
    variants += [v[:, ::-1].copy() for v in variants]
    assert len(build_profile(make_board("one", variants)).modes) == 1


def test_profile_independent_of_pin_order(demo_board: Board) -> None:
    items = [(p, encode_image(t, "png")) for p, t in zip(demo_board.pins, demo_board.thumbs, strict=True)]
    a = build_profile(build_board("b", items))
    b = build_profile(build_board("b", list(reversed(items))))
    rng = np.random.default_rng(3)
    c = build_profile(build_board("b", [items[i] for i in rng.permutation(len(items))]))
    assert a.content_hash() == b.content_hash() == c.content_hash()


@settings(max_examples=8, deadline=None)
@given(st.permutations(list(range(6))))
def test_profile_order_property(perm: list[int]) -> None:
    imgs = [neon_image(i, 96) for i in range(3)] + [np.full((96, 96, 3), 40 + 10 * i, np.uint8) for i in range(3)]
    pins = [Pin(image=f"p{i}.png", saves=i) for i in range(6)]
    ref = build_profile(make_board("x", imgs, pins)).content_hash()
    shuffled = build_profile(make_board("x", [imgs[i] for i in perm], [pins[i] for i in perm]))
    assert shuffled.content_hash() == ref


def test_json_roundtrip(tmp_path: Path, demo_profile: TasteProfile) -> None:
    path = demo_profile.save(tmp_path / "p.json")
    back = TasteProfile.load(path)
    assert back == demo_profile
    assert back.content_hash() == demo_profile.content_hash()
    d = describe(np.full((64, 64, 3), 128, np.uint8))
    assert back.style_score(d) == pytest.approx(demo_profile.style_score(d))
    text = path.read_text()
    assert '"schema": "tastemaker.profile"' in text and '"schema_version": 1' in text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda d: d.update(schema="other"), "not a Tastemaker taste profile"),
        (lambda d: d["encoder"].update(version="0"), "Rebuild the profile"),
        (lambda d: d["modes"][0].pop("look"), "invalid profile at modes.0.look"),
        (lambda d: d.update(modes=[]), "no modes"),
    ],
)
def test_bad_profiles_are_refused(tmp_path: Path, demo_profile: TasteProfile, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(demo_profile.to_json())
    edit(data)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=message):
        TasteProfile.load(p)


def test_malformed_profile_json(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text("{ not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        TasteProfile.load(p)
    with pytest.raises(ProfileError, match="not found"):
        TasteProfile.load(tmp_path / "missing.json")


def test_profile_holds_no_pixels_or_faces(demo_profile: TasteProfile) -> None:
    data = json.loads(demo_profile.to_json())
    assert set(data) == {"schema", "schema_version", "id", "version", "created_at", "board", "encoder", "config",
                         "silhouette", "weighting", "privacy", "feedback", "feedback_base", "pins", "modes"}
    assert len(demo_profile.to_json()) < 200_000


def test_empty_board_profile() -> None:
    with pytest.raises(EmptyBoardError):
        build_profile(Board(name="e", pins=[], thumbs=[]))


def test_style_descriptor_is_deterministic_and_discriminative(demo_board: Board, control_board: Board) -> None:
    a = describe(demo_board.thumbs[0])
    assert np.array_equal(a.vector, describe(demo_board.thumbs[0]).vector)
    assert style_similarity(a, a) == 1.0
    same = [style_similarity(describe(demo_board.thumbs[i]), describe(demo_board.thumbs[j]))
            for i in range(4) for j in range(4) if i < j]
    other = [style_similarity(describe(demo_board.thumbs[i]), describe(control_board.thumbs[j]))
             for i in range(4) for j in range(4)]
    assert np.mean(same) > np.mean(other)
    assert set(a.features) >= {"L_mean", "b_mean", "chroma_mean", "contrast", "grain", "softness", "vignette"}
    assert a.palette.shape == (5, 3)


def test_style_features_track_what_they_name() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((200, 200, 3), 128, np.uint8)
    noisy = np.clip(flat + rng.normal(0, 12, (200, 200, 1)), 0, 255).astype(np.uint8)
    warm = np.clip(flat.astype(int) + [30, 0, -30], 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:200, 0:200]
    vign = (flat * (1 - 0.6 * (np.hypot(yy - 100, xx - 100) / 141)[..., None] ** 2)).astype(np.uint8)
    f = {k: describe(v).features for k, v in dict(flat=flat, noisy=noisy, warm=warm, vign=vign).items()}
    assert f["noisy"]["grain"] > f["flat"]["grain"] + 1
    assert f["warm"]["b_mean"] > f["flat"]["b_mean"] + 15
    assert f["vign"]["vignette"] > f["flat"]["vignette"] + 0.2
    assert replace  # keep import used for readers: dataclasses.replace is how pins are re-engaged
