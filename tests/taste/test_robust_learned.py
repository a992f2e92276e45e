"""Poisoning defence and learned engagement weighting."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tastemaker.boards import Board, Pin, build_board
from tastemaker.encoders.style import describe
from tastemaker.media import encode_image
from tastemaker.taste.learned import DEFAULT_THETA, AttentionWeights, _cos, clusters, engagement_features, fit_attention
from tastemaker.taste.profile import ProfileConfig, build_profile
from tastemaker.taste.robust import RobustConfig, cap_sources, geometric_median
from tastemaker.taste.simulate import distractors, simulate

from ..conftest import neon_image


def _poisoned(demo_board: Board, n_attack: int) -> Board:
    """The demo board plus look-alike 'brand' pins with huge engagement, from one source, in one hour."""
    t0 = datetime(2024, 7, 1, 12, tzinfo=UTC)
    items = [(p, encode_image(t, "png")) for p, t in zip(demo_board.pins, demo_board.thumbs, strict=True)]
    base = neon_image(42, 160)
    for i in range(n_attack):
        img = np.clip(base.astype(int) + (i * 7) % 11 - 5, 0, 255).astype(np.uint8)
        pin = Pin(image=f"brand{i}.png", saves=5000, clicks=9000, dwell_seconds=900,
                  pinned_at=t0 + timedelta(minutes=3 * i), source="brand.example")
        items.append((pin, encode_image(img, "png")))
    return build_board("poisoned", items)


def test_defence_limits_injected_pins(demo_board: Board) -> None:
    board = _poisoned(demo_board, 6)
    brand = describe(neon_image(42, 160))
    on = build_profile(board)
    off = build_profile(board, ProfileConfig(robust=RobustConfig(enabled=False)))
    attack_share = {
        name: sum(e.weight for e in prof.pins if e.image.startswith("brand"))
        for name, prof in (("on", on), ("off", off))
    }
    assert attack_share["off"] > 0.25  # undefended: 6 of 19 pins with viral engagement dominate
    assert attack_share["on"] < 0.15
    assert all(e.flags for e in on.pins if e.image.startswith("brand"))
    assert not any(e.flags for e in on.pins if not e.image.startswith("brand"))
    # the brand look pulls the undefended profile more
    pull = {name: max(prof.mode_weights_for(brand)) for name, prof in (("on", on), ("off", off))}
    assert pull["on"] < pull["off"]


def test_clean_board_barely_changed_by_defence(demo_profile, demo_board: Board) -> None:  # type: ignore[no-untyped-def]
    off = build_profile(demo_board, ProfileConfig(robust=RobustConfig(enabled=False)))
    assert [m.n_pins for m in off.modes] == [m.n_pins for m in demo_profile.modes]
    assert [e.weight for e in off.pins] == [e.weight for e in demo_profile.pins]  # nothing flagged, nothing capped
    descs = [describe(t) for t in demo_board.thumbs]
    fit_on = np.mean([demo_profile.style_score(d) for d in descs])
    fit_off = np.mean([off.style_score(d) for d in descs])
    assert fit_on > 0.9 * fit_off  # robust centroids still describe the clean pins


def test_source_caps() -> None:
    w = np.array([0.5, 0.3, 0.1, 0.05, 0.05])
    capped = cap_sources(w, ["ad", "ad", "", "", "x"], 0.25)
    assert capped[:2].sum() / capped.sum() == pytest.approx(0.25)
    assert capped[2] / capped[3] == pytest.approx(2.0)  # proportions inside the uncapped rest are kept
    named_only = cap_sources(np.array([0.7, 0.1, 0.2]), ["a", "b", "c"], 0.25)
    assert named_only[0] / named_only.sum() == pytest.approx(1 / 3)  # 3 named sources: 1/3 is the floor
    assert cap_sources(w, ["", "", "", "", ""], 0.25) is w  # no sources named: nothing to cap


def test_geometric_median_resists_outliers() -> None:
    rng = np.random.default_rng(0)
    inliers = rng.normal(0, 0.1, (20, 3))
    outliers = np.full((8, 3), 10.0)
    x = np.concatenate([inliers, outliers])
    w = np.ones(len(x))
    assert np.linalg.norm(geometric_median(x, w)) < 0.5
    assert np.linalg.norm(np.average(x, axis=0, weights=w)) > 4


def test_learned_weights_beat_uniform_on_simulated_users() -> None:
    data = simulate(n_users=10, seed=11)
    ev, tr = distractors(data, 400, seed=2), distractors(data, 150, seed=3)
    wins, recalls = 0, []
    for u in data.users:
        cut = int(len(u.x) * 0.7)
        h = np.arange(cut)
        fut = np.arange(cut, len(u.x))
        pos = fut[(u.saves[fut] > 0) & u.taste[fut]]
        cands = np.concatenate([u.x[pos], ev])
        truth = np.zeros(len(cands), bool)
        truth[: len(pos)] = True
        model = fit_attention(u.x[h], times=u.times[h], saves=u.saves[h], clicks=u.clicks[h], dwell=u.dwell[h],
                              distractors=tr)
        assert model.fitted and not np.allclose(model.theta, DEFAULT_THETA)
        feats = engagement_features(u.saves[h], u.clicks[h], u.dwell[h], u.times[h].max() - u.times[h], u.x[h])
        learned = model.score(cands, u.x[h], feats, clusters(u.x[h]))
        uniform = _cos(cands, u.x[h].mean(0))
        r = [truth[np.argsort(-s)[:10]].sum() for s in (learned, uniform)]
        wins += r[0] > r[1]
        recalls.append(r)
    assert wins >= 7  # of 10 users
    assert sum(r[0] for r in recalls) > 1.1 * sum(r[1] for r in recalls)


def test_too_little_history_uses_defaults() -> None:
    data = simulate(n_users=1, pins_per_user=20, seed=1)
    u = data.users[0]
    m = fit_attention(u.x, times=u.times, saves=u.saves, clicks=u.clicks, dwell=u.dwell,
                      distractors=distractors(data, 50, 1))
    assert not m.fitted and np.array_equal(m.theta, DEFAULT_THETA)
    assert isinstance(m, AttentionWeights)


def test_profile_uses_learned_weights_with_enough_history(demo_board: Board) -> None:
    rng = np.random.default_rng(0)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    items = []
    for i in range(36):
        src = demo_board.thumbs[i % len(demo_board)]
        img = np.clip(src.astype(int) + rng.integers(-10, 10, 3), 0, 255).astype(np.uint8)
        pin = replace(demo_board.pins[i % len(demo_board)], image=f"h{i}.png", sha256="",
                      pinned_at=t0 + timedelta(days=10 * i), saves=int(rng.integers(0, 5)))
        items.append((pin, encode_image(img, "png")))
    prof = build_profile(build_board("history", items))
    assert prof.weighting["kind"] == "learned" and len(prof.weighting["theta"]) == 5
    assert build_profile(build_board("history", items), ProfileConfig(weighting="default")).weighting == {
        "kind": "default"}
