"""Generations: ``POST /v1/generations`` (202 + job), status, server-sent events, images, cancel.

A request is checked completely before it is admitted (:mod:`..domain.generations`). The selfie is parsed in
memory (:func:`.uploads.read_image_body`: multipart parts never spill to temporary files), handed to the job as
bytes, and never stored: the job keeps only its SHA-256. An engine that draws from an identity alone may be sent
the embedding made on the person's device (``identity``) instead of the selfie.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import TypeAdapter, ValidationError

from ... import safejson
from ...errors import InvalidIdentityError, NotFoundError, ProfileError, RequestError
from ...jobs import RETRYABLE
from ...store.records import TERMINAL, Job, JobImage
from ..deps import GenerateAccount, IdempotencyKey, Services, ServicesDep
from ..domain.common import Caller, owned_job
from ..domain.feedback import output_image
from ..domain.generations import admit, cancel, too_many_jobs
from ..schemas import GenerationCreate, GenerationOut, IdentityIn
from .common import AUTH_ERRORS, errors, form_properties
from .uploads import image_body_schema, read_image_body

router = APIRouter(prefix="/v1/generations", tags=["generations"], responses=AUTH_ERRORS)

JobId = Annotated[str, PathParam(min_length=1, max_length=64, description="a generation id (gen_...)")]
PreferHeader = Annotated[
    str | None,
    Header(max_length=200, description="`wait=N` (N <= 60): answer when the job finishes, if within N seconds"),
]
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?:$|[,;\s])", re.IGNORECASE)


def prefer_wait(value: str | None, cap: float) -> float:
    """Seconds to wait from ``Prefer: wait=N`` (RFC 7240); malformed preferences are ignored, as the RFC says."""
    if not value:
        return 0.0
    m = _WAIT.search(value)
    return min(float(m.group(1)), cap) if m else 0.0


def _profile_field(data: str | bytes, what: str) -> Any:
    """The multipart ``profile`` field: TasteProfile JSON (not JSON at all is 422 ``invalid_profile``; nested
    too deep or with an over-long number, 400 ``json_*``)."""
    try:
        return safejson.loads(data, what=what)
    except safejson.JSONSyntaxError as exc:
        raise ProfileError(f"{exc.message}; send a TasteProfile (the JSON `tastemaker profile build` writes)") from None


_IDENTITY = TypeAdapter(IdentityIn)


def _identity_field(data: str | bytes, what: str) -> Any:
    """The multipart ``identity`` field: JSON text (the 128 numbers, or an identity file's object). Its content is
    a rule the form's schema (a string of JSON) cannot state, so breaking it is 422 ``invalid_identity``."""
    hint = "send the identity as JSON: its 128 numbers or the file `tastemaker identity` writes"
    try:
        value = safejson.loads(data, what=what)
    except safejson.JSONSyntaxError as exc:
        raise InvalidIdentityError(f"{exc.message}; {hint}") from None
    try:
        return _IDENTITY.validate_python(value)
    except ValidationError:
        raise InvalidIdentityError(f"{what}: {type(value).__name__} is not an identity; {hint}") from None


async def read_request(request: Request, max_bytes: int) -> tuple[GenerationCreate, bytes | None]:
    """JSON (selfie in base64) or multipart (selfie as a file part; ``profile`` and ``identity`` as JSON text or a
    file). The selfie is None for an identity-only request."""
    body, selfie = await read_image_body(
        request, GenerationCreate, field="selfie", max_bytes=max_bytes,
        json_fields={"profile": _profile_field, "identity": _identity_field}, name_field="selfie_name",
        max_fields=40,
    )
    if selfie is None and body.identity is None:
        raise RequestError(
            "selfie: missing; send the photo as a file part named 'selfie' (or, for an engine that draws from an "
            "identity alone, the identity embedding made on your device as 'identity')"
        )
    return body, selfie


#: what a generation shows of its job as stored
_JOB_FIELDS = ("id", "status", "progress", "board_id", "profile_hash", "request", "created_at", "started_at",
               "finished_at")
#: what an output image shows of its provenance record
_RECORD_FIELDS = ("seed", "mode", "identity_distance", "style_score", "colour", "medium", "scene", "size", "alt_text",
                  "plugins", "subject", "fidelity")


def job_doc(request: Request, job: Job) -> dict[str, Any]:
    """A job as GenerationOut JSON, with absolute URLs for its images and events."""
    error = None
    if job.error_code is not None:
        error = {"code": job.error_code, "message": job.error_message or "", "retryable": job.error_code in RETRYABLE}
    images = []
    for im in job.images:
        rec = im.record or {}
        images.append(
            {
                "index": im.k,
                "url": str(request.url_for("generation_image", generation_id=job.id, k=im.k)),
                "media_type": im.media_type,
                "width": im.width,
                "height": im.height,
                "bytes": im.byte_size,
                "sha256": im.sha256,
                **{k: rec.get(k) for k in _RECORD_FIELDS},
                "clip": _clip_doc(request, job, im.k, rec.get("clip")),
            }
        )
    doc = GenerationOut(
        **{name: getattr(job, name) for name in _JOB_FIELDS},
        error=error,
        images=images,
        links={
            "self": str(request.url_for("get_generation", generation_id=job.id)),
            "events": str(request.url_for("generation_events", generation_id=job.id)),
        },
    )
    return doc.model_dump(mode="json")


def _clip_doc(request: Request, job: Job, k: int, clip: Any) -> dict[str, Any] | None:
    """What an image's answer shows of its clip (``clip=SECONDS``): where to fetch it, and what it is."""
    if not isinstance(clip, dict):
        return None
    shown = ("media_type", "format", "seconds", "fps", "frames", "width", "height", "bytes", "sha256", "record_id",
             "camera", "c2pa")
    return {"url": str(request.url_for("generation_clip", generation_id=job.id, k=k)),
            **{name: clip.get(name) for name in shown}}


def _load_doc(svc: Services, request: Request, caller: Caller, job_id: str) -> dict[str, Any]:
    with svc.store.session() as s:
        return job_doc(request, owned_job(svc, s, caller, job_id))


async def respond(
    request: Request, svc: Services, caller: Caller, job_id: str, wait_s: float, *, replayed: bool = False
) -> JSONResponse:
    """The job now — or, with ``Prefer: wait``, as soon as it finishes within the wait. 200 if finished, else 202."""
    headers = {"Location": str(request.url_for("get_generation", generation_id=job_id))}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    doc = await run_in_threadpool(_load_doc, svc, request, caller, job_id)
    if wait_s > 0:
        headers["Preference-Applied"] = f"wait={int(wait_s)}"
        loop_deadline = datetime.now(UTC).timestamp() + wait_s
        with svc.runner.watch(job_id) as w:
            while doc["status"] not in TERMINAL:
                remaining = loop_deadline - datetime.now(UTC).timestamp()
                if remaining <= 0:
                    break
                await w.wait(min(remaining, 5.0))
                doc = await run_in_threadpool(_load_doc, svc, request, caller, job_id)
    status = 200 if doc["status"] in TERMINAL else 202
    return JSONResponse(doc, status_code=status, headers=headers)


GENERATION_BODY = image_body_schema(
    "GenerationCreate",
    form_properties(
        GenerationCreate,
        files={"selfie": {"type": "string", "format": "binary", "description": "the selfie image"}},
        extra={"profile": {"type": "string", "contentMediaType": "application/json",
                           "description": "a TasteProfile, as JSON text"},
               "identity": {"type": "string", "contentMediaType": "application/json",
                            "description": "instead of a selfie (engines that draw from an identity alone): the "
                            "identity embedding made on your device, as JSON text"}},
    ),
    ["consent"],
    one_of=["board_id", "profile"],  # exactly one of them
)
#: ... and exactly one of a selfie or an identity
GENERATION_BODY["requestBody"]["content"]["multipart/form-data"]["schema"]["allOf"] = [
    {"oneOf": [{"required": ["selfie"]}, {"required": ["identity"]}]}
]


@router.post(
    "",
    status_code=202,
    response_model=GenerationOut,
    summary="Start a generation: selfie (or identity) + board (or profile) -> images; 202 with the job",
    responses={
        200: {"model": GenerationOut, "description": "Finished within `Prefer: wait`"},
        **errors(400, 404, 409, 413, 415),
    },
    openapi_extra=GENERATION_BODY,
)
async def create_generation(
    request: Request,
    svc: ServicesDep,
    principal: GenerateAccount,
    idempotency_key: IdempotencyKey = None,
    prefer: PreferHeader = None,
) -> JSONResponse:
    body, selfie = await read_request(request, svc.settings.max_image_bytes)
    caller = Caller.of(request, principal)
    if idempotency_key is None:  # a retry with a key must still find its job, so only keyless requests skip ahead
        load = svc.runner.account_load(principal.account_id)
        if load >= principal.tier.max_active_jobs:
            raise await run_in_threadpool(too_many_jobs, svc, caller, load)
    job_id, replayed = await admit(svc, caller, body, selfie, idempotency_key)
    del selfie  # the job holds its own reference; nothing here keeps the photo
    return await respond(
        request, svc, caller, job_id, prefer_wait(prefer, svc.settings.max_wait_seconds), replayed=replayed
    )


@router.get(
    "/{generation_id}",
    response_model=GenerationOut,
    summary="A generation's status, progress and images",
    responses=errors(404),
)
def get_generation(
    request: Request, svc: ServicesDep, principal: GenerateAccount, generation_id: JobId
) -> JSONResponse:
    return JSONResponse(_load_doc(svc, request, Caller.of(request, principal), generation_id))


async def job_events(
    request: Request, svc: Services, caller: Caller, job_id: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, GenerationOut doc) whenever the job's status or progress changes: ``progress`` while it is queued
    or running, then its terminal status, and the end. The one loop behind the API's event stream and the web
    page's (which signs in with a session instead of a bearer key)."""
    with svc.runner.watch(job_id) as w:
        last: Any = None
        while True:
            doc = await run_in_threadpool(_load_doc, svc, request, caller, job_id)
            state = (doc["status"], doc["progress"])
            terminal = doc["status"] in TERMINAL
            if state != last:
                yield (doc["status"] if terminal else "progress"), doc
                last = state
            if terminal:
                return
            await w.wait(svc.runner.poll_s)


def _owned_job_id(request: Request, svc: ServicesDep, principal: GenerateAccount, generation_id: JobId) -> str:
    """Resolve ownership before a stream starts, so another account's id is a plain 404."""
    with svc.store.session() as s:
        return owned_job(svc, s, Caller.of(request, principal), generation_id).id


@router.get(
    "/{generation_id}/events",
    response_class=EventSourceResponse,
    summary="Server-sent events: `progress` while queued/running, then `succeeded`, `failed` or `cancelled` "
    "(and the end)",
    responses=errors(401, 404, 422, 429, 503, explicit_json=True),
)
async def generation_events(
    request: Request, svc: ServicesDep, principal: GenerateAccount, job_id: Annotated[str, Depends(_owned_job_id)]
) -> AsyncIterator[ServerSentEvent]:
    n = 0
    async for event, doc in job_events(request, svc, Caller.of(request, principal), job_id):
        n += 1
        yield ServerSentEvent(event=event, data=doc, id=str(n))


@router.post(
    "/{generation_id}/cancel",
    response_model=GenerationOut,
    summary="Cancel a queued or running generation: it ends `cancelled` and its images go back to the quota",
    responses=errors(404, 409),
)
def cancel_generation(
    request: Request, svc: ServicesDep, principal: GenerateAccount, generation_id: JobId
) -> JSONResponse:
    """A queued job never starts; a running one has its worker stopped. 409 ``job_finished`` once it has ended."""
    caller = Caller.of(request, principal)
    return JSONResponse(job_doc(request, cancel(svc, caller, generation_id)))


@router.get(
    "/{generation_id}/images/{k}",
    summary="One output image",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}, "description": "The image"},
        **errors(404, 409),
    },
    name="generation_image",
)
def generation_image(
    request: Request,
    svc: ServicesDep,
    principal: GenerateAccount,
    generation_id: JobId,
    k: Annotated[int, PathParam(ge=0, le=63)],
) -> Response:
    with svc.store.session() as s:
        job, image = output_image(svc, s, Caller.of(request, principal), generation_id, k, what="images exist")
    return image_response(svc, job, image)


@router.get(
    "/{generation_id}/images/{k}/clip",
    summary="One output image's clip (generations made with clip=SECONDS)",
    response_class=Response,
    responses={
        200: {"content": {"video/mp4": {}, "video/webm": {}, "image/gif": {}}, "description": "The clip"},
        **errors(404, 409),
    },
    name="generation_clip",
)
def generation_clip(
    request: Request,
    svc: ServicesDep,
    principal: GenerateAccount,
    generation_id: JobId,
    k: Annotated[int, PathParam(ge=0, le=63)],
) -> Response:
    with svc.store.session() as s:
        job, image = output_image(svc, s, Caller.of(request, principal), generation_id, k, what="clips exist")
    clip = (image.record or {}).get("clip")
    if not isinstance(clip, dict) or not clip.get("sha256"):
        raise NotFoundError(f"image {k} of generation {job.id} has no clip (ask for one with clip=SECONDS)")
    return Response(
        content=svc.store.blobs.get(clip["sha256"]),
        media_type=clip["media_type"],
        headers={
            "ETag": f'"{clip["sha256"]}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "Content-Disposition": f'inline; filename="{job.id}_{k}.{clip["format"]}"',
        },
    )


def image_response(svc: Services, job: Job, image: JobImage, *, attachment: bool = False) -> Response:
    """An output image with its headers (immutable: its ETag is its hash); ``attachment`` to save, not show."""
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(image.media_type, "bin")
    return Response(
        content=svc.store.blobs.get(image.sha256),
        media_type=image.media_type,
        headers={
            "ETag": f'"{image.sha256}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "Content-Disposition": f'{"attachment" if attachment else "inline"}; filename="{job.id}_{image.k}.{ext}"',
        },
    )
