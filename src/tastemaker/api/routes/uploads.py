"""One image in a request body, JSON (base64) or multipart (a file part): ``/v1/generations``, ``/v1/verify``
and ``/v1/feedback``.

Why not FastAPI's ``UploadFile`` / ``Form`` parameters: these endpoints take the same fields as JSON *or* as
multipart on one path (FastAPI's form parameters make a route form-only), and FastAPI's form parsing spools a
file part over 1 MB to a temporary file — a selfie must never touch the disk. So the body is parsed here, in
memory (the app caps the whole body), and :func:`image_body_schema` publishes both forms from the body model.
An image over the per-image cap is a 413 with the core's ``image_too_large`` code before anything decodes it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ...errors import FilePartExpectedError, ImageTooLargeError, RequestError, UnsupportedMediaTypeError
from .common import is_json, json_body, media_type, validate_body

M = TypeVar("M", bound=BaseModel)
#: parses a form field that carries JSON text (or a JSON file part): (the text or bytes, what to call it)
JsonField = Callable[[str | bytes, str], Any]


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser, but file parts stay in memory: a selfie must never touch the disk.

    The request body is capped by the app (``max_request_bytes``), which bounds the memory used.
    """

    spool_max_size = 1 << 62


def _check_size(data: bytes, field: str, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{field}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    return data


async def read_image_body(
    request: Request,
    model: type[M],
    *,
    field: str = "image",
    max_bytes: int,
    json_fields: Mapping[str, JsonField] | None = None,
    name_field: str | None = None,
    missing: str | None = None,
    max_fields: int = 20,
) -> tuple[M, bytes | None]:
    """Parse the body into ``model`` and the image bytes (None when the request has no image).

    JSON: ``field`` holds the image base64-encoded. Multipart: ``field`` is a file part; every other part is
    a form field of ``model`` (unknown fields are refused, as the JSON form's ``extra="forbid"`` does).
    ``json_fields`` are form fields holding JSON text, as a text or a file part, each with its parser;
    ``name_field`` takes the image part's file name unless the form gives it; ``missing`` is the message for a
    form without the file part (otherwise the model says what is missing).
    """
    ctype = media_type(request)
    if is_json(ctype):
        body = validate_body(model, await json_body(request))
        encoded = getattr(body, field, None)
        if encoded is None:
            return body, None
        if len(encoded) > max_bytes * 4 // 3 + 4:
            raise ImageTooLargeError(f"{field}: over the {max_bytes / 1e6:.0f} MB limit")
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{field}: not valid base64 (send the image file's bytes, base64-encoded)") from None
        return body, _check_size(decoded, field, max_bytes)
    if ctype == "multipart/form-data":
        parsers = dict(json_fields or {})
        try:
            parser = InMemoryMultiPartParser(request.headers, request.stream(), max_files=1 + len(parsers),
                                             max_fields=max_fields)
            form = await parser.parse()
        except MultiPartException as exc:
            raise RequestError(f"malformed multipart body: {exc.message}") from None
        fields: dict[str, Any] = {}
        image: bytes | None = None
        names = set(model.model_fields) - {field}
        for key, value in form.multi_items():
            if key in parsers:
                data = await value.read() if isinstance(value, UploadFile) else value
                fields[key] = parsers[key](data, f"{key} (the uploaded file)" if isinstance(value, UploadFile) else key)
            elif isinstance(value, UploadFile):
                if key != field:
                    raise RequestError(f"unexpected file part {key!r}; the {field} goes in a part named {field!r}")
                image = _check_size(await value.read(max_bytes + 1), field, max_bytes)
                fields[field] = "(file)"
                if name_field is not None:
                    fields.setdefault(name_field, value.filename or field)
            elif key == field:
                raise FilePartExpectedError(field)
            elif key not in names:
                raise RequestError(f"unknown form field {key!r}")
            elif value != "":
                fields[key] = value
        if image is None and missing is not None:
            raise RequestError(missing)
        return validate_body(model, fields), image
    raise UnsupportedMediaTypeError(
        f"send application/json (the {field} base64 in {field!r}) or multipart/form-data (the {field} as a file "
        f"part named {field!r}), got {ctype or 'no content type'!r}"
    )


def image_body_schema(
    json_ref: str,
    form: dict[str, Any],
    required: list[str],
    one_of: list[str] | None = None,
    needs: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body with :func:`read_image_body`: the JSON model, or the
    multipart form (its properties from the model: :func:`~.common.form_properties`).

    ``one_of``: form fields exactly one of which must be sent; ``needs``: fields that need others with them.
    (No ``not`` / ``if``: schema tools cannot judge those over file parts.)
    """
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": form, "additionalProperties": False}
    if one_of:
        schema["oneOf"] = [{"required": [name]} for name in one_of]
    if needs:
        schema["dependentRequired"] = needs
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_ref}"}},
                "multipart/form-data": {"schema": schema},
            },
        }
    }
