"""Learned engagement weighting vs baselines: Recall@10 on a simulated multi-user dataset.

Protocol (Pinterest/PinnerSage offline evaluation): for each simulated user, the first 70 % of the
timeline is history; the later *engaged* taste pins (at least one save) are the positives, ranked among
1000 distractors. Every method sees only the history:

* uniform   — mean of the history's vectors
* recency   — mean weighted by a 90-day half-life
* medoid    — PinnerSage: Ward clusters, medoids of the 3 most important (time-decayed) clusters
* learned   — attention pooling per cluster with theta fitted on the user's own history (taste/learned.py)
* learned (defaults) — the same aggregator with the documented default theta, not fitted

Run: python bench/taste.py [--users 60] [--quick]
Last line: {"recall10_learned": ..., "recall10_uniform": ..., "recall10_recency": ..., "recall10_medoid": ...}
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tastemaker.taste.learned import (
    DEFAULT_THETA,
    AttentionWeights,
    _cos,
    clusters,
    engagement_features,
    fit_attention,
)
from tastemaker.taste.simulate import distractors, simulate


def recall_at(scores: np.ndarray, positive: np.ndarray, k: int = 10) -> float:
    top = np.argsort(-scores, kind="stable")[:k]
    return float(positive[top].sum() / min(k, positive.sum()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="12 users, for a smoke run")
    args = ap.parse_args()
    n_users = 12 if args.quick else args.users
    data = simulate(n_users=n_users, seed=1)
    eval_pool = distractors(data, 1000, seed=2)
    train_pool = distractors(data, 200, seed=3)
    results: dict[str, list[float]] = {m: [] for m in ("uniform", "recency", "medoid", "learned", "learned_default")}
    t0 = time.perf_counter()
    fitted = 0
    for u in data.users:
        n = len(u.x)
        cut = int(n * 0.7)
        hist = np.arange(cut)
        fut = np.arange(cut, n)
        pos = fut[(u.saves[fut] > 0) & u.taste[fut]]
        if len(pos) == 0:
            continue
        cands = np.concatenate([u.x[pos], eval_pool])
        positive = np.zeros(len(cands), dtype=bool)
        positive[: len(pos)] = True
        xh = u.x[hist]
        now = u.times[hist].max()
        age = now - u.times[hist]
        results["uniform"].append(recall_at(_cos(cands, xh.mean(0)), positive))
        rw = 0.5 ** (age / 90.0)
        results["recency"].append(recall_at(_cos(cands, (xh * rw[:, None]).sum(0) / rw.sum()), positive))
        lab = clusters(xh)
        imp = np.array([rw[lab == k].sum() for k in np.unique(lab)])
        top = np.unique(lab)[np.argsort(-imp)[:3]]
        meds = []
        for k in top:
            m = xh[lab == k]
            meds.append(m[np.argmin(((m[:, None] - m[None]) ** 2).sum(-1).sum(1))])
        results["medoid"].append(recall_at(_cos(cands, np.array(meds)).max(1), positive))
        feats = engagement_features(u.saves[hist], u.clicks[hist], u.dwell[hist], age, xh)
        model = fit_attention(
            xh, times=u.times[hist], saves=u.saves[hist], clicks=u.clicks[hist], dwell=u.dwell[hist],
            distractors=train_pool,
        )
        fitted += int(model.fitted)
        results["learned"].append(recall_at(model.score(cands, xh, feats, lab), positive))
        default = AttentionWeights(theta=DEFAULT_THETA, fitted=False, n_history=len(xh))
        results["learned_default"].append(recall_at(default.score(cands, xh, feats, lab), positive))
    elapsed = time.perf_counter() - t0
    means = {k: float(np.mean(v)) for k, v in results.items()}
    sems = {k: float(np.std(v) / np.sqrt(len(v))) for k, v in results.items()}
    print(f"Recall@10, {len(results['uniform'])} simulated users, 1000 distractors each "
          f"({fitted} fitted on their own history; {elapsed:.1f} s)")
    print(f"{'method':<22}{'Recall@10':>10}{'± s.e.':>9}")
    print("-" * 41)
    for k in ("uniform", "recency", "medoid", "learned_default", "learned"):
        print(f"{k:<22}{means[k]:>10.3f}{sems[k]:>9.3f}")
    print(json.dumps({
        "recall10_learned": round(means["learned"], 4),
        "recall10_uniform": round(means["uniform"], 4),
        "recall10_recency": round(means["recency"], 4),
        "recall10_medoid": round(means["medoid"], 4),
    }))


if __name__ == "__main__":
    main()
