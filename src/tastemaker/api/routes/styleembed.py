"""``POST /v1/styleembed``: a board's taste profile — modes, weights, look summary, vectors.

Rate-limited by its own, stricter bucket (bulk taste extraction is the scraping risk) and audited on
every call. A cached profile is returned as the stored body, untouched (header ``X-Tastemaker-Cache``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ... import safejson
from ...audit import STYLEEMBED
from ...errors import MalformedBodyError, UnsupportedMediaTypeError
from ...store import repo
from ...store.models import utcnow
from ..deps import Idempotency, IdempotencyKey, ServicesDep, SessionDep, StyleEmbedAccount, fingerprint, request_id
from ..profiles import ensure_styleembed
from ..schemas import StyleEmbedIn, StyleEmbedOut
from .common import AUTH_ERRORS, errors, is_json, json_body, media_type, owned_board, validate_body

router = APIRouter(tags=["taste"], responses=AUTH_ERRORS)


async def styleembed_body(request: Request, principal: StyleEmbedAccount) -> StyleEmbedIn:
    """The JSON body, read after authentication and through the bounded parser (nesting, numbers)."""
    ctype = media_type(request)
    if not is_json(ctype):
        raise UnsupportedMediaTypeError(f"send application/json, got {ctype or 'no content type'!r}")
    try:
        data = await json_body(request)
    except safejson.JSONSyntaxError as exc:
        raise MalformedBodyError(exc.message) from None
    return validate_body(StyleEmbedIn, data)


STYLEEMBED_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StyleEmbedIn"}}},
    }
}


@router.post(
    "/v1/styleembed",
    response_model=StyleEmbedOut,
    summary="The taste profile of a board (cached per board revision)",
    responses=errors(400, 404, 409, 415),
    openapi_extra=STYLEEMBED_BODY,
)
def styleembed(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: StyleEmbedAccount,
    body: Annotated[StyleEmbedIn, Depends(styleembed_body)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    idem = Idempotency(svc, principal, idempotency_key, "POST /v1/styleembed")
    replayed = idem.claim(session, fingerprint("POST /v1/styleembed", body.model_dump())) is not None
    try:
        board = owned_board(svc, session, request, principal, body.board_id)  # pins load only on a miss
        cached = ensure_styleembed(svc, session, board)
        if not replayed:  # a replay returns the profile again but is not a second extraction
            repo.count_styleembed(session, principal.account_id, repo.period_of(utcnow()))
            svc.audit.append(
                session,
                STYLEEMBED,
                account_id=principal.account_id,
                objects={"board": board.id},
                request_id=request_id(request),
                detail={"profile_sha256": cached.profile_hash, "cache": "hit" if cached.cache_hit else "miss"},
            )
            idem.complete(session, status=200, body=None, resource_id=board.id)
        session.commit()
    except BaseException:
        session.rollback()
        idem.abandon()
        raise
    headers = {"X-Tastemaker-Cache": "hit" if cached.cache_hit else "miss"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(content=cached.styleembed_json, media_type="application/json", headers=headers)
