"""Differential privacy for taste vectors that leave the user's own store.

What is protected: any single pin (add/remove-one neighbouring boards). What is released: a
*private profile* — per mode a noisy centroid of style features and tone curve, a noisy weight, and
look parameters derived from those — with no pin list, titles, tags or medoids.

Mechanism (DP k-means, Su et al. 2016, with the Gaussian mechanism under zero-concentrated DP):

1. Each pin contributes ``z_i = w_i * clip(v_i - c0, C)``: its style vector plus tone curve, centred
   on a public reference ``c0`` and clipped to L2 norm ``C`` (:data:`CLIP_NORM`), scaled by a weight
   ``w_i`` in (0, 1] that depends on that pin only (its engagement score over a public cap, and its
   age relative to the release time). So one pin moves any sum by at most ``C`` and any count by 1.
2. Round 0 releases the noisy global sum and count; the mode centres start there, spread along fixed
   public directions (no data-dependent initialisation). Rounds 1..T assign pins to the nearest
   current centre and release every mode's noisy sum (L2 sensitivity ``C``: a pin is in one mode) and
   noisy count (sensitivity 1), via OpenDP's ``make_gaussian`` on the concatenated vectors.
3. Post-processing (costs no budget): modes whose noisy count is under ``2 sigma_count`` are dropped;
   each centre is shrunk toward the public reference by the positive-part James-Stein factor
   ``1 - d (sigma/count)^2 / |c - c0|^2`` (the noise level is known, so this only removes expected
   noise); released features are clamped to public plausible ranges (:data:`FEATURE_BOUNDS`) and the
   tone curve is made monotone, so even a very noisy release renders as a sane look.

What is *not* released: anything the exact profile measured. The number of modes the mechanism starts
from is the public ``PrivacyConfig.modes`` (modes survive only by their noisy counts), and the released
profile is built afresh — no silhouette, learned weighting, version, feedback, pins or exact hash, and a
fresh id — so two boards that differ by one pin differ in the release only through the noise.

Accounting: each release spends ``rho`` (zCDP composes additively); its (epsilon, delta) is
``rho + 2 sqrt(rho ln(1/delta))``. A per-profile accountant persisted in the data dir keeps every
release; a new one is refused if the releases of the last ``period_days`` would compose past
``budget_epsilon`` (:class:`PrivacyBudgetDailyError`, with the time it frees up) or all releases ever past
``lifetime_epsilon`` (:class:`PrivacyBudgetLifetimeError`, which never resets). Only releases that leave
the store are charged: building a profile for the person's own generations or feedback is not a release.

Defaults, against production practice: Apple's local DP uses epsilon 2-16 per datum per day
(e.g. 4 for emoji, 8 for QuickType, 16 for health types); Google's RAPPOR/Chrome about 2 per day.
Tastemaker releases at epsilon = 1 each (delta = 1e-6) within a budget of epsilon = 4 per profile per
day, inside Apple's range and twice Google's. Composition in zCDP is sub-linear: four releases of
epsilon 1 cost 2.04 together, and about fourteen fit in the daily budget of 4. Over its whole life a
profile spends at most epsilon = 10 (about eighty releases: with one release per board revision, eighty
revisions of a board).
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..encoders.style import FEATURE_NAMES, features_to_vector, lab_to_rgb8, vector_to_features
from ..errors import PrivacyBudgetDailyError, PrivacyBudgetError, PrivacyBudgetLifetimeError
from ..media import make_private_dirs, write_atomic
from .profile import TONE_POINTS, LookParams, Mode, TasteProfile

#: L2 clip of a pin's centred contribution (style units + tone/8): about the 90th percentile of
#: distances from the reference look across the demo and benchmark boards.
CLIP_NORM = 8.0
#: Engagement score that counts as a full-weight pin (scores above are clipped).
ENGAGEMENT_CAP = 6.0
TONE_SCALE = 8.0
#: Public plausible ranges of released features (clamping is post-processing).
FEATURE_BOUNDS: dict[str, tuple[float, float]] = {
    "L_mean": (0, 100), "a_mean": (-60, 60), "b_mean": (-60, 60), "L_std": (0, 50), "a_std": (0, 40),
    "b_std": (0, 40), "chroma_mean": (0, 80), "chroma_p90": (0, 120), "neutral_frac": (0, 1),
    "shadow_a": (-60, 60), "shadow_b": (-60, 60), "highlight_a": (-60, 60), "highlight_b": (-60, 60),
    "contrast": (0, 100), "grain": (0, 2.5), "sharpness": (0, 4), "softness": (-2, 4), "vignette": (-0.5, 0.8),
    "top_bottom": (-1, 1), **{f"L_p{p}": (0, 100) for p in (2, 10, 25, 50, 75, 90, 98)},
    **{f"hue_{i}": (0, 1) for i in range(8)},
}


class PrivacyConfig(BaseModel):
    """Budget and mechanism settings (documented defaults above)."""

    epsilon: float = Field(1.0, gt=0, description="epsilon of one release, at delta")
    delta: float = Field(1e-6, gt=0, lt=1e-3)
    budget_epsilon: float = Field(4.0, gt=0, description="most epsilon spent per period, composed in zCDP")
    period_days: float = Field(1.0, gt=0)
    lifetime_epsilon: float = Field(10.0, gt=0, description="most epsilon a profile ever spends, composed in zCDP")
    rounds: int = Field(3, ge=1, le=10)
    count_share: float = Field(0.2, gt=0, lt=1, description="share of rho spent on counts")
    modes: int = Field(4, ge=1, le=12, description="modes the DP k-means starts from: fixed, never the exact count")




def rho_for(epsilon: float, delta: float) -> float:
    """The zCDP rho whose (epsilon, delta) conversion equals ``epsilon``: solve rho + 2 sqrt(rho L) = eps."""
    lg = math.log(1 / delta)
    x = -math.sqrt(lg) + math.sqrt(lg + epsilon)  # sqrt(rho)
    return x * x


def epsilon_of(rho: float, delta: float) -> float:
    """(epsilon, delta)-DP implied by rho-zCDP (Bun & Steinke 2016, Prop. 1.3)."""
    return rho + 2 * math.sqrt(rho * math.log(1 / delta)) if rho > 0 else 0.0


# ---------------------------------------------------------------------------------------- accountant


class Accountant:
    """Per-profile privacy ledger: a JSON file of releases (time, rho, purpose), written atomically."""

    _lock = threading.Lock()

    def __init__(self, data_dir: Path | str, profile_key: str, cfg: PrivacyConfig | None = None) -> None:
        self.cfg = cfg or PrivacyConfig()
        self.path = Path(data_dir) / "privacy" / f"{profile_key}.json"

    def _load(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.path.read_text())["releases"])
        except FileNotFoundError:
            return []
        except (ValueError, KeyError) as exc:
            # a damaged ledger must not reset the budget: refuse until someone looks at it
            raise PrivacyBudgetError(f"privacy ledger {self.path} is unreadable ({exc}); refusing to release") from exc

    def spent(self, now: datetime | None = None) -> tuple[float, float]:
        """(rho, epsilon) spent within the current period."""
        now = now or datetime.now(UTC)
        since = now - timedelta(days=self.cfg.period_days)
        rho = sum(r["rho"] for r in self._load() if datetime.fromisoformat(r["time"]) > since)
        return rho, epsilon_of(rho, self.cfg.delta)

    def spent_lifetime(self) -> tuple[float, float]:
        """(rho, epsilon) spent by every release ever recorded."""
        rho = sum(r["rho"] for r in self._load())
        return rho, epsilon_of(rho, self.cfg.delta)

    def charge(self, rho: float, purpose: str, now: datetime | None = None, *, release_id: str | None = None) -> float:
        """Record a release of ``rho`` or refuse it; returns the epsilon spent in the period after it.

        ``release_id`` names one published answer: a second charge with an id already in the ledger costs
        nothing (two racing builds of one board revision compute two answers, but only the one that is
        stored is ever published — the caller must guarantee that, as the API's compare-and-set save does).
        """
        now = now or datetime.now(UTC)
        with self._lock:
            releases = self._load()
            since = now - timedelta(days=self.cfg.period_days)
            current = sum(r["rho"] for r in releases if datetime.fromisoformat(r["time"]) > since)
            if release_id is not None and any(r.get("id") == release_id for r in releases):
                return epsilon_of(current, self.cfg.delta)
            lifetime = epsilon_of(sum(r["rho"] for r in releases) + rho, self.cfg.delta)
            if lifetime > self.cfg.lifetime_epsilon + 1e-9:
                raise PrivacyBudgetLifetimeError(
                    f"lifetime privacy budget spent: releasing would bring this profile to epsilon {lifetime:.2f} "
                    f"over its life, past its lifetime budget of {self.cfg.lifetime_epsilon:g}; it never resets "
                    "(a new board makes a new profile with a budget of its own)"
                )
            after = epsilon_of(current + rho, self.cfg.delta)
            if after > self.cfg.budget_epsilon + 1e-9:
                times = sorted(datetime.fromisoformat(r["time"]) for r in releases)
                resets_at = self._frees_room_at(times, [r["rho"] for r in sorted(releases, key=lambda r: r["time"])],
                                                rho, since, now)
                wait = resets_at - now
                raise PrivacyBudgetDailyError(
                    f"privacy budget spent: releasing would bring this profile to epsilon {after:.2f} in "
                    f"{self.cfg.period_days:g} day(s), over its budget of {self.cfg.budget_epsilon:g} "
                    f"(already {epsilon_of(current, self.cfg.delta):.2f}); try again in "
                    f"{max(wait.total_seconds(), 0) / 3600:.1f} h (at {resets_at:%Y-%m-%d %H:%M} UTC)",
                    resets_at=resets_at,
                    now=now,
                )
            entry: dict[str, Any] = {"time": now.isoformat(), "rho": rho, "purpose": purpose}
            if release_id is not None:
                entry["id"] = release_id
            releases.append(entry)
            make_private_dirs(self.path.parent)
            write_atomic(self.path, json.dumps({"releases": releases}, indent=1).encode())  # 0600
            return after


    def _frees_room_at(
        self, times: list[datetime], rhos: list[float], rho: float, since: datetime, now: datetime
    ) -> datetime:
        """When enough of the period's releases have aged out for one more of ``rho`` to fit."""
        window = [(t, r) for t, r in zip(times, rhos, strict=True) if t > since]
        current = sum(r for _, r in window)
        for t, r in window:  # oldest first
            current -= r
            if epsilon_of(current + rho, self.cfg.delta) <= self.cfg.budget_epsilon + 1e-9:
                return t + timedelta(days=self.cfg.period_days)
        return now + timedelta(days=self.cfg.period_days)


# ---------------------------------------------------------------------------------------- mechanism


def _gaussian(scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float)
    return dp.m.make_gaussian(*space, scale=scale)


def noisy(values: np.ndarray, scale: float) -> np.ndarray:
    """Add OpenDP Gaussian noise of standard deviation ``scale`` to every entry."""
    flat = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    return np.asarray(_gaussian(scale)(flat), dtype=np.float64).reshape(np.shape(values))


def pin_contributions(profile_vectors: np.ndarray, engagement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clipped, centred, weighted per-pin vectors ``z`` (n, d) and their weights ``w`` (n,)."""
    v = np.asarray(profile_vectors, dtype=np.float64) - reference_vector()
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v * np.minimum(1.0, CLIP_NORM / np.maximum(norms, 1e-12))
    w = np.clip(np.asarray(engagement, dtype=np.float64) / ENGAGEMENT_CAP, 1e-3, 1.0)
    return v * w[:, None], w


def reference_vector() -> np.ndarray:
    """Public centring point: the features of a neutral mid-grey, moderately contrasted photo."""
    f = {n: 0.0 for n in FEATURE_NAMES}
    f.update({"L_mean": 50.0, "L_std": 20.0, "a_std": 6.0, "b_std": 8.0, "chroma_mean": 12.0, "chroma_p90": 25.0,
              "neutral_frac": 0.3, "contrast": 60.0, "grain": 0.8, "sharpness": 1.5, "softness": 1.0})
    for i in range(8):
        f[f"hue_{i}"] = 1 / 8
    for p, v in zip((2, 10, 25, 50, 75, 90, 98), (8, 20, 35, 50, 65, 80, 92), strict=True):
        f[f"L_p{p}"] = float(v)
    tone = np.linspace(0, 100, TONE_POINTS) / TONE_SCALE
    return np.concatenate([features_to_vector(f), tone])


def dp_kmeans(
    z: np.ndarray, w: np.ndarray, k: int, *, rho: float, rounds: int, count_share: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy mode centres (k', d) and noisy weights (k',) from clipped contributions; spends ``rho``."""
    d = z.shape[1]
    per = rho / (rounds + 1)
    sigma_sum = CLIP_NORM / math.sqrt(2 * per * (1 - count_share))
    sigma_cnt = 1.0 / math.sqrt(2 * per * count_share)
    total = noisy(np.concatenate([z.sum(0), [w.sum()]]), sigma_sum)  # round 0: one cluster
    # (the count shares the sum's scale here; its sensitivity 1 <= C, so this is conservative)
    centre0 = total[:d] / max(total[d], 1.0)
    rng = np.random.default_rng(seed)  # public directions: independent of the data
    dirs = np.linalg.qr(rng.standard_normal((d, max(k, 1))))[0].T[:k]
    centres = centre0 + (CLIP_NORM / 2) * dirs if k > 1 else centre0[None]
    counts = np.ones(len(centres))
    unit = z / np.maximum(w[:, None], 1e-12)  # the pin's own clipped vector (assignment only)
    for _ in range(rounds):
        lab = np.argmin(((unit[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        sums = np.stack([z[lab == j].sum(0) for j in range(len(centres))])
        cnts = np.array([w[lab == j].sum() for j in range(len(centres))])
        sums = noisy(sums, sigma_sum)
        cnts = noisy(cnts, sigma_cnt)
        keep = cnts > 2 * sigma_cnt
        if not keep.any():
            keep = cnts >= cnts.max()
        centres = sums[keep] / np.maximum(cnts[keep], 1e-6)[:, None]
        counts = cnts[keep]
    # James-Stein shrinkage toward the reference (post-processing with the known noise level)
    noise_var = d * (sigma_sum / np.maximum(counts, 1.0)) ** 2
    size2 = np.maximum((centres**2).sum(1), 1e-12)
    centres = centres * np.clip(1.0 - noise_var / size2, 0.0, 1.0)[:, None]
    return centres + reference_vector(), counts / counts.sum()


def _look_from(vec: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, float], LookParams]:
    """Look parameters from a released (noisy) vector: features, tone curve, synthetic colour samples."""
    nf = len(FEATURE_NAMES)
    feats = {k: float(np.clip(v, *FEATURE_BOUNDS[k])) for k, v in vector_to_features(vec[:nf]).items()}
    hue = np.array([feats[f"hue_{i}"] for i in range(8)])
    hue = hue / hue.sum() if hue.sum() > 0 else np.full(8, 1 / 8)
    feats.update({f"hue_{i}": float(h) for i, h in enumerate(hue)})
    ps = np.maximum.accumulate([feats[f"L_p{p}"] for p in (2, 10, 25, 50, 75, 90, 98)])
    feats.update({f"L_p{p}": float(v) for p, v in zip((2, 10, 25, 50, 75, 90, 98), ps, strict=True)})
    tone = np.maximum.accumulate(np.clip(vec[nf:] * TONE_SCALE, 0, 100))
    lab = np.empty((1024, 3), np.float32)
    lab[:, 0] = np.interp(rng.uniform(0, 1, 1024), np.linspace(0, 1, TONE_POINTS), tone)
    lab[:, 1] = rng.normal(feats["a_mean"], max(feats["a_std"], 0.5), 1024)
    lab[:, 2] = rng.normal(feats["b_mean"], max(feats["b_std"], 0.5), 1024)
    rgb = lab_to_rgb8(lab.reshape(1, -1, 3))[0]
    from ..encoders.style import kmeans_palette

    pal, pw = kmeans_palette(lab, k=5)
    return feats, LookParams.from_stats(rgb, tone, pal, pw, feats)


def private_profile(
    profile: TasteProfile,
    pin_vectors: np.ndarray,
    engagement: np.ndarray,
    *,
    accountant: Accountant,
    cfg: PrivacyConfig | None = None,
    purpose: str = "export",
    seed: int | None = None,
    release_id: str | None = None,
) -> TasteProfile:
    """A differentially private version of ``profile``; charges the accountant first (fails closed).

    ``pin_vectors`` are the pins' style vectors with their tone curves scaled by 1/8 (see
    :func:`pin_release_vectors`), ``engagement`` their engagement scores. ``release_id``: see
    :meth:`Accountant.charge`.
    """
    cfg = cfg or accountant.cfg
    rho = rho_for(cfg.epsilon, cfg.delta)
    accountant.charge(rho, purpose, release_id=release_id)
    z, w = pin_contributions(pin_vectors, engagement)
    centres, weights = dp_kmeans(  # k is the public cfg.modes: the exact clustering's count would leak
        z, w, cfg.modes, rho=rho, rounds=cfg.rounds, count_share=cfg.count_share,
        seed=0 if seed is None else seed,
    )
    rng = np.random.default_rng(seed)
    modes = []
    order = np.argsort(-weights, kind="stable")
    for rank, j in enumerate(order):
        feats, look = _look_from(centres[j], rng)
        modes.append(
            Mode(
                id=f"m{rank + 1}", name=f"private mode {rank + 1}", weight=float(weights[j]), n_pins=0, medoids=[],
                features={k: round(v, 6) for k, v in feats.items()}, look=look,
            )
        )
    # Built afresh, not copied: every field is noisy, derived from noisy values, or public (the encoder, the
    # build settings, the board's name) — nothing the exact profile measured (silhouette, learned weighting,
    # mode count, version, feedback) and no id that links the release to it.
    return TasteProfile(
        id=uuid.uuid4().hex,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        board={"name": profile.board.get("name", ""), "private": True},
        encoder=dict(profile.encoder),
        config=profile.config,
        weighting={"kind": "private"},
        privacy={"epsilon": cfg.epsilon, "delta": cfg.delta, "rho": rho, "modes": cfg.modes, "mechanism":
                 f"DP k-means from {cfg.modes} modes, {cfg.rounds} rounds, Gaussian (OpenDP), clip {CLIP_NORM}, "
                 "add/remove-one pin"},
        pins=[],
        modes=modes,
    )


def pin_release_vectors(descs: list[Any]) -> np.ndarray:
    """Style vector + tone curve (scaled) per pin, the space the private release works in."""
    return np.stack([np.concatenate([d.vector, np.asarray(d.tone) / TONE_SCALE]) for d in descs])
