"""``POST /v1/records``: register an output rendered on the person's device (see :mod:`..domain.records`).

Scope ``register`` and a per-minute bucket of its own (``records_per_minute``). The body is the output image (a
multipart file part named ``image``, or base64 in JSON) and what the device says it was made with; never a selfie.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...errors import RequestError
from ..deps import IdempotencyKey, RecordsAccount, ServicesDep
from ..domain.common import Caller, Replay
from ..domain.records import register
from ..schemas import RecordCreate, RecordRegisteredOut
from .common import AUTH_ERRORS, errors, form_properties, replayed
from .uploads import image_body_schema, read_image_body

router = APIRouter(tags=["provenance"], responses=AUTH_ERRORS)

RECORD_BODY = image_body_schema(
    "RecordCreate",
    form_properties(RecordCreate, files={"image": {"type": "string", "format": "binary",
                                                   "description": "the output image rendered on your device"}}),
    ["image", "profile_hash", "engine_version", "seed"],
)


@router.post(
    "/v1/records",
    status_code=201,
    response_model=RecordRegisteredOut,
    summary="Register an output rendered on your device: this service marks, signs and logs it (rendered_on: device)",
    description=(
        "On-device mode: the selfie and the identity stay on the person's machine, which renders with its own engine "
        "from the board's taste (`POST /v1/styleembed`) and sends here only the outputs it keeps. Each gets this "
        "deployment's invisible watermark, a signed C2PA manifest and a transparency-log entry, so it verifies like "
        "a server-made output; its record and manifest say `rendered_on: device` (this service registered the "
        "picture, it did not watch it being made: engine, seed, prompt and profile hash are as reported). The "
        "answer carries the marked image (base64) to keep and share. An image that already carries this service's "
        "mark is refused (409 `already_registered`). Needs the `register` scope; its own per-minute limit. "
        "`Idempotency-Key` is honoured."
    ),
    responses=errors(400, 404, 409, 413, 415),
    openapi_extra=RECORD_BODY,
)
async def create_record(
    request: Request, svc: ServicesDep, principal: RecordsAccount, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    body, image = await read_image_body(request, RecordCreate, max_bytes=svc.settings.max_image_bytes)
    if image is None:  # pragma: no cover - RecordCreate requires it
        raise RequestError("image: missing")
    done = await register(svc, Caller.of(request, principal), body, image, idempotency_key)
    if isinstance(done, Replay):
        return replayed(done)
    return JSONResponse(done, status_code=201)
