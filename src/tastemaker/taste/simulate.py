"""A simulated multi-user pinning dataset for evaluating taste aggregation (no real users needed).

Each user has 2-4 latent aesthetic modes drawn from a shared pool of look clusters in a style space,
with preferences that drift over a year (a random walk on the mode logits). Every pin is either a
*taste* pin (from a mode, chosen by the current preferences) or a *casual* pin (any look; curiosity,
a friend's board). Engagement is noisy but informative: saves, clicks and dwell rise with how much the
pin matches the user's taste *at that time*. Evaluation follows Pinterest's offline protocol: the first
part of the timeline is history, later engaged taste pins are the positives, ranked among distractors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SimUser:
    x: np.ndarray  # (n, d) pin vectors
    times: np.ndarray  # days since the start
    saves: np.ndarray
    clicks: np.ndarray
    dwell: np.ndarray
    taste: np.ndarray  # bool: taste pin (True) or casual (False)


@dataclass
class SimDataset:
    users: list[SimUser]
    centres: np.ndarray  # (clusters, d)
    dim: int


def simulate(
    n_users: int = 60,
    pins_per_user: int = 120,
    *,
    dim: int = 16,
    n_clusters: int = 400,
    rank: int = 4,
    casual_rate: float = 0.35,
    spread: float = 0.45,
    drift: float = 0.25,
    seed: int = 0,
) -> SimDataset:
    """Generate users; same seed, same data."""
    rng = np.random.default_rng(seed)
    # looks live near a low-dimensional manifold (warm/cool, light/dark, soft/sharp...): the average of
    # two of a person's looks lands on *other* looks, which is why one averaged vector is not enough
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T  # (rank, dim), orthonormal rows
    centres = rng.standard_normal((n_clusters, rank)) @ basis * 1.6 + rng.normal(0, 0.25, (n_clusters, dim))
    users = []
    for _ in range(n_users):
        k = int(rng.integers(2, 5))
        modes = rng.choice(n_clusters, size=k, replace=False)
        logits = rng.normal(0, 1, k)
        times = np.sort(rng.uniform(0, 365, pins_per_user))
        xs, taste, saves, clicks, dwell = [], [], [], [], []
        last_t = 0.0
        for t in times:
            logits = logits + rng.normal(0, drift * np.sqrt(max(t - last_t, 0.0) / 7.0), k)
            last_t = t
            pref = np.exp(logits - logits.max())
            pref /= pref.sum()
            is_taste = rng.random() > casual_rate
            if is_taste:
                m = rng.choice(k, p=pref)
                x = centres[modes[m]] + rng.normal(0, spread, dim)
                affinity = 0.5 + 0.5 * pref[m] * k / 2
            else:
                x = centres[rng.integers(n_clusters)] + rng.normal(0, spread, dim)
                affinity = 0.15
            affinity = float(np.clip(affinity * rng.lognormal(0, 0.35), 0.02, 3.0))
            xs.append(x)
            taste.append(is_taste)
            saves.append(rng.poisson(2.0 * affinity))
            clicks.append(rng.poisson(4.0 * affinity))
            dwell.append(float(rng.lognormal(np.log(5 + 25 * affinity), 0.6)))
        users.append(
            SimUser(
                x=np.array(xs), times=times, saves=np.array(saves), clicks=np.array(clicks),
                dwell=np.array(dwell), taste=np.array(taste),
            )
        )
    return SimDataset(users=users, centres=centres, dim=dim)


def distractors(data: SimDataset, n: int, seed: int) -> np.ndarray:
    """Items nobody in particular pinned: random looks from the whole pool."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(data.centres), size=n)
    return data.centres[idx] + rng.normal(0, 0.45, (n, data.dim))
