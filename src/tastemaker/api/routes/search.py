"""``GET /v1/search``: the server's search index by text, by a stored board (one query per taste mode, merged by
mode weight with a diversity step) or by one of its pins — each result with its score and why.

It needs a key with ``boards:read`` (a board query reads the board) and counts in the account's ``requests``
bucket like every call (:class:`~tastemaker.api.deps.AuthGate`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..deps import BoardsRead, ServicesDep, SessionDep
from ..domain.common import Caller
from ..domain.search import IndexHolder, search
from .common import AUTH_ERRORS, errors

router = APIRouter(tags=["search"], responses=AUTH_ERRORS)


class ReasonOut(BaseModel):
    mode: dict[str, str | float] | None = Field(None, description="the taste mode that found it: id, name, weight")
    palette: list[str] = Field(description="the item's colours close to the query's (#rrggbb)")
    words: list[str] = Field(description="words the item shares with the query or the mode")
    style_similarity: float | None = None
    text_similarity: float | None = None
    palette_similarity: float | None = None


class HitOut(BaseModel):
    rank: int
    key: str = Field(description="pin:<content hash> or product:<catalogue id>")
    kind: Literal["pin", "product"]
    score: float
    title: str
    tags: list[str]
    file: str
    board: str
    url: str
    price: float | None
    currency: str
    brand: str
    palette: list[str]
    why: ReasonOut


class SearchOut(BaseModel):
    query: dict[str, str | int | None]
    index: dict[str, str | int]
    results: list[HitOut]


def _holder(request: Request) -> IndexHolder:
    holder: IndexHolder | None = getattr(request.app.state, "search_index", None)
    if holder is None:
        holder = request.app.state.search_index = IndexHolder()
    return holder


@router.get(
    "/v1/search",
    response_model=SearchOut,
    summary="Nearest items by text, by a board's taste (multi-mode) or by one of its pins, with why",
    responses=errors(404),
)
def search_route(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: BoardsRead,
    text: Annotated[str | None, Query(min_length=1, max_length=500, description="words to match titles and tags")]
    = None,
    board_id: Annotated[str | None, Query(min_length=1, max_length=64, description="more like this board")] = None,
    pin_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$", description="with board_id: like this pin")]
    = None,
    mode: Annotated[str | None, Query(pattern=r"^m[0-9]{1,2}$", description="with board_id: only this mode")]
    = None,
    k: Annotated[int, Query(ge=1, le=100, description="how many results")] = 20,
    kind: Annotated[Literal["pin", "product"] | None, Query(description="only pins or only products")] = None,
) -> SearchOut:
    """Exactly one of ``text`` and ``board_id``; ``pin_id`` or ``mode`` narrow a board query."""
    body = search(svc, session, Caller.of(request, principal), _holder(request), text=text, board_id=board_id,
                  pin_id=pin_id, mode=mode, k=k, kind=kind)
    return SearchOut.model_validate(body)
