"""One image in a request, JSON (base64) or multipart (a file part): ``/v1/verify`` and ``/v1/feedback``.

Parts are parsed in memory (the app caps the whole body); an image over the per-image cap is a 413 with the
core's ``image_too_large`` code before anything decodes it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from ...errors import FilePartExpectedError, ImageTooLargeError, RequestError, UnsupportedMediaTypeError
from .common import is_json, json_body, media_type, validate_body
from .generations import _InMemoryParser

M = TypeVar("M", bound=BaseModel)


def _check_size(data: bytes, field: str, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{field}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    return data


async def read_image_body(
    request: Request, model: type[M], *, field: str = "image", max_bytes: int
) -> tuple[M, bytes | None]:
    """Parse the body into ``model`` and the image bytes (None when the request has no image).

    JSON: ``field`` holds the image base64-encoded. Multipart: ``field`` is a file part; every other part is
    a form field of ``model`` (unknown fields are refused, as the JSON form's ``extra="forbid"`` does).
    """
    ctype = media_type(request)
    if is_json(ctype):
        data = await json_body(request)
        body = validate_body(model, data)
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
        try:
            form = await _InMemoryParser(request.headers, request.stream(), max_files=1, max_fields=20).parse()
        except MultiPartException as exc:
            raise RequestError(f"malformed multipart body: {exc.message}") from None
        fields: dict[str, Any] = {}
        image: bytes | None = None
        names = set(model.model_fields) - {field}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != field:
                    raise RequestError(f"unexpected file part {key!r}; the image goes in a part named {field!r}")
                image = _check_size(await value.read(max_bytes + 1), field, max_bytes)
                fields[field] = "(file)"
            elif key == field:
                raise FilePartExpectedError(field)
            elif key not in names:
                raise RequestError(f"unknown form field {key!r}")
            elif value != "":
                fields[key] = value
        return validate_body(model, fields), image
    raise UnsupportedMediaTypeError(
        f"send application/json (the image base64 in {field!r}) or multipart/form-data (the image as a file part "
        f"named {field!r}), got {ctype or 'no content type'!r}"
    )


def image_body_schema(
    json_ref: str,
    form: dict[str, Any],
    required: list[str],
    one_of: list[str] | None = None,
    needs: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself: the JSON model, or the multipart form.

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
