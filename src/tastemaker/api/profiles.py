"""Boards' taste profiles as the API serves them: built in the CPU pool, cached per board revision.

The ``/v1/styleembed`` body is rendered once when a profile is built and stored beside it, so a cached
call is a row read, not a re-serialisation (the p99 < 50 ms target in ``bench/api_load.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from ..boards import Pin
from ..encoders.style import FEATURE_NAMES, lab_to_rgb8
from ..store import repo
from ..store.models import Board, PinRecord
from ..taste.profile import TasteProfile
from ..worker import task_build_profile
from .deps import Services
from .errors import BlobMissingError


def core_pin(rec: PinRecord) -> Pin:
    """A stored pin as the core's :class:`~tastemaker.boards.Pin`."""
    return Pin(
        image=rec.image,
        saves=rec.saves,
        clicks=rec.clicks,
        dwell_seconds=rec.dwell_seconds,
        pinned_at=rec.pinned_at,
        title=rec.title,
        tags=tuple(rec.tags),
        source=rec.source,
        sha256=rec.sha256,
    )


def _hex(lab: list[list[float]]) -> list[str]:
    if not lab:
        return []
    rgb = lab_to_rgb8(np.asarray(lab, dtype=np.float32).reshape(1, -1, 3)).reshape(-1, 3)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]


def private_release(data_dir: Path, board_id: str, profile: TasteProfile) -> TasteProfile:
    """The differentially private version of a board's profile that /v1/styleembed hands out.

    Taste vectors leave the store only through this. One release per board revision is charged to the
    board's privacy accountant; the cached release is returned for repeated calls (publishing the same
    noisy answer again is post-processing and costs no further budget). A spent budget is a 429.
    """
    import numpy as np

    from ..taste.privacy import Accountant, private_profile

    vecs = np.array([p.vector for p in profile.pins])
    eng = np.array([p.engagement for p in profile.pins])
    return private_profile(profile, vecs, eng, accountant=Accountant(data_dir, f"board-{board_id}"),
                           purpose="styleembed")


def styleembed_doc(board_id: str, revision: int, profile: TasteProfile) -> dict[str, Any]:
    """The /v1/styleembed body: modes (weights, look summary, vectors), pin weights, and the full profile."""
    total = sum(m.weight for m in profile.modes) or 1.0
    images = {p.id: p.image for p in profile.pins}
    return {
        "board_id": board_id,
        "board_revision": revision,
        "profile_hash": profile.content_hash(),
        "encoder": profile.encoder,
        "feature_names": list(FEATURE_NAMES),
        "silhouette": profile.silhouette,
        "modes": [
            {
                "id": m.id,
                "name": m.name,
                "weight": round(m.weight / total, 6),
                "n_pins": m.n_pins,
                "medoids": m.medoids,
                "tags": m.tags,
                "look": {
                    "palette": _hex(m.look.palette),
                    "palette_weights": m.look.palette_weights,
                    "tone": m.look.tone,
                    "grain": m.look.grain,
                    "softness": m.look.softness,
                    "sharpness": m.look.sharpness,
                    "vignette": m.look.vignette,
                    "chroma": m.look.chroma,
                },
                "vector": [round(float(v), 6) for v in m.vector],
            }
            for m in profile.modes
        ],
        "pins": [{"id": p.id, "image": images[p.id], "weight": p.weight, "mode": p.mode} for p in profile.pins],
        "profile": json.loads(profile.to_json()),
        "privacy": profile.privacy,
    }


@dataclass(frozen=True)
class CachedProfile:
    profile_json: str  # "" when the caller did not ask for it
    profile_hash: str
    styleembed_json: str  # "" when the caller did not ask for it
    cache_hit: bool


def ensure_profile(svc: Services, s: Session, board: Board, *, want: str = "profile") -> CachedProfile:
    """The board's profile for its current revision: from the cache, or built (CPU pool) and cached.

    ``want`` is ``"profile"`` (the TasteProfile JSON, for generations) or ``"styleembed"`` (the ready-made
    response body); the cache columns are loaded lazily, so a cached call reads only the one it needs.
    """
    if board.profile_revision == board.revision and board.profile_hash is not None:
        if want == "styleembed":
            body = board.styleembed_json
            if body:
                return CachedProfile("", board.profile_hash, body, True)
        else:
            text = board.profile_json
            if text:
                return CachedProfile(text, board.profile_hash, "", True)
    revision = board.revision
    pins = list(board.pins)
    args = []
    for rec in pins:
        path = svc.store.blobs.path(rec.sha256)
        if not path.exists():
            raise BlobMissingError(f"board {board.id}: the image of pin {rec.sha256[:16]} is missing from the store")
        args.append((core_pin(rec), str(path)))
    settings = svc.settings
    profile_json: str = svc.runner.call(
        task_build_profile,
        board.name,
        args,
        settings.max_image_pixels,
        settings.max_image_bytes,
        settings.max_modes,
        settings.recency_half_life_days,
    )
    profile = TasteProfile.from_json(profile_json, name=f"board {board.id}")
    doc = styleembed_doc(board.id, revision, private_release(settings.data_dir, board.id, profile))
    doc["profile_hash"] = profile.content_hash()  # the exact profile's hash: what generations are made from
    text = json.dumps(doc, separators=(",", ":"))
    repo.save_profile(
        s, board, revision=revision, profile_json=profile_json, profile_hash=doc["profile_hash"], styleembed_json=text
    )
    return CachedProfile(profile_json, doc["profile_hash"], text, False)
