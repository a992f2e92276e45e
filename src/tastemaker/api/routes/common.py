"""Shared pieces of the routers: documented error responses and account-scoped loading."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from ... import safejson
from ...audit import REQUEST_DENIED
from ...errors import NotFoundError, RequestError
from ...store import repo
from ...store.models import Board, Job
from ..deps import Principal, Services, request_id
from ..schemas import ErrorBody

M = TypeVar("M", bound=BaseModel)


def media_type(request: Request) -> str:
    """The request's media type, lower-case, without parameters ("" when there is no Content-Type)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(ctype: str) -> bool:
    return ctype == "application/json" or ctype.endswith("+json")


async def json_body(request: Request) -> Any:
    """The body parsed as JSON: 422 when it is not JSON, 400 ``json_too_deep`` / ``json_number_too_large``
    when it is nested or numbered beyond what any Tastemaker request needs (see :mod:`tastemaker.safejson`)."""
    return safejson.loads(await request.body(), what="the body")


def validate_body(model: type[M], data: Any) -> M:
    """Validate a body we parsed ourselves (multipart fields or JSON), as a 422 naming the first problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:6]:
            where = ".".join(str(p) for p in err["loc"]) or "body"
            parts.append(f"{where}: {err['msg']}")
        raise RequestError("; ".join(parts)) from None


def form_properties(
    model: type[BaseModel], *, files: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The multipart form's properties for a body model: the model's own JSON Schema per field (so the JSON and
    multipart forms of a request cannot drift apart), without ``null`` (a form field is left out instead), with
    ``files`` as file parts and ``extra`` replacing what differs in a form (JSON text in a field)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    props: dict[str, Any] = {}
    for name, sub in schema["properties"].items():
        sub = {k: v for k, v in sub.items() if k not in ("title", "default")}
        options = [o for o in sub.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            sub = {**options[0], **sub}
        elif options:
            sub["anyOf"] = options
        props[name] = sub
    props.update(files)
    props.update(extra or {})
    return props


def errors(*codes: int, explicit_json: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all with the one error body.

    ``explicit_json`` for routes whose success is not JSON (server-sent events): their errors still are.
    """
    text = {
        400: "Bad request: consent missing, a text part where a file goes, JSON nested too deep or with an "
        "over-long number",
        401: "Missing, malformed, unknown or revoked API key",
        404: "Not found",
        409: "Conflict (idempotency key in use, result not ready)",
        413: "Upload too large",
        415: "Unsupported media type",
        422: "Invalid input",
        429: "Rate limit or quota exceeded",
        503: "Queue full or rate limiter unavailable",
    }
    json_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    extra = {"content": json_body} if explicit_json else {}
    return {c: {"model": ErrorBody, "description": text.get(c, "Error"), **extra} for c in codes}


AUTH_ERRORS = errors(401, 422, 429, 503)


def _foreign(
    svc: Services,
    s: Session,
    request: Request,
    principal: Principal,
    kind: str,
    model: type[Board] | type[Job],
    object_id: str,
    exc: NotFoundError,
) -> NotFoundError:
    """A 404 is a 404; but when the id exists under another account, the probe goes in the audit log."""
    owner = repo.owner_of(s, model, object_id)
    if owner is not None and owner != principal.account_id:
        with svc.store.session() as s2:
            svc.audit.record(
                s2,
                REQUEST_DENIED,
                account_id=principal.account_id,
                objects={kind: object_id},
                request_id=request_id(request),
                outcome="foreign_object",
                detail={"method": request.method, "path": request.url.path[:200]},
            )
    return exc


def owned_board(
    svc: Services, s: Session, request: Request, principal: Principal, board_id: str, *, with_pins: bool = False
) -> Board:
    try:
        return repo.get_board(s, principal.account_id, board_id, with_pins=with_pins)
    except NotFoundError as exc:
        raise _foreign(svc, s, request, principal, "board", Board, board_id, exc) from None


def owned_job(svc: Services, s: Session, request: Request, principal: Principal, job_id: str) -> Job:
    try:
        return repo.get_job(s, principal.account_id, job_id)
    except NotFoundError as exc:
        raise _foreign(svc, s, request, principal, "generation", Job, job_id, exc) from None
