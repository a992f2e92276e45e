"""Reactions to images teach a board's taste profile; and the profile's version history.

A reaction names one of the account's generated images (``generation_id`` + ``image_index``: it counts toward
the mode the image was drawn in) or uploads an image with a ``board_id`` (it counts toward the mode nearest its
style — or, if the upload is byte-for-byte one of the account's outputs from that board, toward that output's
mode). The core's :func:`~tastemaker.taste.feedback.apply_feedback` makes the new profile version (a bounded
step that fades with time); the board's cached profile is replaced by it, so later generations from the board
use it, and every version is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool

from ...audit import PROFILE_FEEDBACK
from ...errors import NotFoundError, NotReadyError, RequestError
from ...jobs import task_describe
from ...store import StoreSession, sha256_hex
from ...store.records import SUCCEEDED, Job, JobImage
from ..deps import Idempotency, Services, fingerprint
from ..schemas import FeedbackIn, FeedbackOut, ProfileHistoryOut, ProfileVersionOut
from .common import Caller, Replay, owned_board, owned_job
from .profiles import apply_board_feedback

ENDPOINT = "POST /v1/feedback"


def output_image(
    svc: Services, s: StoreSession, caller: Caller, job_id: str, k: int, *, what: str
) -> tuple[Job, JobImage]:
    """Image ``k`` of the caller's finished generation (409 before it has succeeded, 404 for no such image)."""
    job = owned_job(svc, s, caller, job_id)
    if job.status != SUCCEEDED:
        raise NotReadyError(f"generation {job.id} is {job.status}; {what} once it has succeeded")
    image = next((im for im in job.images if im.k == k), None)
    if image is None:
        raise NotFoundError(f"generation {job.id} has {len(job.images)} image(s), numbered from 0; no image {k}")
    return job, image


@dataclass
class _Source:
    """The reacted image and what is known about where it came from."""

    board_id: str
    data: bytes
    sha256: str
    stored_mode: str | None = None
    made_from: str | None = None
    event: dict[str, Any] = field(default_factory=dict)
    generation_id: str | None = None
    image_index: int | None = None

    def made_by(self, job: Job, image: JobImage) -> None:
        """The image is one of the account's outputs: it counts toward the mode it was drawn in."""
        self.stored_mode, self.made_from = (image.record or {}).get("mode"), job.profile_hash
        self.event.update(generation_id=job.id, image_index=image.k)
        self.generation_id, self.image_index = job.id, image.k


def _resolve(svc: Services, caller: Caller, body: FeedbackIn, upload: bytes | None) -> _Source:
    """Find the image and the board (404 for what is not this account's), cheapest checks first."""
    if (body.generation_id is None) == (upload is None):
        raise RequestError("give exactly one of generation_id (one of your generated images) or image (an upload)")
    with svc.store.session() as s:
        if body.generation_id is not None:
            job, image = output_image(svc, s, caller, body.generation_id, body.image_index,
                                      what="react to its images")
            if job.board_id is None:
                raise RequestError(
                    f"generation {job.id} was not made from a board (an inline profile, or its board was deleted); "
                    "feedback teaches a board's profile"
                )
            if body.board_id is not None and body.board_id != job.board_id:
                raise RequestError(f"generation {job.id} was made from board {job.board_id}, not {body.board_id}")
            owned_board(svc, s, caller, job.board_id)
            src = _Source(board_id=job.board_id, data=svc.store.blobs.get(image.sha256), sha256=image.sha256)
            src.made_by(job, image)
            return src
        assert upload is not None
        if body.board_id is None:
            raise RequestError("board_id: required with an uploaded image (which board's profile should learn?)")
        board = owned_board(svc, s, caller, body.board_id)
        sha = sha256_hex(upload)
        src = _Source(board_id=board.id, data=upload, sha256=sha, event={"upload": True})
        found = s.find_job_image(caller.account_id, sha)
        if found is not None and found[0].board_id == board.id:  # it is one of this board's outputs
            src.made_by(*found)
        return src


def _apply(
    svc: Services, caller: Caller, body: FeedbackIn, src: _Source, descriptor: Any, idem: Idempotency
) -> dict[str, Any]:
    with svc.store.session() as s:
        try:
            board = owned_board(svc, s, caller, src.board_id)
            result = apply_board_feedback(
                svc,
                s,
                board,
                image=descriptor,
                action=body.action,
                dwell_seconds=body.dwell_seconds,
                image_sha256=src.sha256,
                source=src.event,
                stored_mode=src.stored_mode,
                made_from=src.made_from,
            )
            doc = FeedbackOut(
                **asdict(result), action=body.action, image_sha256=src.sha256, generation_id=src.generation_id,
                image_index=src.image_index, dwell_seconds=body.dwell_seconds,
            ).model_dump(mode="json")
            svc.audit.append(
                s,
                PROFILE_FEEDBACK,
                account_id=caller.account_id,
                objects={"board": result.board_id, "generation": src.generation_id},
                request_id=caller.request_id,
                detail={
                    "action": body.action,
                    "mode": result.mode,
                    "version": result.version,
                    "image_sha256": src.sha256,
                    "profile_sha256": result.profile_hash,
                },
            )
            idem.complete(s, status=200, body=doc, resource_id=result.board_id)
            s.commit()
        except BaseException:
            s.rollback()
            raise
    return doc


def _claim(svc: Services, idem: Idempotency, body: FeedbackIn, src: _Source) -> Replay | None:
    fields = body.model_dump(exclude={"image"})
    fields.update(board_id=src.board_id, image_sha256=src.sha256)
    with svc.store.session() as s:
        replay = idem.claim(s, fingerprint(ENDPOINT, fields))
    return None if replay is None else Replay.of(replay)


async def react(
    svc: Services, caller: Caller, body: FeedbackIn, upload: bytes | None, key: str | None
) -> dict[str, Any] | Replay:
    """Apply one reaction (``Idempotency-Key`` honoured); the image is described in the CPU pool."""
    settings = svc.settings
    src = await run_in_threadpool(_resolve, svc, caller, body, upload)
    idem = Idempotency(svc, caller.principal, key, ENDPOINT)
    replay = await run_in_threadpool(_claim, svc, idem, body, src)
    if replay is not None:
        return replay
    try:
        descriptor = await svc.runner.call_async(
            task_describe, src.data, "image", settings.max_image_pixels, settings.max_image_bytes
        )
        return await run_in_threadpool(_apply, svc, caller, body, src, descriptor, idem)
    except BaseException:
        await run_in_threadpool(idem.abandon)
        raise


def profile_history(svc: Services, s: StoreSession, caller: Caller, board_id: str) -> ProfileHistoryOut:
    """Every kept version of the board's profile, oldest first, with what made it."""
    board = owned_board(svc, s, caller, board_id)
    described = set(ProfileVersionOut.model_fields) - {"version", "board_revision", "profile_hash", "created_at"}
    versions = [
        ProfileVersionOut(
            version=v.version, board_revision=v.board_revision, profile_hash=v.profile_hash, created_at=v.created_at,
            **{**{k: v.event.get(k) for k in described}, "kind": v.event.get("kind", "feedback")},
        )
        for v in s.profile_versions(board.id)
    ]
    return ProfileHistoryOut(
        board_id=board.id, board_revision=board.revision, profile_hash=board.profile_hash, versions=versions
    )
