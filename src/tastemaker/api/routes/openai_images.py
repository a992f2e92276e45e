"""OpenAI-compatible images endpoints: ``POST /v1/images/edits`` (a selfie) and ``POST /v1/images/generations``
(an identity made on the device, for engines that draw from one alone). See ``docs/openai.md``.

A thin adapter: the OpenAI request is translated into a :class:`~..schemas.GenerationCreate` and admitted by the
same :func:`~..domain.generations.admit` as ``POST /v1/generations`` — same keys, scope (``generate``), limits,
quota, consent, idempotency and provenance — then the answer waits for the job, as OpenAI's does, and comes back
in OpenAI's shape (``created``, ``data[].b64_json`` or ``url``, ``usage``). A client that goes away while it waits
cancels the job (its images go back to the quota). Errors are OpenAI's error object (:mod:`..openai_compat`).

Tastemaker's own fields ride along as extra fields (the OpenAI package's ``extra_body``): ``board_id`` or
``profile``, ``consent`` (required, as everywhere), ``strength``, ``seed``, ``mode``, ``aspect``, ``framing``,
``face_index``, ``subject`` (``product`` on ``/edits``: the image is a product photo), and ``identity`` on
``/generations``. The routes are left out of the OpenAPI document: their
reference is OpenAI's, and what differs is in ``docs/openai.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from ... import safejson
from ...errors import (
    FilePartExpectedError,
    ForwardedError,
    ImageTooLargeError,
    MalformedBodyError,
    NotFoundError,
    ProfileError,
    RequestError,
    UnsupportedMediaTypeError,
    UnsupportedParameterError,
    error_class_for_code,
)
from ...store.records import CANCELLED, SUCCEEDED, TERMINAL, Job, period_of, utcnow
from ..deps import GenerateAccount, IdempotencyKey, Services, ServicesDep
from ..domain.common import Caller, owned_job
from ..domain.generations import admit, cancel, too_many_jobs
from ..openai_compat import check_image_url, parse_size, sign_image_url
from ..schemas import GenerationCreate
from .common import is_json, json_body, media_type, validate_body
from .generations import image_response
from .uploads import InMemoryMultiPartParser

router = APIRouter(tags=["generations"], include_in_schema=False)
files_router = APIRouter(include_in_schema=False)

#: OpenAI fields taken as they are, and Tastemaker's extras
OPENAI_FIELDS = frozenset({"prompt", "n", "size", "response_format", "output_format", "background"})
EXTRAS = frozenset({"board_id", "profile", "consent", "strength", "seed", "mode", "aspect", "framing", "face_index",
                    "identity", "selfie_name", "subject"})
#: OpenAI fields accepted and not used (the deployment's engine draws; nothing about the caller is stored)
IGNORED = frozenset({"model", "quality", "user", "safety_identifier", "input_fidelity", "output_compression",
                     "moderation", "style", "complexity", "partial_images"})
#: OpenAI fields that would change what the answer means: refused, saying why
UNSUPPORTED = {
    "mask": "inpainting a masked region is not supported: Tastemaker redraws the whole picture in the board's look",
    "markup": "markup images are not supported",
    "svg": "SVG output is not supported",
    "frame_count": "animations are not supported",
    "frame_duration_ms": "animations are not supported",
}
_OUR_BACKGROUNDS = ("auto", "keep", "blur", "backdrop", "scene")
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def _json_field(value: Any, name: str, error: type[RequestError] | type[ProfileError]) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return safejson.loads(value, what=name)
    except safejson.JSONSyntaxError as exc:
        raise error(f"{name}: {exc.message}") from None


def translate(fields: dict[str, Any], *, selfie: bool) -> tuple[GenerationCreate, str]:
    """An OpenAI images request (form or JSON fields) as Tastemaker's generation request, and its response format.

    Every field is either used, accepted and ignored (:data:`IGNORED`), or refused by name; unknown fields are
    refused too, as OpenAI refuses them.
    """
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if name in UNSUPPORTED:
            raise UnsupportedParameterError(name, UNSUPPORTED[name])
        if name == "stream":
            if _truthy(value):
                raise UnsupportedParameterError("stream", "streaming partial images is not supported; leave it out")
            continue
        if name in IGNORED:
            continue
        if name not in OPENAI_FIELDS | EXTRAS:
            raise UnsupportedParameterError(name, "unknown parameter")
        if value is None or value == "":
            continue
        body[name] = value
    response_format = str(body.pop("response_format", "b64_json"))
    if response_format not in ("b64_json", "url"):
        raise RequestError(f"response_format: must be b64_json or url, got {response_format!r}")
    fmt = str(body.pop("output_format", "png")).lower()
    if fmt in ("gif", "svg"):
        raise UnsupportedParameterError("output_format", f"{fmt} is not supported; use png, jpeg or webp")
    body["output_format"] = "jpeg" if fmt == "jpg" else fmt
    background = str(body.pop("background", "auto")).lower()
    if background == "transparent":
        raise UnsupportedParameterError("background", "transparent backgrounds are not supported (outputs are "
                                        "opaque); use auto, opaque, or Tastemaker's keep, blur, backdrop or scene")
    body["background"] = "auto" if background == "opaque" else background
    if body["background"] not in _OUR_BACKGROUNDS:
        raise RequestError(f"background: must be auto, opaque, keep, blur, backdrop or scene, got {background!r}")
    if "n" in body:
        n = body["n"]
        if str(n).strip().isdigit() and int(str(n).strip()) > 8:
            raise RequestError(f"n: at most 8 images per request here (got {n})")
    sized = parse_size(body.pop("size", None))
    if sized is not None:
        if "aspect" in body:
            raise RequestError("aspect: give it only with size=auto (a WIDTHxHEIGHT size sets the aspect)")
        body["size"], body["aspect"] = sized
    for name in ("profile", "identity"):
        if name in body:
            body[name] = _json_field(body[name], name, ProfileError)
    if selfie:
        body["selfie"] = "(file)"
        if "identity" in body:
            raise RequestError("identity: send either an image (/v1/images/edits) or an identity "
                               "(/v1/images/generations), not both")
    elif "identity" not in body:
        raise RequestError(
            "identity: /v1/images/generations draws from the identity embedding made on your device (extra field "
            "`identity`, 128 numbers); to send a selfie use /v1/images/edits"
        )
    return validate_body(GenerationCreate, body), response_format


async def _edit_form(request: Request, max_bytes: int) -> tuple[dict[str, Any], bytes, str]:
    """The multipart form of ``/edits``, parsed in memory: its fields, the one image and its name."""
    ctype = media_type(request)
    if ctype != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"/v1/images/edits takes multipart/form-data (the image as a file part named 'image'), got "
            f"{ctype or 'no content type'!r}"
        )
    try:
        form = await InMemoryMultiPartParser(request.headers, request.stream(), max_files=4, max_fields=60).parse()
    except MultiPartException as exc:
        raise MalformedBodyError(f"malformed multipart body: {exc.message}") from None
    fields: dict[str, Any] = {}
    images: list[tuple[bytes, str]] = []
    for key, value in form.multi_items():
        if key in ("image", "image[]"):
            if not isinstance(value, UploadFile):
                raise FilePartExpectedError("image")
            data = await value.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ImageTooLargeError(f"image: over the {max_bytes / 1e6:.0f} MB limit")
            images.append((data, value.filename or "image"))
        elif isinstance(value, UploadFile):
            if key in UNSUPPORTED:
                raise UnsupportedParameterError(key, UNSUPPORTED[key])
            raise UnsupportedParameterError(key, "unexpected file part; the selfie goes in 'image'")
        elif key in fields:
            raise RequestError(f"{key}: given twice")
        else:
            fields[key] = value
    if not images:
        raise RequestError("image: missing; send the selfie as a file part named 'image'")
    if len(images) > 1:
        raise RequestError(f"image: one selfie per request ({len(images)} were sent)")
    return fields, images[0][0], images[0][1]


def _load(svc: Services, caller: Caller, job_id: str) -> Job:
    with svc.store.session() as s:
        return owned_job(svc, s, caller, job_id)


async def _wait(request: Request, svc: Services, caller: Caller, job_id: str) -> Job | None:
    """The job once it has ended; None if the client went away first (the job is then cancelled)."""
    with svc.runner.watch(job_id) as w:
        while True:
            job = await run_in_threadpool(_load, svc, caller, job_id)
            if job.status in TERMINAL:
                return job
            if await request.is_disconnected():
                await run_in_threadpool(cancel, svc, caller, job_id)
                return None
            await w.wait(1.0)


def _images_left(svc: Services, account_id: str, quota: int) -> int:
    with svc.store.session() as s:
        return max(0, quota - s.get_usage(account_id, period_of(utcnow())).images)


def _answer(request: Request, svc: Services, caller: Caller, job: Job, response_format: str) -> dict[str, Any]:
    """A finished job in OpenAI's response shape (plus ``id``: the generation, for feedback and verify)."""
    import base64

    data = []
    for im in job.images:
        if response_format == "url":
            base = str(request.base_url)
            secret = svc.settings.secret_key.get_secret_value()
            data.append({"url": sign_image_url(base, secret, job.id, im.k, _EXT.get(im.media_type, "bin")),
                         "revised_prompt": None})
        else:
            data.append({"b64_json": base64.b64encode(svc.store.blobs.get(im.sha256)).decode(), "revised_prompt": None})
    first = job.images[0] if job.images else None
    tokens = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
              "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
              "output_tokens_details": {"image_tokens": 0, "text_tokens": 0}}
    return {
        "created": int(job.created_at.timestamp()),
        "id": job.id,
        "data": data,
        "background": "opaque",
        "output_format": job.request.get("format", "png"),
        "size": f"{first.width}x{first.height}" if first is not None else None,
        "usage": {**tokens, "images": len(job.images),
                  "images_remaining": _images_left(svc, caller.account_id, caller.principal.tier.images_per_month)},
    }


def _raise_failed(job: Job) -> None:
    """A job that did not succeed, raised as its own error (status and code as /v1/generations reports them)."""
    if job.status == CANCELLED:
        raise ForwardedError("JobFinishedError", "job_finished",
                             f"generation {job.id} was cancelled before it finished; its images were not charged")
    code = job.error_code or "internal_error"
    cls = error_class_for_code(code)
    raise ForwardedError(cls.__name__ if cls is not None else "InternalError", code,
                         job.error_message or f"generation {job.id} failed")


async def _run(
    request: Request, svc: Services, principal: Any, body: GenerationCreate, selfie: bytes | None,
    response_format: str, idempotency_key: str | None,
) -> Response:
    caller = Caller.of(request, principal)
    if idempotency_key is None:
        load = svc.runner.account_load(principal.account_id)
        if load >= principal.tier.max_active_jobs:
            raise await run_in_threadpool(too_many_jobs, svc, caller, load)
    job_id, _ = await admit(svc, caller, body, selfie, idempotency_key)
    del selfie
    job = await _wait(request, svc, caller, job_id)
    if job is None:
        return Response(status_code=499)  # nobody is listening; the job was cancelled
    if job.status != SUCCEEDED:
        _raise_failed(job)
    doc = await run_in_threadpool(_answer, request, svc, caller, job, response_format)
    return JSONResponse(doc, headers={"X-Tastemaker-Generation": job.id})


@router.post("/v1/images/edits", summary="OpenAI-compatible: a selfie + a board -> images (multipart)")
async def images_edits(
    request: Request, svc: ServicesDep, principal: GenerateAccount, idempotency_key: IdempotencyKey = None
) -> Response:
    fields, selfie, name = await _edit_form(request, svc.settings.max_image_bytes)
    fields.setdefault("selfie_name", name)
    body, response_format = translate(fields, selfie=True)
    return await _run(request, svc, principal, body, selfie, response_format, idempotency_key)


@router.post("/v1/images/generations", summary="OpenAI-compatible: an identity made on your device + a board -> images")
async def images_generations(
    request: Request, svc: ServicesDep, principal: GenerateAccount, idempotency_key: IdempotencyKey = None
) -> Response:
    ctype = media_type(request)
    if not is_json(ctype):
        raise UnsupportedMediaTypeError(f"/v1/images/generations takes application/json, got {ctype or 'nothing'!r}")
    try:
        data = await json_body(request)
    except safejson.JSONSyntaxError as exc:
        raise MalformedBodyError(exc.message) from None
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    body, response_format = translate(data, selfie=False)
    return await _run(request, svc, principal, body, None, response_format, idempotency_key)


def _signed_image(svc: Services, generation_id: str, k: int, expires: int, signature: str) -> Response:
    check_image_url(svc.settings.secret_key.get_secret_value(), generation_id, k, expires, signature)
    gone = NotFoundError("this image no longer exists (its generation or account was deleted)")
    with svc.store.session() as s:
        owner = s.owner_of("generation", generation_id)
        if owner is None:
            raise gone
        job = s.get_job(owner, generation_id)
    image = next((im for im in job.images if im.k == k), None)
    if image is None:
        raise gone
    return image_response(svc, job, image)


@files_router.get("/files/images/{generation_id}/{name}")
async def signed_image(
    svc: ServicesDep,
    generation_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    name: Annotated[str, PathParam(pattern=r"^\d{1,2}\.(png|jpg|webp)$")],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    """An image of a ``response_format=url`` answer: no key needed while the link's signature holds."""
    k = int(name.split(".", 1)[0])
    return await run_in_threadpool(_signed_image, svc, generation_id, k, expires, signature)
