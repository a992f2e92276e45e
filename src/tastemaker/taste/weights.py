"""Engagement weights: how much each pin counts in the taste profile.

``raw = base + saves_w*log1p(saves) + clicks_w*log1p(clicks) + dwell_w*log1p(dwell/dwell_scale)``,
times a recency factor ``0.5 ** (age_days / half_life_days)`` where age is measured from the
board's newest pin (so a profile does not change just because time passed; pins without a date
count as newest). Logs keep a viral pin from drowning the rest; two caps finish the job:

1. no pin's raw weight exceeds ``cap_ratio`` times the median raw weight;
2. no pin's share of the total exceeds ``max(max_share, 2/n)`` (excess is re-spread, water-filling).

Every step is monotone, so more engagement never lowers a pin's own weight, and every step is a
symmetric function of the pins, so their order never matters.

Any timestamps give finite weights that sum to 1: a date in the future (which board import refuses, but
an older store may hold) counts as "now", and a pin centuries older than the rest keeps a tiny weight
(at least :data:`MIN_RELATIVE_WEIGHT` of the largest) instead of underflowing to zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, Field

from ..boards import Pin

#: The smallest weight a pin keeps relative to the board's largest (before the caps): far below anything that
#: shows in a profile, far above zero, so centuries-old pins can never turn every weight into 0/0.
MIN_RELATIVE_WEIGHT = 1e-9


def reference_time(stamps: Sequence[datetime | None], now: datetime | None = None) -> datetime | None:
    """The time ages are measured from: the newest pin's date, but never later than now."""
    dated = [t for t in stamps if t is not None]
    if not dated:
        return None
    return min(max(dated), now or datetime.now(UTC))


class WeightConfig(BaseModel):
    """Documented defaults; tune per deployment."""

    base: float = Field(1.0, gt=0)
    saves_w: float = Field(1.0, ge=0)
    clicks_w: float = Field(0.5, ge=0)
    dwell_w: float = Field(0.5, ge=0)
    dwell_scale_s: float = Field(10.0, gt=0)
    half_life_days: float = Field(180.0, gt=0)
    cap_ratio: float = Field(4.0, ge=1)
    max_share: float = Field(0.2, gt=0, le=1)


def engagement_score(pin: Pin, cfg: WeightConfig) -> float:
    """The uncapped engagement score of one pin (>= base)."""
    return (
        cfg.base
        + cfg.saves_w * math.log1p(pin.saves)
        + cfg.clicks_w * math.log1p(pin.clicks)
        + cfg.dwell_w * math.log1p(pin.dwell_seconds / cfg.dwell_scale_s)
    )


def recency_factor(pinned_at: datetime | None, reference: datetime | None, half_life_days: float) -> float:
    """``0.5 ** (age / half_life)``; 1.0 for undated pins or when there is no reference."""
    if pinned_at is None or reference is None:
        return 1.0
    age_days = max(0.0, (reference - pinned_at).total_seconds() / 86400.0)
    return max(0.5 ** (age_days / half_life_days), MIN_RELATIVE_WEIGHT)


def _cap_shares(w: np.ndarray, max_share: float) -> np.ndarray:
    """Water-filling: clip shares at ``max_share`` and re-spread the excess proportionally."""
    share = w / w.sum()
    capped = np.zeros(len(w), dtype=bool)
    for _ in range(len(w)):
        over = (share > max_share + 1e-12) & ~capped
        if not over.any():
            break
        capped |= over
        free = ~capped
        share[capped] = max_share
        rest = 1.0 - max_share * capped.sum()
        if free.any() and w[free].sum() > 0:
            share[free] = w[free] / w[free].sum() * rest
    return share


def pin_weights(pins: Sequence[Pin], cfg: WeightConfig | None = None) -> np.ndarray:
    """Normalised weights (sum 1), one per pin, in the order given."""
    cfg = cfg or WeightConfig()
    if not pins:
        return np.zeros(0)
    reference = reference_time([p.pinned_at for p in pins])
    raw = np.array(
        [engagement_score(p, cfg) * recency_factor(p.pinned_at, reference, cfg.half_life_days) for p in pins]
    )
    return cap_weights(raw, cfg)


def cap_weights(raw: np.ndarray, cfg: WeightConfig) -> np.ndarray:
    """The two dominance caps (median ratio, then share water-filling) on raw positive weights.

    Weights that are not finite or not positive (an underflow, a bug upstream) never make it through: each
    is raised to :data:`MIN_RELATIVE_WEIGHT` of the largest, and a board with no usable weight at all gets
    equal weights.
    """
    raw = np.asarray(raw, dtype=np.float64)
    raw = np.where(np.isfinite(raw) & (raw > 0), raw, 0.0)
    top = float(raw.max(initial=0.0))
    if top <= 0.0:
        raw = np.ones(len(raw))
    else:  # relative to the largest (shares do not change), so tiny values cannot underflow either
        raw = np.maximum(raw / top, MIN_RELATIVE_WEIGHT)
    raw = np.minimum(raw, cfg.cap_ratio * float(np.median(raw)))
    return _cap_shares(raw, max(cfg.max_share, 2.0 / len(raw)))
