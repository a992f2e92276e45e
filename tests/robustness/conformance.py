"""Schema conformance with every schemathesis check, for the tests and ``bench/robustness.py``.

Schemathesis' ``positive_data_acceptance`` (ST202) expects a request that matches the published schema to be
accepted. Some of what the API checks no JSON Schema can say: that bytes are a decodable image, that a selfie
shows one face, that a form field's JSON text is a TasteProfile or an array of pins (``contentSchema`` is an
annotation generators do not follow). :func:`positive_data_accepted` is the same check, except that a refusal
whose error ``code`` is one of :data:`CONTENT_CODES` counts as accepted — and every other refusal of a
schema-valid request is a mismatch between the spec and the server. Schemathesis also cannot judge file parts
against ``oneOf`` (it passes anything holding binary data), so a multipart case is validated here first.

As a schemathesis hook module (``SCHEMATHESIS_HOOKS=tests.robustness.conformance st run --checks all
--exclude-checks positive_data_acceptance ...``) it registers the check for the command line too.
"""

from __future__ import annotations

import base64
from typing import Any

import schemathesis

#: Refusals for content no schema can describe: error code -> what the request got wrong.
CONTENT_CODES: dict[str, str] = {
    "image_unreadable": "the bytes are not a decodable image",
    "unsupported_image": "an image format the server does not decode",
    "image_too_large": "an image over the per-image byte limit",
    "image_too_many_pixels": "an image over the pixel limit (a decompression bomb)",
    "board_empty": "none of the uploads is a usable image",
    "invalid_board": "the pins field's JSON is not an array of pin objects (or names a file twice)",
    "invalid_profile": "the profile is not a TasteProfile",
    "no_face": "the selfie shows no face",
    "multiple_faces": "the selfie shows several faces of similar size",
    "face_too_small": "the selfie's face is too small",
    "identity_only_unsupported": "an identity without a selfie, for a deployment whose engine redraws a selfie (which "
    "engine a server runs is not in its schema)",
    "invalid_identity": "the identity field's JSON text is not an identity embedding (multipart: a string of JSON)",
    "image_too_small_to_mark": "an output below the watermark's minimum size (POST /v1/records)",
    "incomplete_tree_head": "since_size without since_root or the other way round: OpenAPI has no rule across "
    "query parameters",
    "search_query_invalid": "neither or both of text and board_id (or pin_id with mode): OpenAPI has no rule "
    "across query parameters",
}
#: Statuses schemathesis' own check accepts for schema-valid data (credentials, missing objects, limits).
ACCEPTED_STATUSES = frozenset({401, 403, 404, 409, 429})


def _as_instance(value: Any) -> Any:
    """A multipart body as JSON Schema sees it: file parts become strings."""
    if isinstance(value, dict):
        return {k: _as_instance(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_instance(v) for v in value]
    if isinstance(value, bytes | bytearray) or type(value).__name__ == "Binary":
        return base64.b64encode(bytes(getattr(value, "data", value))).decode()
    return value


def multipart_breaks_schema(case: Any) -> bool:
    """True when a multipart case does not match its own schema (schemathesis passes binary data unjudged)."""
    import jsonschema

    if case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return False
    raw = case.operation.schema.raw_schema
    content = (case.operation.definition.raw.get("requestBody") or {}).get("content", {})
    schema = (content.get("multipart/form-data") or {}).get("schema")
    if schema is None:
        return False
    root = {**schema, "components": raw.get("components", {})}
    validator = jsonschema.Draft202012Validator(root)
    return not validator.is_valid(_as_instance(case.body))


@schemathesis.check
def positive_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """ST202 that knows :data:`CONTENT_CODES`: a schema-valid request is accepted, or refused for its content."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status < 400 or status >= 500 or status in ACCEPTED_STATUSES:
        return None  # accepted, or someone else's check (not_a_server_error)
    try:
        body = response.json()
    except Exception:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    if code in CONTENT_CODES or multipart_breaks_schema(case):
        return None
    raise AssertionError(
        f"a request that matches the published schema was refused: {status} {code}: "
        f"{(body or {}).get('message', response.text[:300])}"
    )


__all__ = ["ACCEPTED_STATUSES", "CONTENT_CODES", "multipart_breaks_schema", "positive_data_accepted"]
