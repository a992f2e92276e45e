"""Generations: ``POST /v1/generations`` (202 + job), status, server-sent events, images.

A request is checked completely before it is admitted — parameters, consent, the profile, and the
selfie's face (in the CPU pool, so a photo without a face is a 422 now, not a failed job later). The
selfie is parsed in memory (multipart parts never spill to temporary files), handed to the job as
bytes, and never stored: the job keeps only its SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ... import safejson
from ...audit import GENERATION_CREATED
from ...engines.base import GenerationRequest
from ...errors import (
    ConflictError,
    ConsentRequiredError,
    FilePartExpectedError,
    InvalidApiKeyError,
    NotFoundError,
    NotReadyError,
    ProfileError,
    QueueFullError,
    QuotaExceededError,
    RequestError,
    ServiceError,
    TooManyJobsError,
    UnsupportedMediaTypeError,
)
from ...jobs import RETRYABLE, JobPayload, task_prepare_subject
from ...store import repo, sha256_hex
from ...store.models import Board, Job, utcnow
from ...taste.profile import TasteProfile
from ..deps import (
    GenerateAccount,
    Idempotency,
    IdempotencyKey,
    Principal,
    Services,
    ServicesDep,
    client_address,
    fingerprint,
    request_id,
)
from ..profiles import board_assets, ensure_profile
from ..schemas import GenerationCreate, GenerationOut
from .common import (
    AUTH_ERRORS,
    errors,
    form_properties,
    is_json,
    json_body,
    media_type,
    owned_board,
    owned_job,
    validate_body,
)

router = APIRouter(prefix="/v1/generations", tags=["generations"], responses=AUTH_ERRORS)

JobId = Annotated[str, PathParam(min_length=1, max_length=64, description="a generation id (gen_...)")]
PreferHeader = Annotated[
    str | None,
    Header(max_length=200, description="`wait=N` (N <= 60): answer when the job finishes, if within N seconds"),
]
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?:$|[,;\s])", re.IGNORECASE)



class _InMemoryParser(MultiPartParser):
    """Starlette's parser, but file parts stay in memory: a selfie must never touch the disk.

    The request body is capped by the app (``max_request_bytes``), which bounds the memory used.
    """

    spool_max_size = 1 << 62


def prefer_wait(value: str | None, cap: float) -> float:
    """Seconds to wait from ``Prefer: wait=N`` (RFC 7240); malformed preferences are ignored, as the RFC says."""
    if not value:
        return 0.0
    m = _WAIT.search(value)
    return min(float(m.group(1)), cap) if m else 0.0


_MULTIPART_FIELDS = set(GenerationCreate.model_fields) - {"selfie"}


def _profile_field(data: str | bytes, what: str) -> Any:
    """The multipart ``profile`` field: TasteProfile JSON (not JSON at all is 422 ``invalid_profile``; nested
    too deep or with an over-long number, 400 ``json_*``)."""
    try:
        return safejson.loads(data, what=what)
    except safejson.JSONSyntaxError as exc:
        raise ProfileError(f"{exc.message}; send a TasteProfile (the JSON `tastemaker profile build` writes)") from None


async def read_request(request: Request) -> tuple[GenerationCreate, bytes]:
    """Parse JSON (selfie in base64) or multipart (selfie as a file part) into one model."""
    ctype = media_type(request)
    if is_json(ctype):
        data = await json_body(request)
        model = validate_body(GenerationCreate, data)
        try:
            selfie = base64.b64decode(model.selfie, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("selfie: not valid base64 (send the image file's bytes, base64-encoded)") from None
        return model, selfie
    if ctype == "multipart/form-data":
        try:
            form = await _InMemoryParser(request.headers, request.stream(), max_files=2, max_fields=40).parse()
        except MultiPartException as exc:
            raise RequestError(f"malformed multipart body: {exc.message}") from None
        fields: dict[str, Any] = {}
        selfie_bytes: bytes | None = None
        for key, value in form.multi_items():
            if key == "selfie" and isinstance(value, UploadFile):
                selfie_bytes = await value.read()
                fields.setdefault("selfie_name", value.filename or "selfie")
                fields["selfie"] = "(file)"
            elif isinstance(value, str):
                if key == "selfie":
                    raise FilePartExpectedError("selfie")
                if key == "profile":
                    fields[key] = _profile_field(value, "profile")
                elif key in _MULTIPART_FIELDS and value != "":
                    fields[key] = value
                elif key not in _MULTIPART_FIELDS:
                    raise RequestError(f"unknown form field {key!r}")
            elif key == "profile" and isinstance(value, UploadFile):
                fields["profile"] = _profile_field(await value.read(), "profile (the uploaded file)")
            else:
                raise RequestError(f"unexpected file part {key!r}; the selfie goes in a part named 'selfie'")
        if selfie_bytes is None:
            raise RequestError("selfie: missing; send the photo as a file part named 'selfie'")
        return validate_body(GenerationCreate, fields), selfie_bytes
    raise UnsupportedMediaTypeError(
        f"send application/json (selfie base64) or multipart/form-data (selfie as a file), got {ctype or 'none'!r}"
    )


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
                "seed": rec.get("seed"),
                "mode": rec.get("mode"),
                "identity_distance": rec.get("identity_distance"),
                "style_score": rec.get("style_score"),
                **{k: rec.get(k) for k in ("colour", "medium", "scene", "size")},
            }
        )
    doc = GenerationOut(
        id=job.id,
        status=job.status,
        progress=job.progress,
        board_id=job.board_id,
        profile_hash=job.profile_hash,
        request=job.request,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=error,
        images=images,
        links={
            "self": str(request.url_for("get_generation", generation_id=job.id)),
            "events": str(request.url_for("generation_events", generation_id=job.id)),
        },
    )
    return doc.model_dump(mode="json")


def _seconds_to(end: datetime) -> float:
    return max(1.0, (end - datetime.now(UTC)).total_seconds())


@dataclass
class _Admission:
    """What the first, synchronous half of admission learned (see :func:`admit`)."""

    gen_request: GenerationRequest
    selfie_sha: str
    period: str
    period_end: datetime
    profile_json: str
    profile_hash: str
    board_id: str | None
    #: the stored board's pins the engine may draw from (medium exemplars, scenes): (pin, blob path)
    pins: list[tuple[Any, str]] = field(default_factory=list)


def _too_many_jobs(svc: Services, request: Request, principal: Principal, active: int) -> TooManyJobsError:
    exc = TooManyJobsError(
        f"{active} generations are already queued, running or being admitted for this account (the "
        f"{principal.tier_name!r} tier allows {principal.tier.max_active_jobs}); wait for one to finish",
        retry_after_s=svc.runner.retry_after(),
    )
    _audit_denied(svc, request, principal, exc)
    return exc


def _begin(
    request: Request, svc: Services, principal: Principal, body: GenerationCreate, selfie: bytes, idem: Idempotency
) -> _Admission | str:
    """Everything cheap, in order of cost: parameters, consent, capacity, idempotency, quota, the profile.

    Returns the job id of an idempotent replay, or the admission to continue. On success the account
    holds one admission slot (released by :func:`admit`).
    """
    runner = svc.runner
    if not body.consent:
        raise ConsentRequiredError(
            "consent must be true: confirm the selfie is of you, or that you have the person's consent to "
            "generate images of them"
        )
    gen_request = GenerationRequest.create(
        prompt=body.prompt,
        n=body.n,
        size=body.size,
        aspect=body.aspect,
        format=body.output_format,
        strength=body.strength,
        seed=body.seed,
        background=body.background,
        framing=body.framing,
        mode=body.mode,
    )
    if (body.board_id is None) == (body.profile is None):
        raise RequestError("give exactly one of board_id or profile")
    if gen_request.seed is None:  # chosen now, so the job's stored request reproduces its images
        gen_request = gen_request.with_seed(secrets.randbelow(2**31))
    selfie_sha = sha256_hex(selfie)
    fields = body.model_dump(exclude={"selfie"})
    fields["selfie_sha256"] = selfie_sha
    with svc.store.session() as s:
        previous = idem.claim(s, fingerprint("POST /v1/generations", fields))
        if previous is not None:
            assert previous.resource_id is not None
            return previous.resource_id
        try:
            if not runner.has_capacity():
                raise QueueFullError("the generation queue is full; retry later", retry_after_s=runner.retry_after())
            period = repo.period_of(utcnow())
            _, period_end = repo.period_bounds(period)
            quota = principal.tier.images_per_month
            used = repo.get_usage(s, principal.account_id, period).images
            if used + gen_request.n > quota:
                raise _quota_error(svc, request, principal, used, quota, gen_request.n, period_end)
            active = repo.count_active_jobs(s, principal.account_id)
            if active + runner.admitting(principal.account_id) >= principal.tier.max_active_jobs:
                raise _too_many_jobs(svc, request, principal, active + runner.admitting(principal.account_id))
            if body.board_id is not None:
                board = owned_board(svc, s, request, principal, body.board_id)
                cached = ensure_profile(svc, s, board)
                profile_json, profile_hash, board_id = cached.profile_json, cached.profile_hash, board.id
                pins = board_assets(svc, board, TasteProfile.from_json(profile_json, name=f"board {board.id}"))
                s.commit()  # keep a freshly built profile even if the selfie turns out to be unusable
            else:
                profile = TasteProfile.from_json(json.dumps(body.profile), name="profile")
                profile_json, profile_hash, board_id = profile.to_json(), profile.content_hash(), None
                pins = []  # a profile carries no pixels: medium transfer and scenes fall back (noted per image)
            if gen_request.mode is not None:
                TasteProfile.from_json(profile_json).mode(gen_request.mode)  # unknown mode -> 422 now
            if not runner.begin_admission(principal.account_id, active, principal.tier.max_active_jobs):
                raise _too_many_jobs(svc, request, principal, active + runner.admitting(principal.account_id))
        except BaseException:
            idem.abandon()
            raise
    return _Admission(gen_request, selfie_sha, period, period_end, profile_json, profile_hash, board_id, pins)


def _finish(
    request: Request,
    svc: Services,
    principal: Principal,
    body: GenerationCreate,
    selfie: bytes,
    idem: Idempotency,
    adm: _Admission,
    face: Any,
    identity: Any,
) -> str:
    """Reserve quota and a queue slot, persist the job with its audit entry, and queue it — atomically."""
    runner = svc.runner
    slot = runner.reserve()
    with svc.store.session() as s:
        try:
            quota = principal.tier.images_per_month
            if not repo.reserve_images(s, principal.account_id, adm.period, adm.gen_request.n, quota):
                used = repo.get_usage(s, principal.account_id, adm.period).images
                s.rollback()
                raise _quota_error(svc, request, principal, used, quota, adm.gen_request.n, adm.period_end)
            active = repo.count_active_jobs(s, principal.account_id)
            if active >= principal.tier.max_active_jobs:
                s.rollback()
                raise _too_many_jobs(svc, request, principal, active)
            job = repo.create_job(
                s,
                account_id=principal.account_id,
                board_id=adm.board_id,
                request=adm.gen_request.model_dump(mode="json"),
                n_images=adm.gen_request.n,
                profile_hash=adm.profile_hash,
                selfie_sha256=adm.selfie_sha,
                usage_period=adm.period,
            )
            svc.audit.append(
                s,
                GENERATION_CREATED,
                account_id=principal.account_id,
                objects={"generation": job.id, "board": adm.board_id},
                request_id=request_id(request),
                detail={"selfie_sha256": adm.selfie_sha, "profile_sha256": adm.profile_hash, "n": adm.gen_request.n},
            )
            idem.complete(s, status=202, body=None, resource_id=job.id)
            s.commit()
        except IntegrityError as exc:  # the account or board went away during the face check
            s.rollback()
            slot.release()
            raise _vanished(svc, principal, adm) from exc
        except BaseException:
            s.rollback()
            slot.release()
            raise
    runner.submit(
        slot,
        JobPayload(
            job_id=job.id,
            account_id=principal.account_id,
            request=adm.gen_request.model_dump(mode="json"),
            selfie=selfie,
            selfie_name=body.selfie_name,
            face=face,
            identity=identity,
            profile_json=adm.profile_json,
            pins=adm.pins,
        ),
    )
    return job.id


def _vanished(svc: Services, principal: Principal, adm: _Admission) -> ServiceError:
    """The clear error for a job row that could not be written because what it refers to was deleted."""
    with svc.store.session() as s:
        if repo.get_account(s, principal.account_id) is None:
            return InvalidApiKeyError(
                "this account was deleted while the generation was being admitted; nothing was queued or charged"
            )
        if adm.board_id is not None and s.get(Board, adm.board_id) is None:
            return NotFoundError(
                f"board {adm.board_id!r} was deleted while the generation was being admitted; nothing was queued"
            )
    return ConflictError("the account's data changed while the generation was being admitted; retry the request")


async def admit(
    request: Request, svc: Services, principal: Principal, body: GenerationCreate, selfie: bytes, key: str | None
) -> tuple[str, bool]:
    """Admit a generation: cheap checks, then the face check in the CPU pool, then the job. (job id, replayed)

    The face check is awaited, not waited for in a thread: a burst of generations can never starve the
    thread pool the other endpoints run on. Each account has at most ``max_active_jobs`` generations
    queued, running or being admitted; beyond that it gets 429 ``too_many_jobs`` before any CPU is spent.
    """
    settings = svc.settings
    idem = Idempotency(svc, principal, key, "POST /v1/generations")
    adm = await run_in_threadpool(_begin, request, svc, principal, body, selfie, idem)
    if isinstance(adm, str):
        return adm, True
    try:
        face, identity = await svc.runner.call_async(
            task_prepare_subject,
            selfie,
            body.selfie_name,
            settings.max_image_pixels,
            settings.max_image_bytes,
            settings.min_face_px,
            body.face_index,
        )
        job_id = await run_in_threadpool(_finish, request, svc, principal, body, selfie, idem, adm, face, identity)
    except BaseException:
        await run_in_threadpool(idem.abandon)
        raise
    finally:
        svc.runner.end_admission(principal.account_id)
    return job_id, False


def _audit_denied(svc: Services, request: Request, principal: Principal, exc: ServiceError) -> None:
    """A refused admission goes to the aggregated audit trail (one entry per client, minute and outcome)."""
    svc.denials.note(
        address=client_address(request),
        outcome=exc.code,
        account_id=principal.account_id,
        request_id=request_id(request),
        method=request.method,
        path=request.url.path,
    )


def _quota_error(
    svc: Services, request: Request, principal: Principal, used: int, quota: int, n: int, period_end: datetime
) -> QuotaExceededError:
    exc = QuotaExceededError(
        f"monthly image quota reached: {used} of {quota} images used this month, this request needs {n} more "
        f"(the {principal.tier_name!r} tier); the quota resets on {period_end:%Y-%m-%d}",
        retry_after_s=_seconds_to(period_end),
    )
    _audit_denied(svc, request, principal, exc)
    return exc


def _load_doc(svc: Services, request: Request, principal: Principal, job_id: str) -> dict[str, Any]:
    with svc.store.session() as s:
        return job_doc(request, owned_job(svc, s, request, principal, job_id))


async def respond(
    request: Request, svc: Services, principal: Principal, job_id: str, wait_s: float, *, replayed: bool = False
) -> JSONResponse:
    """The job now — or, with ``Prefer: wait``, as soon as it finishes within the wait. 200 if finished, else 202."""
    headers = {"Location": str(request.url_for("get_generation", generation_id=job_id))}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    doc = await run_in_threadpool(_load_doc, svc, request, principal, job_id)
    if wait_s > 0:
        headers["Preference-Applied"] = f"wait={int(wait_s)}"
        loop_deadline = datetime.now(UTC).timestamp() + wait_s
        with svc.runner.watch(job_id) as w:
            while doc["status"] not in repo.TERMINAL:
                remaining = loop_deadline - datetime.now(UTC).timestamp()
                if remaining <= 0:
                    break
                await w.wait(min(remaining, 5.0))
                doc = await run_in_threadpool(_load_doc, svc, request, principal, job_id)
    status = 200 if doc["status"] in repo.TERMINAL else 202
    return JSONResponse(doc, status_code=status, headers=headers)


GENERATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenerationCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,  # unknown form fields are refused
                    "required": ["selfie", "consent"],
                    "oneOf": [{"required": ["board_id"]}, {"required": ["profile"]}],  # exactly one of them
                    "properties": form_properties(
                        GenerationCreate,
                        files={"selfie": {"type": "string", "format": "binary", "description": "the selfie image"}},
                        extra={"profile": {"type": "string", "contentMediaType": "application/json",
                                           "description": "a TasteProfile, as JSON text"}},
                    ),
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=GenerationOut,
    summary="Start a generation: selfie + board (or profile) -> images; 202 with the job",
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
    body, selfie = await read_request(request)
    if idempotency_key is None:  # a retry with a key must still find its job, so only keyless requests skip ahead
        load = svc.runner.account_load(principal.account_id)
        if load >= principal.tier.max_active_jobs:
            raise await run_in_threadpool(_too_many_jobs, svc, request, principal, load)
    job_id, replayed = await admit(request, svc, principal, body, selfie, idempotency_key)
    del selfie  # the job holds its own reference; nothing here keeps the photo
    return await respond(
        request, svc, principal, job_id, prefer_wait(prefer, svc.settings.max_wait_seconds), replayed=replayed
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
    return JSONResponse(_load_doc(svc, request, principal, generation_id))


def _owned_job_id(request: Request, svc: ServicesDep, principal: GenerateAccount, generation_id: JobId) -> str:
    """Resolve ownership before a stream starts, so another account's id is a plain 404."""
    with svc.store.session() as s:
        return owned_job(svc, s, request, principal, generation_id).id


@router.get(
    "/{generation_id}/events",
    response_class=EventSourceResponse,
    summary="Server-sent events: `progress` while queued/running, then `succeeded` or `failed` (and the end)",
    responses=errors(401, 404, 422, 429, 503, explicit_json=True),
)
async def generation_events(
    request: Request, svc: ServicesDep, principal: GenerateAccount, job_id: Annotated[str, Depends(_owned_job_id)]
) -> AsyncIterator[ServerSentEvent]:
    with svc.runner.watch(job_id) as w:
        last: Any = None
        n = 0
        while True:
            doc = await run_in_threadpool(_load_doc, svc, request, principal, job_id)
            state = (doc["status"], doc["progress"])
            terminal = doc["status"] in repo.TERMINAL
            if state != last:
                n += 1
                yield ServerSentEvent(event=doc["status"] if terminal else "progress", data=doc, id=str(n))
                last = state
            if terminal:
                return
            await w.wait(10.0)


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
        job = owned_job(svc, s, request, principal, generation_id)
        if job.status != repo.SUCCEEDED:
            raise NotReadyError(f"generation {job.id} is {job.status}; images exist once it has succeeded")
        image = next((im for im in job.images if im.k == k), None)
        if image is None:
            raise NotFoundError(f"generation {job.id} has {len(job.images)} image(s), numbered from 0; no image {k}")
    data = svc.store.blobs.get(image.sha256)
    ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(image.media_type, "bin")
    return Response(
        content=data,
        media_type=image.media_type,
        headers={
            "ETag": f'"{image.sha256}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "Content-Disposition": f'inline; filename="{job.id}_{k}.{ext}"',
        },
    )
