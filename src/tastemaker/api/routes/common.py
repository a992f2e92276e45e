"""Shared pieces of the routers: body parsing, documented error responses, replayed responses."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ... import safejson
from ...errors import RequestError
from ..domain.common import Replay
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
        409: "Conflict (idempotency key in use, result not ready, generation already finished)",
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


def replayed(replay: Replay) -> JSONResponse:
    """The response an ``Idempotency-Key`` got the first time, sent again and marked as a replay."""
    return JSONResponse(replay.body, status_code=replay.status, headers={"Idempotent-Replayed": "true"})
