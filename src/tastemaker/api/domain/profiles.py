"""Boards' taste profiles as the API serves them: built in the CPU pool, cached per board revision.

The ``/v1/styleembed`` body is rendered once when a profile is built and stored beside it, so a cached
call is a row read, not a re-serialisation (the p99 < 50 ms target in ``bench/api_load.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...audit import STYLEEMBED
from ...boards import Pin
from ...encoders.style import FEATURE_NAMES, lab_to_rgb8
from ...engines.assets import wanted_pins
from ...errors import BlobMissingError, ConflictError, NotFoundError
from ...jobs import task_build_profile
from ...store import StoreSession
from ...store.records import Board, ProfileVersion, StoredPin, period_of, utcnow
from ...taste.privacy import PrivacyConfig
from ...taste.profile import TasteProfile
from ..deps import Idempotency, Services, fingerprint
from .common import Caller, owned_board


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
    from ...taste.privacy import Accountant, private_profile

    vecs = np.array([p.vector for p in profile.pins])
    eng = np.array([p.engagement for p in profile.pins])
    accountant = Accountant(data_dir, f"board-{board_id}", cfg)
    return private_profile(profile, vecs, eng, accountant=accountant, cfg=cfg,
                           purpose="styleembed", release_id=f"styleembed:r{revision}")


def forget_board_files(data_dir: Path, board_id: str) -> bool:
    """Remove a deleted board's files in the data dir (its privacy accountant); True if there was one.

    A new board never inherits the ledger (board ids are never reused), so nothing is lost by removing it.
    """
    from ...taste.privacy import Accountant

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


@dataclass
class CachedProfile:
    """A board's profile for one revision: its JSON and hash, and the /v1/styleembed body once released."""

    board_id: str
    profile_json: str  # "" when the caller did not ask for it
    profile_hash: str
    styleembed_json: str  # "" when the caller did not ask for it
    cache_hit: bool
    revision: int = 0
    parsed: TasteProfile | None = None

    def profile(self) -> TasteProfile:
        """The profile as the model, parsed once however often it is asked for."""
        if self.parsed is None:
            self.parsed = TasteProfile.from_json(self.profile_json, name=f"board {self.board_id}")
        return self.parsed


def _present(svc: Services, pins: Iterable[StoredPin]) -> list[Pin]:
    """The pins whose blobs are in the store (the job runner's tasks read them there, in the worker)."""
    blobs = svc.store.blobs
    return [p.pin for p in pins if blobs.exists(p.pin.sha256)]


def board_assets(svc: Services, s: StoreSession, board_id: str, profile: TasteProfile) -> list[Pin]:
    """The stored pins a generation from this board may draw from (medium exemplars, scenes).

    The same choice the CLI makes from a board folder (:func:`tastemaker.engines.assets.wanted_pins`); a pin
    whose blob is gone is left out (the engine then falls back and says so).
    """
    wanted = wanted_pins(profile)
    return _present(svc, (p for p in s.board_pins(board_id) if p.pin.id in wanted))


def _cached(s: StoreSession, board: Board, revision: int) -> CachedProfile | None:
    """The profile cached for ``revision``, if there is one."""
    cur = s.read_board_profile(board.id)
    if cur is None or cur.profile_revision != revision or not cur.profile_hash or not cur.profile_json:
        return None
    return CachedProfile(board.id, cur.profile_json, cur.profile_hash, cur.styleembed_json or "", True, revision)


def ensure_profile(svc: Services, s: StoreSession, board: Board) -> CachedProfile:
    """The board's exact profile for its current revision: from the cache, or built (CPU pool) and cached.

    This is what the account's own generations and feedback use; it never leaves the store, so building it
    charges no privacy budget (the private release is :func:`ensure_styleembed`'s). A board that has taken
    feedback gets its reactions replayed onto the rebuilt profile (see :func:`replay_feedback`), so adding
    pins never throws away what the person taught it.
    """
    if board.profile_is_current:
        hit = _cached(s, board, board.revision)
        if hit is not None:
            return hit
    revision = board.revision
    pins = s.board_pins(board.id)
    present = _present(svc, pins)
    if len(present) < len(pins):
        have = {q.sha256 for q in present}
        gone = next(p for p in pins if p.pin.sha256 not in have)
        raise BlobMissingError(f"board {board.id}: the image of pin {gone.pin.sha256[:16]} is missing from the store")
    settings = svc.settings
    profile_json: str = svc.runner.call(
        task_build_profile,
        board.name,
        present,
        svc.store.blobs,
        settings.max_image_pixels,
        settings.max_image_bytes,
        settings.max_modes,
        settings.recency_half_life_days,
    )
    profile = TasteProfile.from_json(profile_json, name=f"board {board.id}")
    last = s.latest_profile_version(board.id)
    if last is not None and last.profile_json:  # the board has taken feedback: carry it over to the new revision
        profile = replay_feedback(profile, TasteProfile.from_json(last.profile_json), version=last.version + 1)
        profile_json = profile.to_json()
    profile_hash = profile.content_hash()  # the exact profile's hash: what generations are made from
    if last is not None:
        s.lock_board(board.id)
    saved = s.save_profile(
        board.id, revision=revision, profile_json=profile_json, profile_hash=profile_hash, styleembed_json=None
    )
    if not saved:  # another request cached this revision first (and it may have taken feedback since): use it
        current = _cached(s, board, revision)
        if current is not None:
            return CachedProfile(board.id, current.profile_json, current.profile_hash, current.styleembed_json,
                                 False, revision)
        raise ConflictError(f"board {board.id} changed while its profile was being built; retry the request")
    if last is not None:
        s.add_profile_version(_version(board, revision, profile, profile_hash, profile_json,
                                       {"kind": "rebuilt", "replayed": len(profile.feedback)}))
    return CachedProfile(board.id, profile_json, profile_hash, "", False, revision, parsed=profile)


def _version(
    board: Board, revision: int, profile: TasteProfile, profile_hash: str, profile_json: str, event: dict[str, Any]
) -> ProfileVersion:
    return ProfileVersion(account_id=board.account_id, board_id=board.id, board_revision=revision,
                          version=profile.version, profile_hash=profile_hash, event=event, created_at=utcnow(),
                          profile_json=profile_json)


def ensure_styleembed(svc: Services, s: StoreSession, board: Board) -> CachedProfile:
    """The /v1/styleembed body for the board's current revision: the cached private release, or a new one
    (charged to the board's privacy budget, once per revision) made from the exact profile and cached."""
    if board.profile_is_current:
        hit = _cached(s, board, board.revision)
        if hit is not None and hit.styleembed_json:
            return hit
    exact = ensure_profile(svc, s, board)
    if exact.styleembed_json:  # a racing request published this revision while we built
        return exact
    release = private_release(svc.settings.data_dir, board.id, exact.revision, exact.profile(),
                              privacy_config(svc.settings))
    text = json.dumps(styleembed_doc(board.id, exact.revision, release), separators=(",", ":"))
    if s.save_styleembed(board.id, revision=exact.revision, styleembed_json=text):
        return CachedProfile(board.id, "", exact.profile_hash, text, False, exact.revision)
    current = _cached(s, board, exact.revision)
    if current is not None and current.styleembed_json:
        # Another request published this revision first: answer with its release. Ours is never published
        # (it was not charged: the winner's was, under the same release id).
        return CachedProfile(board.id, "", current.profile_hash, current.styleembed_json, False, exact.revision)
    raise ConflictError(f"board {board.id} changed while its taste was being released; retry the request")


def replay_feedback(built: TasteProfile, previous: TasteProfile, *, version: int) -> TasteProfile:
    """``built`` (a fresh profile of the board's new revision) with ``previous``'s reactions applied.

    Mode ids are not stable across rebuilds, so each reaction is re-assigned to the new mode closest to
    the style of the image it was about; its time is kept, so it keeps fading at the same rate.
    """
    from datetime import UTC, datetime

    from ...taste.feedback import FeedbackEvent, effective

    events = []
    for raw in previous.feedback:
        ev = FeedbackEvent.model_validate(raw)
        sims = built.mode_similarities(np.asarray(ev.vector, dtype=np.float64))
        events.append(ev.model_copy(update={"mode": max(sims, key=lambda k: sims[k])}))
    out = effective(built, events, datetime.now(UTC)) if events else built
    return out.model_copy(update={"version": version})


@dataclass(frozen=True)
class FeedbackResult:
    """What a reaction did to the board's profile (fields named as in the API's ``FeedbackOut``)."""

    board_id: str
    board_revision: int
    version: int
    previous_profile_hash: str
    profile_hash: str
    mode: str
    mode_source: str


def apply_board_feedback(
    svc: Services,
    s: StoreSession,
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
    from ...taste.feedback import apply_feedback

    for _ in range(3):
        ensure_profile(svc, s, board)
        s.lock_board(board.id)
        cur = s.read_board_profile(board.id)
        if cur is None:
            raise NotFoundError(f"board {board.id!r} was deleted")
        if cur.profile_revision == cur.revision and cur.profile_json and cur.profile_hash:
            break
        s.commit()  # pins were added meanwhile: release the lock, rebuild, and try again
        board = s.get_board(board.account_id, board.id)
    else:
        raise ConflictError(f"board {board.id} keeps changing; retry the feedback")
    profile = TasteProfile.from_json(cur.profile_json, name=f"board {board.id}")
    lineage = s.revision_hashes(board.id, cur.revision) | {cur.profile_hash}
    mode, mode_source = None, "nearest"
    if stored_mode is not None and made_from in lineage and any(m.id == stored_mode for m in profile.modes):
        mode, mode_source = stored_mode, "generation"
    updated = apply_feedback(
        profile, image=image, action=action, mode=mode, dwell_seconds=dwell_seconds, image_sha256=image_sha256
    )
    new_hash, new_json = updated.content_hash(), updated.to_json()
    if s.latest_profile_version(board.id) is None:  # the first reaction: keep what it started from
        s.add_profile_version(_version(board, cur.revision, profile, cur.profile_hash, cur.profile_json,
                                       {"kind": "built"}))
    chosen = updated.feedback[-1]["mode"]
    event = {"kind": "feedback", "action": action, "mode": chosen, "mode_source": mode_source,
             "dwell_seconds": dwell_seconds, "image_sha256": image_sha256, **source}
    s.add_profile_version(_version(board, cur.revision, updated, new_hash, new_json, event))
    saved = s.set_board_profile(  # the revision's private release (if any) is of its pins, and stays
        board.id, revision=cur.revision, profile_json=new_json, profile_hash=new_hash,
        styleembed_json=cur.styleembed_json,
    )
    if not saved:
        raise ConflictError(f"board {board.id} changed while the feedback was applied; retry it")
    return FeedbackResult(board.id, cur.revision, updated.version, cur.profile_hash, new_hash, chosen, mode_source)


def styleembed(
    svc: Services, s: StoreSession, caller: Caller, board_id: str, *, fields: dict[str, Any], key: str | None
) -> tuple[CachedProfile, bool]:
    """The board's private taste release for ``POST /v1/styleembed``, counted and audited (a replay of an
    ``Idempotency-Key`` returns it again but is not a second extraction). Returns it and whether it was a
    replay."""
    endpoint = "POST /v1/styleembed"
    if key is None:  # the usual call: count and audit it in the next group commit (see api.groupcommit)
        hit = s.cached_styleembed(caller.account_id, board_id)  # one read when the release is cached
        if hit is not None:
            cached = CachedProfile(board_id, "", hit[1], hit[0], True)
        else:
            board = owned_board(svc, s, caller, board_id)  # pins load only on a miss
            cached = ensure_styleembed(svc, s, board)
            s.commit()
        s.rollback()  # end the read transaction before waiting for the group commit
        detail = {"profile_sha256": cached.profile_hash, "cache": "hit" if cached.cache_hit else "miss"}
        svc.writes.styleembed(caller.account_id, period_of(utcnow()), board_id, caller.request_id, detail)
        return cached, False
    idem = Idempotency(svc, caller.principal, key, endpoint)
    replay = idem.claim(s, fingerprint(endpoint, fields)) is not None
    try:
        board = owned_board(svc, s, caller, board_id)  # pins load only on a miss
        cached = ensure_styleembed(svc, s, board)
        if not replay:
            s.count_styleembed(caller.account_id, period_of(utcnow()))
            detail = {"profile_sha256": cached.profile_hash, "cache": "hit" if cached.cache_hit else "miss"}
            svc.audit.append(s, STYLEEMBED, account_id=caller.account_id, objects={"board": board.id},
                             request_id=caller.request_id, detail=detail)
            idem.complete(s, status=200, body=None, resource_id=board.id)
        s.commit()
    except BaseException:
        s.rollback()
        idem.abandon()
        raise
    return cached, replay
