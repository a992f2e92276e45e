"""``POST /v1/feedback``: a board's taste profile learns from reactions to images; and its version history
(``GET /v1/boards/{id}/profile/history``). See :mod:`..domain.feedback`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deps import BoardsRead, BoardsWrite, IdempotencyKey, ServicesDep, SessionDep
from ..domain import feedback as domain
from ..domain.common import Caller, Replay
from ..schemas import FeedbackIn, FeedbackOut, ProfileHistoryOut
from .boards import BoardId
from .common import AUTH_ERRORS, errors, form_properties, replayed
from .uploads import image_body_schema, read_image_body

router = APIRouter(tags=["taste"], responses=AUTH_ERRORS)

FEEDBACK_BODY = image_body_schema(
    "FeedbackIn",
    form_properties(FeedbackIn, files={"image": {"type": "string", "format": "binary", "description": "the image"}}),
    ["action"],
    one_of=["generation_id", "image"],
    needs={"image": ["board_id"]},
)


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
    body, upload = await read_image_body(request, FeedbackIn, max_bytes=svc.settings.max_image_bytes)
    done = await domain.react(svc, Caller.of(request, principal), body, upload, idempotency_key)
    return replayed(done) if isinstance(done, Replay) else JSONResponse(done)


@router.get(
    "/v1/boards/{board_id}/profile/history",
    response_model=ProfileHistoryOut,
    summary="How the board's taste profile changed with feedback: one entry per version",
    responses=errors(404),
)
def profile_history(
    request: Request, svc: ServicesDep, session: SessionDep, principal: BoardsRead, board_id: BoardId
) -> ProfileHistoryOut:
    return domain.profile_history(svc, session, Caller.of(request, principal), board_id)
