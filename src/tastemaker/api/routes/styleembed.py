"""``POST /v1/styleembed``: a board's taste profile — modes, weights, look summary, vectors.

Rate-limited by its own, stricter bucket (bulk taste extraction is the scraping risk) and audited on
every call. A cached profile is returned as the stored body, untouched (header ``X-Tastemaker-Cache``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ... import safejson
from ...errors import MalformedBodyError, UnsupportedMediaTypeError
from ..deps import IdempotencyKey, ServicesDep, StyleEmbedAccount
from ..domain.common import Caller
from ..domain.profiles import styleembed as styleembed_release
from ..schemas import StyleEmbedIn, StyleEmbedOut
from .common import AUTH_ERRORS, errors, is_json, json_body, media_type, validate_body

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
    principal: StyleEmbedAccount,
    body: Annotated[StyleEmbedIn, Depends(styleembed_body)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # the session is opened here, in the route's thread, not by a dependency: FastAPI would enter and leave a
    # generator dependency in two more thread-pool hops, on the API's busiest endpoint
    with svc.store.session() as session:
        cached, replay = styleembed_release(svc, session, Caller.of(request, principal), body.board_id,
                                            fields=body.model_dump(), key=idempotency_key)
    headers = {"X-Tastemaker-Cache": "hit" if cached.cache_hit else "miss"}
    if replay:
        headers["Idempotent-Replayed"] = "true"
    return Response(content=cached.styleembed_json, media_type="application/json", headers=headers)
