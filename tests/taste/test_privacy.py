"""Differential privacy: calibration, the accountant, and an empirical check of the guarantee."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tastemaker.encoders.style import describe
from tastemaker.errors import PrivacyBudgetError
from tastemaker.taste.privacy import (
    CLIP_NORM,
    Accountant,
    PrivacyConfig,
    epsilon_of,
    noisy,
    pin_contributions,
    pin_release_vectors,
    private_profile,
    rho_for,
)
from tastemaker.taste.profile import TasteProfile
from tastemaker.taste.weights import WeightConfig, engagement_score


@pytest.fixture(scope="module")
def release_inputs(demo_board):  # type: ignore[no-untyped-def]
    vecs = pin_release_vectors([describe(t, palette=False) for t in demo_board.thumbs])
    eng = np.array([engagement_score(p, WeightConfig()) for p in demo_board.pins])
    return vecs, eng


@pytest.mark.parametrize("eps", [0.1, 1.0, 4.0, 16.0])
def test_rho_epsilon_conversion(eps: float) -> None:
    assert epsilon_of(rho_for(eps, 1e-6), 1e-6) == pytest.approx(eps)


def test_accountant_refuses_when_budget_spent(tmp_path: Path) -> None:
    cfg = PrivacyConfig(epsilon=1.0, budget_epsilon=2.5)
    rho = rho_for(1.0, cfg.delta)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    acc = Accountant(tmp_path, "p1", cfg)
    spent = [acc.charge(rho, "export", now=t0 + timedelta(hours=i)) for i in range(5)]
    assert spent == sorted(spent) and spent[-1] <= 2.5  # zCDP composition: 5 releases of eps 1 cost < 2.5
    with pytest.raises(PrivacyBudgetError, match="privacy budget spent"):
        for i in range(5, 50):
            acc.charge(rho, "export", now=t0 + timedelta(hours=i / 10))
    # persisted: a new accountant sees the same ledger; a day later the budget is free again
    again = Accountant(tmp_path, "p1", cfg)
    with pytest.raises(PrivacyBudgetError):
        again.charge(rho, "export", now=t0 + timedelta(hours=6))
    assert again.charge(rho, "export", now=t0 + timedelta(days=2)) == pytest.approx(1.0)
    assert Accountant(tmp_path, "other", cfg).spent()[1] == 0.0


def test_one_release_id_is_charged_once_even_from_racing_threads(tmp_path: Path) -> None:
    """Two builds of one board revision race; only one answer is published, so only one is charged."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = PrivacyConfig(epsilon=1.0, budget_epsilon=10.0)
    rho = rho_for(1.0, cfg.delta)
    acc = Accountant(tmp_path, "board-b1", cfg)
    with ThreadPoolExecutor(4) as pool:
        after = list(pool.map(lambda _: acc.charge(rho, "styleembed", release_id="styleembed:r1"), range(8)))
    assert after == pytest.approx([1.0] * 8)
    assert acc.spent()[1] == pytest.approx(1.0)
    two = acc.charge(rho, "styleembed", release_id="styleembed:r2")
    assert two > 1.0  # a new revision is a new release
    assert acc.charge(rho, "export") > two  # no id: always charged


def test_damaged_ledger_fails_closed(tmp_path: Path) -> None:
    acc = Accountant(tmp_path, "p", PrivacyConfig())
    acc.path.parent.mkdir(parents=True)
    acc.path.write_text("{ broken")
    with pytest.raises(PrivacyBudgetError, match="unreadable"):
        acc.charge(0.01, "export")


def test_noise_is_the_calibrated_gaussian() -> None:
    """KS test: OpenDP's samples match N(0, sigma^2) (4000 draws)."""
    sigma = 3.0
    draws = np.concatenate([noisy(np.zeros(200), sigma) for _ in range(20)])
    assert stats.kstest(draws / sigma, "norm").pvalue > 0.001
    assert abs(draws.std() / sigma - 1) < 0.06


def test_clipping_bounds_each_pins_influence(release_inputs) -> None:  # type: ignore[no-untyped-def]
    vecs, eng = release_inputs
    z, w = pin_contributions(vecs, eng * 100)
    assert np.all(np.linalg.norm(z, axis=1) <= CLIP_NORM + 1e-9) and np.all(w <= 1.0)


def test_neighbouring_boards_indistinguishable(release_inputs) -> None:  # type: ignore[no-untyped-def]
    """Empirical check of the guarantee for one noisy-sum release.

    D is the demo board, D' the same without its most influential pin. For threshold events on the
    release, P_D(S) <= e^eps P_D'(S) + delta must hold; checked with 99 % Clopper-Pearson bounds.
    """
    vecs, eng = release_inputs
    z, _ = pin_contributions(vecs, eng)
    k = int(np.argmax(np.linalg.norm(z, axis=1)))
    s_d, s_dp = z.sum(0), np.delete(z, k, axis=0).sum(0)
    delta_vec = s_d - s_dp
    sens = float(np.linalg.norm(delta_vec))
    assert sens <= CLIP_NORM + 1e-9
    eps, dlt = 1.0, 1e-6
    rho = rho_for(eps, dlt)
    sigma = CLIP_NORM / np.sqrt(2 * rho)  # a release calibrated for sensitivity C
    u = delta_vec / sens  # the most revealing direction
    n = 4000
    a = noisy(np.full(n, float(s_d @ u)), sigma)  # isotropic noise: its projection is N(0, sigma^2)
    b = noisy(np.full(n, float(s_dp @ u)), sigma)
    for t in np.linspace(float(s_dp @ u) - sigma, float(s_d @ u) + 2 * sigma, 7):
        ka, kb = int((a > t).sum()), int((b > t).sum())
        p_a_hi = stats.beta.ppf(0.995, ka + 1, n - ka) if ka < n else 1.0
        p_b_lo = stats.beta.ppf(0.005, kb, n - kb + 1) if kb > 0 else 0.0
        p_a_lo = stats.beta.ppf(0.005, ka, n - ka + 1) if ka > 0 else 0.0
        p_b_hi = stats.beta.ppf(0.995, kb + 1, n - kb) if kb < n else 1.0
        # the guarantee cannot be refuted even at the edges of the confidence intervals
        assert p_a_lo <= np.exp(eps) * p_b_hi + dlt
        assert (1 - p_b_hi) >= 0 and p_a_hi >= p_a_lo and p_b_lo <= p_b_hi


def test_private_profile_is_usable_and_charged(tmp_path: Path, demo_profile: TasteProfile, release_inputs) -> None:  # type: ignore[no-untyped-def]
    vecs, eng = release_inputs
    acc = Accountant(tmp_path, "demo", PrivacyConfig(epsilon=1000.0, budget_epsilon=1e6, lifetime_epsilon=1e6))
    priv = private_profile(demo_profile, vecs, eng, accountant=acc, seed=3)
    text = priv.to_json()
    back = TasteProfile.from_json(text)
    assert back.pins == [] and back.privacy and back.privacy["epsilon"] == 1000.0
    assert all(not m.medoids and not m.titles and not m.tags for m in back.modes)
    for pin in demo_profile.pins:
        assert pin.image not in text
    assert acc.spent()[0] > 0
    # with a huge epsilon the private profile is close to the real one
    descs = [describe(t) for t in (np.full((32, 32, 3), 128, np.uint8),)]
    assert abs(priv.style_score(descs[0]) - demo_profile.style_score(descs[0])) < 0.15


# ------------------------------------------------------------------ issue 11: only noised or data-independent values


def test_release_depends_on_the_pins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          demo_profile: TasteProfile, release_inputs) -> None:  # type: ignore[no-untyped-def]
    """With the noise switched off the mechanism is a function of its inputs: the release must not change when
    only what the exact clustering found (its mode count, silhouette, weighting, id) changes."""
    import tastemaker.taste.privacy as privacy

    monkeypatch.setattr(privacy, "noisy", lambda values, scale: np.asarray(values, dtype=np.float64))
    vecs, eng = release_inputs
    cfg = PrivacyConfig(epsilon=1.0, budget_epsilon=1e6, lifetime_epsilon=1e6)
    other = demo_profile.model_copy(update={
        "modes": demo_profile.modes[:1], "silhouette": 0.93, "id": "someone-else", "version": 7,
        "weighting": {"kind": "learned", "theta": [0.5, 0.25]},
    })
    releases = [
        json.loads(private_profile(p, vecs, eng, accountant=Accountant(tmp_path, f"p{i}", cfg), cfg=cfg, seed=1)
                   .to_json())
        for i, p in enumerate((demo_profile, other))
    ]
    for r in releases:
        r.pop("created_at")
        r.pop("id")
    assert releases[0] == releases[1]
    r = releases[0]
    assert r["silhouette"] == 0.0 and r["pins"] == [] and r["feedback"] == [] and r["version"] == 1
    assert r["weighting"] == {"kind": "private"}
    assert len(r["modes"]) <= cfg.modes and all(m["n_pins"] == 0 and not m["medoids"] for m in r["modes"])


def test_private_release_gets_a_fresh_id(tmp_path: Path, demo_profile: TasteProfile, release_inputs) -> None:  # type: ignore[no-untyped-def]
    vecs, eng = release_inputs
    cfg = PrivacyConfig(budget_epsilon=1e6, lifetime_epsilon=1e6)
    priv = private_profile(demo_profile, vecs, eng, accountant=Accountant(tmp_path, "x", cfg), cfg=cfg)
    assert priv.id and priv.id != demo_profile.id


def test_lifetime_budget_beside_the_daily_one(tmp_path: Path) -> None:
    from tastemaker.taste.privacy import PrivacyBudgetDailyError, PrivacyBudgetLifetimeError

    cfg = PrivacyConfig(epsilon=1.0, budget_epsilon=2.5, lifetime_epsilon=4.0)
    rho = rho_for(1.0, cfg.delta)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    acc = Accountant(tmp_path, "p", cfg)
    for i in range(5):  # five a day fit the daily budget
        acc.charge(rho, "export", now=t0 + timedelta(hours=i))
    with pytest.raises(PrivacyBudgetDailyError) as daily:
        acc.charge(rho, "export", now=t0 + timedelta(hours=6))
    assert daily.value.code == "privacy_budget_daily"
    assert daily.value.resets_at == t0 + timedelta(days=1)
    assert daily.value.retry_after_s == pytest.approx(18 * 3600)
    assert daily.value.to_dict()["resets_at"] == (t0 + timedelta(days=1)).isoformat()
    spent = [acc.charge(rho, "export", now=t0 + timedelta(days=2, hours=i)) for i in range(3)]
    assert spent[-1] <= 2.5
    with pytest.raises(PrivacyBudgetLifetimeError) as life:  # every day within budget, but not forever
        for day in range(3, 30):
            acc.charge(rho, "export", now=t0 + timedelta(days=day))
    assert life.value.code == "privacy_budget_lifetime" and life.value.resets_at is None
    assert life.value.to_dict()["resets_at"] is None and "never resets" in life.value.message
    assert isinstance(life.value, PrivacyBudgetError) and isinstance(daily.value, PrivacyBudgetError)
    assert acc.spent_lifetime()[1] <= 4.0
