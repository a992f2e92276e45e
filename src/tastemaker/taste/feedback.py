"""Feedback: the profile learns from how the person reacts to what Tastemaker made.

Each reaction is an event ``(time, mode, action, dwell)`` kept in the profile. The effective profile
is recomputed from the board-derived *base* (mode weights and centroids at build time) plus every
event, each decayed by its age (half-life :data:`HALF_LIFE_DAYS`), so old taste fades:

* mode weight: ``base_weight * exp(sum of STEP * reward * decay)`` over the mode's events, then
  renormalised; a single event changes a weight by at most a factor ``exp(STEP * 1.3)``;
* mode centroid: moves toward (positive reward) or away from (hide) the reacted image's style by
  ``CENTROID_STEP * reward * decay`` of the way, per event.

Rewards: save +1, like +0.6, skip -0.25, hide -1; dwell adds up to +0.3 for positive actions
(``0.1 * log1p(dwell / 10 s)``). Every update bumps ``version``; the CLI keeps each previous version in
the data dir so ``tastemaker profile history`` can show how taste moved.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from ..encoders.style import StyleDescriptor, features_to_vector, vector_to_features
from ..errors import ProfileError
from ..media import write_atomic
from .profile import TasteProfile

Action = Literal["save", "like", "skip", "hide"]
REWARD: dict[str, float] = {"save": 1.0, "like": 0.6, "skip": -0.25, "hide": -1.0}
STEP = 0.35
CENTROID_STEP = 0.08
HALF_LIFE_DAYS = 30.0


class FeedbackEvent(BaseModel):
    time: str
    mode: str
    action: Action
    dwell_seconds: float = 0.0
    image_sha256: str = ""
    #: the reacted image's style vector (weighted feature space), so centroids can be recomputed
    vector: list[float]

    @property
    def reward(self) -> float:
        r = REWARD[self.action]
        if r > 0:
            r += min(0.3, 0.1 * math.log1p(self.dwell_seconds / 10.0))
        return r


def _decay(event_time: str, now: datetime) -> float:
    age = (now - datetime.fromisoformat(event_time)).total_seconds() / 86400
    return 0.5 ** (max(age, 0.0) / HALF_LIFE_DAYS)


def effective(profile: TasteProfile, events: list[FeedbackEvent], now: datetime) -> TasteProfile:
    """Recompute mode weights and centroids from the base plus decayed events."""
    base = profile.feedback_base or {
        m.id: {"weight": m.weight, "features": dict(m.features)} for m in profile.modes
    }
    logw = {mid: math.log(max(b["weight"], 1e-9)) for mid, b in base.items()}
    vecs = {mid: features_to_vector(b["features"]) for mid, b in base.items()}
    for ev in sorted(events, key=lambda e: e.time):
        if ev.mode not in base:
            continue
        d = _decay(ev.time, now)
        logw[ev.mode] += STEP * ev.reward * d
        target = np.asarray(ev.vector, dtype=np.float64)
        vecs[ev.mode] = vecs[ev.mode] + CENTROID_STEP * ev.reward * d * (target - vecs[ev.mode])
    top = max(logw.values())
    raw = {mid: math.exp(v - top) for mid, v in logw.items()}
    total = sum(raw.values())
    modes = []
    for m in profile.modes:
        feats = {k: round(v, 6) for k, v in vector_to_features(vecs[m.id]).items()}
        modes.append(m.model_copy(update={"weight": raw[m.id] / total, "features": feats}))
        modes[-1].__dict__.pop("vector", None)  # cached_property: recompute from the new features
    return profile.model_copy(
        update={"modes": modes, "feedback_base": base, "feedback": [e.model_dump() for e in events]}
    )


def apply_feedback(
    profile: TasteProfile,
    *,
    image: StyleDescriptor,
    action: str,
    mode: str | None = None,
    dwell_seconds: float = 0.0,
    image_sha256: str = "",
    now: datetime | None = None,
) -> TasteProfile:
    """A new version of ``profile`` that has seen one more reaction."""
    if action not in REWARD:
        raise ProfileError(f"action {action!r} is not one of save, like, skip, hide")
    if dwell_seconds < 0 or not math.isfinite(dwell_seconds):
        raise ProfileError(f"dwell must be a number of seconds >= 0, got {dwell_seconds!r}")
    if profile.privacy is not None:
        raise ProfileError("a differentially private profile cannot take feedback; use your own profile")
    now = now or datetime.now(UTC)
    if mode is None:
        sims = profile.mode_similarities(image)
        mode = max(sims, key=lambda k: sims[k])
    profile.mode(mode)  # unknown id -> clear error
    events = [FeedbackEvent.model_validate(e) for e in profile.feedback]
    events.append(
        FeedbackEvent(time=now.isoformat(), mode=mode, action=action, dwell_seconds=dwell_seconds,
                      image_sha256=image_sha256, vector=[round(float(v), 6) for v in image.vector])
    )
    out = effective(profile, events, now)
    return out.model_copy(update={"version": profile.version + 1})


def mode_from_manifest(image_path: Path) -> str | None:
    """The mode an output was drawn in, from the ``manifest.json`` saved beside it (if any)."""
    manifest = image_path.parent / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    for entry in data.get("images", []):
        if entry.get("file") == image_path.name:
            return entry.get("mode")
    return None


def history_dir(data_dir: Path | str, profile: TasteProfile) -> Path:
    return Path(data_dir) / "profiles" / (profile.id or profile.content_hash()[:32]) / "history"


def save_version(data_dir: Path | str, profile: TasteProfile) -> Path:
    """Keep a copy of this version (before it is replaced) in the history folder."""
    d = history_dir(data_dir, profile)
    d.mkdir(parents=True, exist_ok=True)
    return write_atomic(d / f"v{profile.version:05d}.json", profile.to_json().encode())


def history(data_dir: Path | str, profile: TasteProfile) -> list[TasteProfile]:
    """Every kept version plus the current one, oldest first."""
    d = history_dir(data_dir, profile)
    versions = [TasteProfile.load(p) for p in sorted(d.glob("v*.json"))] if d.exists() else []
    return [v for v in versions if v.version < profile.version] + [profile]
