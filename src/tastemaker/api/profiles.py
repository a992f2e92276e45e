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
from ..engines.assets import wanted_pins
from ..errors import BlobMissingError, ConflictError, NotFoundError
from ..jobs import task_build_profile
from ..store import repo
from ..store.models import Board, PinRecord
from ..taste.privacy import PrivacyConfig
from ..taste.profile import TasteProfile
from .deps import Services


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


def privacy_config(settings: Any) -> PrivacyConfig:
    """The mechanism and budgets the settings ask for; the DP k-means starts from ``max_modes`` modes."""
    return PrivacyConfig(
        epsilon=settings.privacy_epsilon,
        budget_epsilon=settings.privacy_daily_epsilon,
        lifetime_epsilon=settings.privacy_lifetime_epsilon,
        modes=settings.max_modes,
    )


def private_release(
    data_dir: Path, board_id: str, revision: int, profile: TasteProfile, cfg: PrivacyConfig | None = None
) -> TasteProfile:
    """The differentially private version of a board's profile that /v1/styleembed hands out.

    Taste vectors leave the store only through this, and only this is charged: building the exact profile
    for the account's own generations and feedback publishes nothing. One release per board revision is
    charged to the board's privacy accountant (keyed by the revision, so two requests racing to publish the
    same revision are charged once: only the one whose save wins is ever published); the cached release is
    returned for repeated calls (publishing the same noisy answer again is post-processing and costs no
    further budget). A spent daily budget is a 429 with the time it frees up, a spent lifetime budget a 403.
    """
    from ..taste.privacy import Accountant, private_profile

    vecs = np.array([p.vector for p in profile.pins])
    eng = np.array([p.engagement for p in profile.pins])
    accountant = Accountant(data_dir, f"board-{board_id}", cfg)
    return private_profile(profile, vecs, eng, accountant=accountant, cfg=cfg,
                           purpose="styleembed", release_id=f"styleembed:r{revision}")


def forget_board_files(data_dir: Path, board_id: str) -> bool:
    """Remove a deleted board's files in the data dir (its privacy accountant); True if there was one.

    A new board never inherits the ledger (board ids are never reused), so nothing is lost by removing it.
    """
    from ..taste.privacy import Accountant

    path = Accountant(data_dir, f"board-{board_id}").path
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def styleembed_doc(board_id: str, revision: int, profile: TasteProfile) -> dict[str, Any]:
    """The /v1/styleembed body of a private release: its modes (noisy weights, look summary, vectors) and the
    private profile itself. Nothing in it comes from the exact profile: no hash, no silhouette, no pins."""
    total = sum(m.weight for m in profile.modes) or 1.0
    return {
        "board_id": board_id,
        "board_revision": revision,
        "encoder": profile.encoder,
        "feature_names": list(FEATURE_NAMES),
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
        "pins": [],
        "profile": json.loads(profile.to_json()),
        "privacy": profile.privacy,
    }


@dataclass(frozen=True)
class CachedProfile:
    profile_json: str  # "" when the caller did not ask for it
    profile_hash: str
    styleembed_json: str  # "" when the caller did not ask for it
    cache_hit: bool
    revision: int = 0


def board_assets(svc: Services, board: Board, profile: TasteProfile) -> list[tuple[Pin, str]]:
    """The stored pins a generation from this board may draw from (medium exemplars, scenes), with blob paths.

    The same choice the CLI makes from a board folder (:func:`tastemaker.engines.assets.wanted_pins`); a pin
    whose blob is gone is left out (the engine then falls back and says so).
    """
    wanted = wanted_pins(profile)
    out = []
    for rec in board.pins:
        pin = core_pin(rec)
        if pin.id in wanted:
            path = svc.store.blobs.path(rec.sha256)
            if path.exists():
                out.append((pin, str(path)))
    return out


def ensure_profile(svc: Services, s: Session, board: Board) -> CachedProfile:
    """The board's exact profile for its current revision: from the cache, or built (CPU pool) and cached.

    This is what the account's own generations and feedback use; it never leaves the store, so building it
    charges no privacy budget (the private release is :func:`ensure_styleembed`'s). The cache column is
    loaded lazily. A board that has taken feedback gets its reactions replayed onto the rebuilt profile
    (see :func:`replay_feedback`), so adding pins never throws away what the person taught it.
    """
    if board.profile_revision == board.revision and board.profile_hash is not None:
        text = board.profile_json
        if text:
            return CachedProfile(text, board.profile_hash, "", True, board.revision)
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
    last = repo.latest_profile_version(s, board.id)
    if last is not None:  # the board has taken feedback: carry it over to the new revision
        profile = replay_feedback(profile, TasteProfile.from_json(last.profile_json), version=last.version + 1)
        profile_json = profile.to_json()
    profile_hash = profile.content_hash()  # the exact profile's hash: what generations are made from
    if last is not None:
        repo.lock_board(s, board.id)
    saved = repo.save_profile(
        s, board, revision=revision, profile_json=profile_json, profile_hash=profile_hash, styleembed_json=None
    )
    if not saved:  # another request cached this revision first (and it may have taken feedback since): use it
        current = repo.read_board_profile(s, board.id)
        if current is not None and current.profile_revision == revision and current.profile_hash:
            return CachedProfile(
                current.profile_json or "", current.profile_hash, current.styleembed_json or "", False, revision
            )
        raise ConflictError(f"board {board.id} changed while its profile was being built; retry the request")
    elif last is not None:
        repo.add_profile_version(
            s,
            account_id=board.account_id,
            board_id=board.id,
            board_revision=revision,
            version=profile.version,
            profile_hash=profile_hash,
            profile_json=profile_json,
            event={"kind": "rebuilt", "replayed": len(profile.feedback)},
        )
    return CachedProfile(profile_json, profile_hash, "", False, revision)


def ensure_styleembed(svc: Services, s: Session, board: Board) -> CachedProfile:
    """The /v1/styleembed body for the board's current revision: the cached private release, or a new one
    (charged to the board's privacy budget, once per revision) made from the exact profile and cached."""
    if board.profile_revision == board.revision and board.profile_hash is not None:
        body = board.styleembed_json
        if body:
            return CachedProfile("", board.profile_hash, body, True, board.revision)
    exact = ensure_profile(svc, s, board)
    if exact.styleembed_json:  # a racing request published this revision while we built
        return exact
    profile = TasteProfile.from_json(exact.profile_json, name=f"board {board.id}")
    release = private_release(svc.settings.data_dir, board.id, exact.revision, profile, privacy_config(svc.settings))
    text = json.dumps(styleembed_doc(board.id, exact.revision, release), separators=(",", ":"))
    if repo.save_styleembed(s, board.id, revision=exact.revision, styleembed_json=text):
        return CachedProfile("", exact.profile_hash, text, False, exact.revision)
    current = repo.read_board_profile(s, board.id)
    if current is not None and current.profile_revision == exact.revision and current.styleembed_json:
        # Another request published this revision first: answer with its release. Ours is never published
        # (it was not charged: the winner's was, under the same release id).
        return CachedProfile("", current.profile_hash or "", current.styleembed_json, False, exact.revision)
    raise ConflictError(f"board {board.id} changed while its taste was being released; retry the request")


def replay_feedback(built: TasteProfile, previous: TasteProfile, *, version: int) -> TasteProfile:
    """``built`` (a fresh profile of the board's new revision) with ``previous``'s reactions applied.

    Mode ids are not stable across rebuilds, so each reaction is re-assigned to the new mode closest to
    the style of the image it was about; its time is kept, so it keeps fading at the same rate.
    """
    from datetime import UTC, datetime

    from ..taste.feedback import FeedbackEvent, effective

    events = []
    for raw in previous.feedback:
        ev = FeedbackEvent.model_validate(raw)
        sims = built.mode_similarities(np.asarray(ev.vector, dtype=np.float64))
        events.append(ev.model_copy(update={"mode": max(sims, key=lambda k: sims[k])}))
    out = effective(built, events, datetime.now(UTC)) if events else built
    return out.model_copy(update={"version": version})


@dataclass(frozen=True)
class FeedbackResult:
    board_id: str
    board_revision: int
    version: int
    previous_hash: str
    profile_hash: str
    mode: str
    mode_source: str


def apply_board_feedback(
    svc: Services,
    s: Session,
    board: Board,
    *,
    image: Any,
    action: str,
    dwell_seconds: float,
    image_sha256: str,
    source: dict[str, Any],
    stored_mode: str | None,
    made_from: str | None,
) -> FeedbackResult:
    """Apply one reaction to a board's current profile and keep the version history, in ``s``'s transaction.

    ``image`` is the reacted image's StyleDescriptor. The reaction counts toward ``stored_mode`` (the mode
    the generation drew the image in) when the image was made from this board revision's profile lineage
    (``made_from`` is one of its hashes); otherwise toward the mode nearest the image's style. The board
    row is locked for the read-modify-write, so concurrent reactions are applied one after the other.
    """
    from ..taste.feedback import apply_feedback

    for _ in range(3):
        ensure_profile(svc, s, board)
        repo.lock_board(s, board.id)
        cur = repo.read_board_profile(s, board.id)
        if cur is None:
            raise NotFoundError(f"board {board.id!r} was deleted")
        if cur.profile_revision == cur.revision and cur.profile_json and cur.profile_hash:
            break
        s.commit()  # pins were added meanwhile: release the lock, rebuild, and try again
        s.expire(board)
    else:
        raise ConflictError(f"board {board.id} keeps changing; retry the feedback")
    profile = TasteProfile.from_json(cur.profile_json, name=f"board {board.id}")
    lineage = repo.revision_hashes(s, board.id, cur.revision) | {cur.profile_hash}
    mode, mode_source = None, "nearest"
    if stored_mode is not None and made_from in lineage and any(m.id == stored_mode for m in profile.modes):
        mode, mode_source = stored_mode, "generation"
    updated = apply_feedback(
        profile, image=image, action=action, mode=mode, dwell_seconds=dwell_seconds, image_sha256=image_sha256
    )
    new_hash, new_json = updated.content_hash(), updated.to_json()
    if repo.latest_profile_version(s, board.id) is None:  # the first reaction: keep what it started from
        repo.add_profile_version(
            s,
            account_id=board.account_id,
            board_id=board.id,
            board_revision=cur.revision,
            version=profile.version,
            profile_hash=cur.profile_hash,
            profile_json=cur.profile_json,
            event={"kind": "built"},
        )
    chosen = updated.feedback[-1]["mode"]
    repo.add_profile_version(
        s,
        account_id=board.account_id,
        board_id=board.id,
        board_revision=cur.revision,
        version=updated.version,
        profile_hash=new_hash,
        profile_json=new_json,
        event={
            "kind": "feedback",
            "action": action,
            "mode": chosen,
            "mode_source": mode_source,
            "dwell_seconds": dwell_seconds,
            "image_sha256": image_sha256,
            **source,
        },
    )
    saved = repo.set_board_profile(  # the revision's private release (if any) is of its pins, and stays
        s,
        board.id,
        revision=cur.revision,
        profile_json=new_json,
        profile_hash=new_hash,
        styleembed_json=cur.styleembed_json,
    )
    if not saved:
        raise ConflictError(f"board {board.id} changed while the feedback was applied; retry it")
    return FeedbackResult(
        board_id=board.id,
        board_revision=cur.revision,
        version=updated.version,
        previous_hash=cur.profile_hash,
        profile_hash=new_hash,
        mode=chosen,
        mode_source=mode_source,
    )
