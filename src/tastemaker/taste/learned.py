"""Learned engagement weighting: attention pooling whose weights come from engagement and content.

Each pin gets features ``f = [log1p(saves), log1p(clicks), log1p(dwell/10 s), recency, coherence]``
(recency = age in half-lives, negated; coherence = similarity of the pin's style to the engagement-
weighted centre of the board, i.e. the content term). Its attention logit is ``theta . f`` and the weights
are a softmax over the pins of a mode, so a profile vector is ``sum softmax(theta . f)_i x_i``.

``theta`` is fitted on the person's **own** history, the way it will be used: for several cut points
in time, the pins before the cut are pooled (per PinnerSage-style cluster) and the pins after it must
rank above distractors (a softmax cross-entropy, L-BFGS with a small ridge towards the defaults).
With fewer than :data:`MIN_HISTORY` dated pins the documented defaults are used: the same signals as
the hand-set weights of :mod:`.weights` (saves count most, clicks and dwell half as much, a 180-day
recency half-life, no content term).

``bench/taste.py`` evaluates this as Pinterest evaluates PinnerSage: from the first part of each
simulated user's history, rank the later pins among distractors; Recall@10 against uniform, recency-only
and medoid baselines (:mod:`.simulate` generates the users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import minimize
from scipy.special import logsumexp

FEATURES = ("log_saves", "log_clicks", "log_dwell", "recency", "coherence")
#: Defaults: the hand-set weights' signals (weights.py) — saves, half-weight clicks and dwell, 180-day half-life.
DEFAULT_THETA = np.array([1.0, 0.5, 0.5, np.log(2.0), 0.0])
MIN_HISTORY = 30
TEMPERATURE = 8.0


def engagement_features(
    saves: np.ndarray,
    clicks: np.ndarray,
    dwell: np.ndarray,
    age_days: np.ndarray,
    x: np.ndarray,
    *,
    half_life_days: float = 180.0,
) -> np.ndarray:
    """(n, 5) feature matrix for attention logits."""
    base = np.stack([np.log1p(saves), np.log1p(clicks), np.log1p(np.asarray(dwell) / 10.0)], axis=1)
    recency = -np.asarray(age_days, dtype=np.float64) / half_life_days
    w = np.exp(base @ DEFAULT_THETA[:3])
    centre = (x * w[:, None]).sum(0) / w.sum()
    coherence = _cos(x, centre)
    return np.column_stack([base, recency, coherence])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    an = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-9)
    bn = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-9)
    return an @ bn.T if bn.ndim == 2 else an @ bn


def clusters(x: np.ndarray, max_k: int = 5) -> np.ndarray:
    """Ward clusters of the history (PinnerSage: cut into at most ``max_k`` groups)."""
    if len(x) < 4:
        return np.zeros(len(x), dtype=np.int64)
    z = linkage(x, method="ward")
    return fcluster(z, min(max_k, len(x) // 2), criterion="maxclust") - 1


@dataclass(frozen=True)
class AttentionWeights:
    """A fitted (or default) attention-pooling aggregator."""

    theta: np.ndarray
    fitted: bool
    n_history: int

    def logits(self, feats: np.ndarray) -> np.ndarray:
        return feats @ self.theta

    def pool(self, x: np.ndarray, feats: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-cluster attention-pooled vectors and each cluster's importance (its softmax mass)."""
        lg = self.logits(feats)
        ks = np.unique(labels)
        vecs, imp = [], []
        for k in ks:
            m = labels == k
            a = np.exp(lg[m] - lg[m].max())
            vecs.append((x[m] * (a / a.sum())[:, None]).sum(0))
            imp.append(logsumexp(lg[m]))
        imp_arr = np.exp(np.array(imp) - logsumexp(imp))
        return np.array(vecs), imp_arr

    def score(self, candidates: np.ndarray, x: np.ndarray, feats: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Relevance of candidates: importance-weighted soft maximum of cosine to the pooled modes."""
        vecs, imp = self.pool(x, feats, labels)
        sims = _cos(candidates, vecs)  # (c, k)
        return logsumexp(TEMPERATURE * sims + np.log(imp + 1e-12)[None, :], axis=1) / TEMPERATURE


def fit_attention(
    x: np.ndarray,
    *,
    times: np.ndarray,
    saves: np.ndarray,
    clicks: np.ndarray,
    dwell: np.ndarray,
    distractors: np.ndarray,
    half_life_days: float = 180.0,
    cuts: Sequence[float] = (0.5, 0.6, 0.7, 0.8),
    ridge: float = 0.05,
) -> AttentionWeights:
    """Fit ``theta`` on one person's history (``times`` in days, any origin).

    For each cut, pins before it form the context and engaged pins after it (at least one save) are the
    targets, ranked against ``distractors`` (vectors of things the person did not pin).
    """
    n = len(x)
    if n < MIN_HISTORY:
        return AttentionWeights(theta=DEFAULT_THETA.copy(), fitted=False, n_history=n)
    order = np.argsort(times, kind="stable")
    tasks = []
    for c in cuts:
        k = int(n * c)
        ctx, fut = order[:k], order[k:]
        targets = fut[saves[fut] > 0]
        if k < 8 or len(targets) == 0:
            continue
        now = times[ctx].max()
        f = engagement_features(
            saves[ctx], clicks[ctx], dwell[ctx], now - times[ctx], x[ctx], half_life_days=half_life_days
        )
        tasks.append((x[ctx], f, clusters(x[ctx]), x[targets]))
    if not tasks:
        return AttentionWeights(theta=DEFAULT_THETA.copy(), fitted=False, n_history=n)

    def loss(theta: np.ndarray) -> float:
        model = AttentionWeights(theta=theta, fitted=True, n_history=n)
        total = 0.0
        for xc, f, lab, tg in tasks:
            s_t = model.score(tg, xc, f, lab)
            s_d = model.score(distractors, xc, f, lab)
            # each target against all distractors: softmax cross-entropy
            total -= float(np.mean(TEMPERATURE * s_t - logsumexp(np.concatenate([
                (TEMPERATURE * s_t)[:, None], np.repeat((TEMPERATURE * s_d)[None, :], len(s_t), 0)], axis=1),
                axis=1)))
        return total / len(tasks) + ridge * float(np.sum((theta - DEFAULT_THETA) ** 2))

    res = minimize(loss, DEFAULT_THETA.copy(), method="L-BFGS-B", options={"maxiter": 60})
    theta = res.x if np.all(np.isfinite(res.x)) else DEFAULT_THETA.copy()
    return AttentionWeights(theta=theta, fitted=True, n_history=n)


def counterfactual_looks(thumbs: Sequence[np.ndarray], n: int = 160, seed: int = 0) -> list[np.ndarray]:
    """The person's own pins re-graded into looks they did not choose (distractors for fitting).

    Random exposure, contrast, saturation, white balance, blur and grain: the content stays, the look
    changes, so what the fit learns is which *looks* the person engages with, not which subjects.
    """
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img: np.ndarray = thumbs[i % len(thumbs)].astype(np.float32) / 255.0
        img = cv2.resize(img, (max(8, img.shape[1] // 2), max(8, img.shape[0] // 2)), interpolation=cv2.INTER_AREA)
        lum = img.mean(axis=2, keepdims=True)
        img = lum + (img - lum) * rng.uniform(0.0, 1.8)
        img = (img - 0.5) * rng.uniform(0.6, 1.5) + 0.5 + rng.uniform(-0.2, 0.2)
        img = img * rng.uniform(0.75, 1.25, 3)
        if rng.random() < 0.4:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
        if rng.random() < 0.4:
            img = img + rng.normal(0, rng.uniform(0.01, 0.06), img.shape[:2])[..., None]
        out.append(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    return out
