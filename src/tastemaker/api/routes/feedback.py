"""``POST /v1/feedback``: a board's taste profile learns from reactions to images; and its version history.

A reaction names one of the account's generated images (``generation_id`` + ``image_index``: it counts toward
the mode the image was drawn in) or uploads an image with a ``board_id`` (it counts toward the mode nearest its
style — or, if the upload is byte-for-byte one of the account's outputs from that board, toward that output's
mode). The core's :func:`~tastemaker.taste.feedback.apply_feedback` makes the new profile version (a bounded
step that fades with time); the board's cached profile is replaced by it, so later generations from the board
use it, and every version is kept in ``profile_versions`` (``GET /v1/boards/{id}/profile/history``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...audit import PROFILE_FEEDBACK
from ...errors import NotFoundError, RequestError
from ...jobs import task_describe
from ...store import repo, sha256_hex
from ..deps import (
    BoardsRead,
    BoardsWrite,
    Idempotency,
    IdempotencyKey,
    Principal,
    Services,
    ServicesDep,
    SessionDep,
    fingerprint,
    request_id,
)
from ..profiles import apply_board_feedback
from ..schemas import FeedbackIn, FeedbackOut, ProfileHistoryOut, ProfileVersionOut
from .common import AUTH_ERRORS, errors, form_properties, owned_board, owned_job
from .generations import NotReadyError
from .uploads import image_body_schema, read_image_body

router = APIRouter(tags=["taste"], responses=AUTH_ERRORS)
ENDPOINT = "POST /v1/feedback"

FEEDBACK_BODY = image_body_schema(
    "FeedbackIn",
    form_properties(FeedbackIn, files={"image": {"type": "string", "format": "binary", "description": "the image"}}),
    ["action"],
    one_of=["generation_id", "image"],
    needs={"image": ["board_id"]},
)


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


def _resolve(request: Request, svc: Services, principal: Principal, body: FeedbackIn, upload: bytes | None) -> _Source:
    """Find the image and the board (404 for what is not this account's), cheapest checks first."""
    if (body.generation_id is None) == (upload is None):
        raise RequestError("give exactly one of generation_id (one of your generated images) or image (an upload)")
    with svc.store.session() as s:
        if body.generation_id is not None:
            job = owned_job(svc, s, request, principal, body.generation_id)
            if job.status != repo.SUCCEEDED:
                raise NotReadyError(f"generation {job.id} is {job.status}; react to its images once it has succeeded")
            image = next((im for im in job.images if im.k == body.image_index), None)
            if image is None:
                raise NotFoundError(
                    f"generation {job.id} has {len(job.images)} image(s), numbered from 0; no image {body.image_index}"
                )
            if job.board_id is None:
                raise RequestError(
                    f"generation {job.id} was not made from a board (an inline profile, or its board was deleted); "
                    "feedback teaches a board's profile"
                )
            if body.board_id is not None and body.board_id != job.board_id:
                raise RequestError(f"generation {job.id} was made from board {job.board_id}, not {body.board_id}")
            owned_board(svc, s, request, principal, job.board_id)
            src = _Source(
                board_id=job.board_id,
                data=svc.store.blobs.get(image.sha256),
                sha256=image.sha256,
                stored_mode=(image.record or {}).get("mode"),
                made_from=job.profile_hash,
                event={"generation_id": job.id, "image_index": image.k},
                generation_id=job.id,
                image_index=image.k,
            )
            return src
        assert upload is not None
        if body.board_id is None:
            raise RequestError("board_id: required with an uploaded image (which board's profile should learn?)")
        board = owned_board(svc, s, request, principal, body.board_id)
        sha = sha256_hex(upload)
        src = _Source(board_id=board.id, data=upload, sha256=sha, event={"upload": True})
        found = repo.find_job_image(s, principal.account_id, sha)
        if found is not None and found[0].board_id == board.id:  # it is one of this board's outputs
            job, image = found
            src.stored_mode, src.made_from = (image.record or {}).get("mode"), job.profile_hash
            src.event.update(generation_id=job.id, image_index=image.k)
            src.generation_id, src.image_index = job.id, image.k
        return src


def _apply(
    request: Request,
    svc: Services,
    principal: Principal,
    body: FeedbackIn,
    src: _Source,
    descriptor: Any,
    idem: Idempotency,
) -> dict[str, Any]:
    with svc.store.session() as s:
        try:
            board = owned_board(svc, s, request, principal, src.board_id)
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
                board_id=result.board_id,
                board_revision=result.board_revision,
                version=result.version,
                previous_profile_hash=result.previous_hash,
                profile_hash=result.profile_hash,
                action=body.action,
                mode=result.mode,
                mode_source=result.mode_source,
                image_sha256=src.sha256,
                generation_id=src.generation_id,
                image_index=src.image_index,
                dwell_seconds=body.dwell_seconds,
            ).model_dump(mode="json")
            svc.audit.append(
                s,
                PROFILE_FEEDBACK,
                account_id=principal.account_id,
                objects={"board": result.board_id, "generation": src.generation_id},
                request_id=request_id(request),
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


def _claim(svc: Services, idem: Idempotency, body: FeedbackIn, src: _Source) -> Any:
    fields = body.model_dump(exclude={"image"})
    fields.update(board_id=src.board_id, image_sha256=src.sha256)
    with svc.store.session() as s:
        return idem.claim(s, fingerprint(ENDPOINT, fields))


@router.post(
    "/v1/feedback",
    response_model=FeedbackOut,
    summary="React to an image (save, like, skip, hide): the board's taste profile learns from it",
    description=(
        'JSON `{"generation_id", "image_index", "action", "dwell_seconds"}` for one of your generated '
        'images, or `{"board_id", "image": "<base64>", "action"}` (or multipart with an `image` file part) '
        "for any image. The board's profile takes a bounded step toward (save, like) or away from (skip, hide) "
        "the image's look; later generations from the board use the new version. `Idempotency-Key` is honoured."
    ),
    responses=errors(400, 404, 409, 413, 415),
    openapi_extra=FEEDBACK_BODY,
)
async def feedback(
    request: Request, svc: ServicesDep, principal: BoardsWrite, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    settings = svc.settings
    body, upload = await read_image_body(request, FeedbackIn, max_bytes=settings.max_image_bytes)
    src = await run_in_threadpool(_resolve, request, svc, principal, body, upload)
    idem = Idempotency(svc, principal, idempotency_key, ENDPOINT)
    replay = await run_in_threadpool(_claim, svc, idem, body, src)
    if replay is not None:
        return JSONResponse(
            replay.response_body, status_code=replay.response_status or 200, headers={"Idempotent-Replayed": "true"}
        )
    try:
        descriptor = await svc.runner.call_async(
            task_describe, src.data, "image", settings.max_image_pixels, settings.max_image_bytes
        )
        doc = await run_in_threadpool(_apply, request, svc, principal, body, src, descriptor, idem)
    except BaseException:
        await run_in_threadpool(idem.abandon)
        raise
    return JSONResponse(doc)


BoardId = Annotated[str, PathParam(min_length=1, max_length=64, description="a board id (brd_...)")]


@router.get(
    "/v1/boards/{board_id}/profile/history",
    response_model=ProfileHistoryOut,
    summary="How the board's taste profile changed with feedback: one entry per version",
    responses=errors(404),
)
def profile_history(
    request: Request, svc: ServicesDep, session: SessionDep, principal: BoardsRead, board_id: BoardId
) -> ProfileHistoryOut:
    board = owned_board(svc, session, request, principal, board_id)
    versions = []
    for v in repo.profile_versions(session, board.id):
        ev = dict(v.event or {})
        versions.append(
            ProfileVersionOut(
                version=v.version,
                board_revision=v.board_revision,
                profile_hash=v.profile_hash,
                created_at=v.created_at,
                kind=ev.get("kind", "feedback"),
                action=ev.get("action"),
                mode=ev.get("mode"),
                mode_source=ev.get("mode_source"),
                generation_id=ev.get("generation_id"),
                image_index=ev.get("image_index"),
                image_sha256=ev.get("image_sha256"),
                dwell_seconds=ev.get("dwell_seconds"),
                replayed=ev.get("replayed"),
            )
        )
    return ProfileHistoryOut(
        board_id=board.id, board_revision=board.revision, profile_hash=board.profile_hash, versions=versions
    )
