"""Boards: upload (multipart images + pins metadata), read, delete, add pins (see :mod:`..domain.boards`).

The uploads are declared ``UploadFile`` parameters, so FastAPI publishes the multipart schema itself (board
images are not selfies: a large one may be spooled to a temporary file while the request is read).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from ...errors import UnsupportedMediaTypeError
from ..deps import BoardsRead, BoardsWrite, IdempotencyKey, Principal, ServicesDep, SessionDep
from ..domain import boards
from ..domain.common import Caller, Replay, owned_board
from ..schemas import BoardOut, PinsAdded
from .common import AUTH_ERRORS, errors, media_type, replayed

router = APIRouter(prefix="/v1/boards", tags=["boards"], responses=AUTH_ERRORS)

BoardId = Annotated[str, PathParam(min_length=1, max_length=64, description="a board id (brd_...)")]
PINS_HELP = (
    "Engagement per image, as a JSON array of objects matched to the uploads by file name: "
    '`[{"image": "a.jpg", "saves": 3, "clicks": 1, "dwell_seconds": 12.5, "pinned_at": "2024-05-01T12:00:00Z", '
    '"title": "...", "tags": ["film", "grain"], "source": "..."}]`. Images without an entry count with no '
    "engagement; entries naming no uploaded file are reported in `skipped`."
)
#: The pins field is JSON text: an array of PinIn (published in the components; `null` means no engagement).
PINS_SCHEMA: dict[str, Any] = {
    "contentMediaType": "application/json",
    "contentSchema": {"anyOf": [{"type": "array", "items": {"$ref": "#/components/schemas/PinIn"}}, {"type": "null"}]},
}


def require_multipart(request: Request, principal: BoardsWrite) -> Principal:
    """Uploads are multipart/form-data; say so with 415 rather than a confusing 422 (after auth: 401 first)."""
    ctype = media_type(request)
    if ctype != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"this endpoint takes multipart/form-data (image files + form fields), got {ctype or 'no content type'!r}"
        )
    return principal


UploadAccount = Annotated[Principal, Depends(require_multipart)]


@router.post(
    "",
    status_code=201,
    response_model=BoardOut,
    summary="Create a board from uploaded images and their engagement",
    responses=errors(400, 413, 415),
)
def create_board(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: UploadAccount,
    name: Annotated[str, Form(min_length=1, max_length=200, description="the board's name")],
    images: Annotated[
        list[UploadFile], File(min_length=1, description="the pinned images (JPEG, PNG, WebP, GIF, TIFF, BMP)")
    ],
    pins: Annotated[str | None, Form(description=PINS_HELP, json_schema_extra=PINS_SCHEMA)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    meta = boards.parse_pins(pins)
    up = boards.read_uploads(svc, images, meta, f"board {name.strip()!r}")
    done = boards.create_board(svc, session, Caller.of(request, principal), name=name, up=up, key=idempotency_key)
    if isinstance(done, Replay):
        return replayed(done)
    location = str(request.url_for("get_board", board_id=done.board_id))
    return JSONResponse(done.body, status_code=201, headers={"Location": location})


@router.get("/{board_id}", response_model=BoardOut, summary="A board and its pins", responses=errors(404))
def get_board(
    request: Request, svc: ServicesDep, session: SessionDep, principal: BoardsRead, board_id: BoardId
) -> BoardOut:
    return BoardOut.of(owned_board(svc, session, Caller.of(request, principal), board_id, with_pins=True))


@router.delete(
    "/{board_id}",
    status_code=204,
    summary="Delete a board, its pins, its profile (and versions, and privacy ledger) and their images",
    responses=errors(404),
)
def delete_board(
    request: Request, svc: ServicesDep, session: SessionDep, principal: BoardsWrite, board_id: BoardId
) -> Response:
    boards.delete_board(svc, session, Caller.of(request, principal), board_id)
    return Response(status_code=204)


@router.post(
    "/{board_id}/pins",
    response_model=PinsAdded,
    summary="Add pins to a board (its profile is rebuilt on next use)",
    responses=errors(400, 404, 413, 415),
)
def add_pins(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: UploadAccount,
    board_id: BoardId,
    images: Annotated[list[UploadFile], File(min_length=1, description="more pinned images")],
    pins: Annotated[str | None, Form(description=PINS_HELP, json_schema_extra=PINS_SCHEMA)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    caller = Caller.of(request, principal)
    board = owned_board(svc, session, caller, board_id, with_pins=True)
    meta = boards.parse_pins(pins)
    assert board.pins is not None
    up = boards.read_uploads(svc, images, meta, "this upload", existing=len(board.pins))
    done = boards.add_pins(svc, session, caller, board, up=up, key=idempotency_key)
    return replayed(done) if isinstance(done, Replay) else JSONResponse(done.body)
