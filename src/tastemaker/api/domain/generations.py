"""Admitting a generation: everything is checked before a job exists — parameters, consent, capacity, quota,
the profile, and the selfie's face (in the CPU pool, so a photo without a face is a 422 now, not a failed job
later). The selfie is handed to the job as bytes and never stored: the job keeps only its SHA-256.

Instead of a selfie a request may carry ``identity``: the 128-d embedding made on the person's device. Only an
engine that draws from an identity alone (``accepts_identity_only``: the diffusion engine) takes it; the look engine
redraws a selfie, so it is refused at once (422 ``identity_only_unsupported``) with the way that keeps the face on
the device: render there and register the outputs (``tastemaker generate --remote``, ``POST /v1/records``).

Cancelling one (:func:`cancel`): the account's own queued or running job ends ``cancelled`` and its images go
back to the quota; one that has already ended is a 409.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
from fastapi.concurrency import run_in_threadpool

from ...audit import GENERATION_CREATED
from ...boards import Pin
from ...clips import ClipOptions
from ...encoders.identity import IdentityEmbedding
from ...engines.base import GenerationRequest
from ...errors import (
    ConflictError,
    ConsentRequiredError,
    IdentityOnlyUnsupportedError,
    InvalidApiKeyError,
    NotFoundError,
    ProfileError,
    QueueFullError,
    QuotaExceededError,
    RequestError,
    ServiceError,
    StoreConflictError,
    TooManyJobsError,
)
from ...jobs import JobPayload, task_prepare_subject
from ...jobs.tasks import task_prepare_product
from ...store import sha256_hex
from ...store.records import Job, period_bounds, period_of, utcnow
from ...taste.profile import TasteProfile
from ..deps import Idempotency, Services, fingerprint
from ..schemas import GenerationCreate
from .common import Caller, note_denied, owned_board, owned_job
from .profiles import board_assets, ensure_profile

ENDPOINT = "POST /v1/generations"
#: What the built-in engines say about ``accepts_identity_only``, known without loading them (the diffusion engine's
#: weights are not loaded into the API process to answer it); a test holds this to the engines' own attributes.
BUILTIN_IDENTITY_ONLY = {"look": False, "diffusion": True}


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
    #: the stored board's pins the engine may draw from (medium exemplars, scenes)
    pins: list[Pin] = field(default_factory=list)


def too_many_jobs(svc: Services, caller: Caller, active: int) -> TooManyJobsError:
    """The refusal for an account at its limit of active generations (and its audit note)."""
    tier = caller.principal.tier
    exc = TooManyJobsError(
        f"{active} generations are already queued, running or being admitted for this account (the "
        f"{caller.principal.tier_name!r} tier allows {tier.max_active_jobs}); wait for one to finish",
        retry_after_s=svc.runner.retry_after(),
    )
    note_denied(svc, caller, exc)
    return exc


def _quota_error(svc: Services, caller: Caller, used: int, n: int, period_end: datetime) -> QuotaExceededError:
    quota = caller.principal.tier.images_per_month
    exc = QuotaExceededError(
        f"monthly image quota reached: {used} of {quota} images used this month, this request needs {n} more "
        f"(the {caller.principal.tier_name!r} tier); the quota resets on {period_end:%Y-%m-%d}",
        retry_after_s=_seconds_to(period_end),
    )
    note_denied(svc, caller, exc)
    return exc


@cache
def accepts_identity_only(engine: str) -> bool:
    """Whether the deployment's engine draws a person from an identity embedding alone (no selfie pixels)."""
    if engine in BUILTIN_IDENTITY_ONLY:
        return BUILTIN_IDENTITY_ONLY[engine]
    from ...engines import get_engine

    return bool(getattr(get_engine(engine), "accepts_identity_only", False))


def parse_identity(value: Any) -> IdentityEmbedding:
    """The ``identity`` field: 128 finite numbers, or an identity file's JSON object (422 ``invalid_profile`` else,
    as the CLI answers an identity file it cannot read)."""
    if isinstance(value, dict):
        try:
            return IdentityEmbedding.from_dict(value)
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"identity: not an identity file ({exc})") from None
        except ProfileError as exc:
            raise ProfileError(f"identity: {exc.message}") from None
    vec = np.asarray(value, dtype=np.float64) if isinstance(value, list) else np.zeros(0)
    if vec.shape != (128,) or not np.all(np.isfinite(vec)):
        raise ProfileError(
            "identity: must be 128 finite numbers (the embedding `tastemaker identity` writes) or that file's JSON"
        )
    return IdentityEmbedding(vector=vec)


def identity_sha256(identity: IdentityEmbedding) -> str:
    """What the job and its audit entry keep of an identity: the SHA-256 of its JSON (never the numbers)."""
    return sha256_hex(json.dumps(identity.to_dict(), sort_keys=True, separators=(",", ":")).encode())


def check_identity_only(engine: str) -> None:
    """Refuse an identity-only request when the engine needs a selfie, saying how to keep the face at home."""
    if not accepts_identity_only(engine):
        raise IdentityOnlyUnsupportedError(
            f"identity: this service's {engine!r} engine redraws a selfie, so it cannot draw you from an identity "
            "embedding alone. To keep your face on your device, render there and register the outputs here: "
            "`tastemaker generate --remote URL --board-id ID --selfie me.jpg` (or `Client.generate_local`) "
            "renders on your machine and sends only the images you keep (POST /v1/records)"
        )


def _request(body: GenerationCreate) -> GenerationRequest:
    """The core's request, checked (parameters, consent, one source of taste), with its seed chosen now so the
    job's stored request reproduces its images."""
    if not body.consent and body.subject != "product":  # a product photo needs consent only if a face is in it
        what = "identity" if body.identity is not None and body.selfie is None else "selfie"
        raise ConsentRequiredError(
            f"consent must be true: confirm the {what} is of you, or that you have the person's consent to "
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
    if body.subject == "product" and body.identity is not None:
        raise RequestError("subject=product: send the product photo (as the selfie part), not an identity")
    if (body.selfie is None) == (body.identity is None):
        raise RequestError("give exactly one of selfie (a photo) or identity (the embedding made on your device)")
    if gen_request.seed is None:
        gen_request = gen_request.with_seed(secrets.randbelow(2**31))
    job_request(body, gen_request)  # a bad clip field is a 422 now
    return gen_request


def job_request(body: GenerationCreate, gen_request: GenerationRequest) -> dict[str, Any]:
    """The request a job stores and runs: the core's, plus ``clip`` when clips were asked for (``fps`` and
    ``clip_format`` only go with ``clip``; without it they are ignored, as the schema says)."""
    asked = body.clip is not None
    clip = ClipOptions.create(body.clip, body.fps if asked else None, body.clip_format if asked else None)
    return {**gen_request.model_dump(mode="json"), **({"clip": clip.to_dict()} if clip is not None else {})}


def _begin(
    svc: Services, caller: Caller, body: GenerationCreate, selfie: bytes | None, idem: Idempotency,
    identity: IdentityEmbedding | None = None,
) -> _Admission | str:
    """Everything cheap, in order of cost: parameters, consent, capacity, idempotency, quota, the profile.

    Returns the job id of an idempotent replay, or the admission to continue. On success the account
    holds one admission slot (released by :func:`admit`).
    """
    runner, tier = svc.runner, caller.principal.tier
    gen_request = _request(body)
    if identity is not None:
        check_identity_only(svc.settings.engine)
        selfie_sha = identity_sha256(identity)
    else:
        assert selfie is not None
        selfie_sha = sha256_hex(selfie)
    fields = body.model_dump(exclude={"selfie", "identity"})
    fields["selfie_sha256"] = selfie_sha
    with svc.store.session() as s:
        previous = idem.claim(s, fingerprint(ENDPOINT, fields))
        if previous is not None:
            assert previous.resource_id is not None
            return previous.resource_id
        try:
            if not runner.has_capacity():
                raise QueueFullError("the generation queue is full; retry later", retry_after_s=runner.retry_after())
            period = period_of(utcnow())
            _, period_end = period_bounds(period)
            used = s.get_usage(caller.account_id, period).images
            if used + gen_request.n > tier.images_per_month:
                raise _quota_error(svc, caller, used, gen_request.n, period_end)
            active = s.count_active_jobs(caller.account_id)
            if active + runner.admitting(caller.account_id) >= tier.max_active_jobs:
                raise too_many_jobs(svc, caller, active + runner.admitting(caller.account_id))
            if body.board_id is not None:
                board = owned_board(svc, s, caller, body.board_id)
                cached = ensure_profile(svc, s, board)
                profile, profile_json, profile_hash = cached.profile(), cached.profile_json, cached.profile_hash
                pins = board_assets(svc, s, board.id, profile)
                s.commit()  # keep a freshly built profile even if the selfie turns out to be unusable
            else:
                profile = TasteProfile.from_json(json.dumps(body.profile), name="profile")
                profile_json, profile_hash = profile.to_json(), profile.content_hash()
                pins = []  # a profile carries no pixels: medium transfer and scenes fall back (noted per image)
            if gen_request.mode is not None:
                profile.mode(gen_request.mode)  # unknown mode -> 422 now
            if not runner.begin_admission(caller.account_id, active, tier.max_active_jobs):
                raise too_many_jobs(svc, caller, active + runner.admitting(caller.account_id))
        except BaseException:
            idem.abandon()
            raise
    return _Admission(gen_request, selfie_sha, period, period_end, profile_json, profile_hash, body.board_id, pins)


def _finish(
    svc: Services,
    caller: Caller,
    body: GenerationCreate,
    selfie: bytes | None,
    idem: Idempotency,
    adm: _Admission,
    face: Any,
    identity: Any,
) -> str:
    """Reserve quota and a queue slot, persist the job with its audit entry, and queue it — atomically."""
    runner, tier = svc.runner, caller.principal.tier
    slot = runner.reserve()
    with svc.store.session() as s:
        try:
            if not s.reserve_images(caller.account_id, adm.period, adm.gen_request.n, tier.images_per_month):
                used = s.get_usage(caller.account_id, adm.period).images
                s.rollback()
                raise _quota_error(svc, caller, used, adm.gen_request.n, adm.period_end)
            active = s.count_active_jobs(caller.account_id)
            if active >= tier.max_active_jobs:
                s.rollback()
                raise too_many_jobs(svc, caller, active)
            job = s.create_job(
                account_id=caller.account_id,
                board_id=adm.board_id,
                request=job_request(body, adm.gen_request),
                n_images=adm.gen_request.n,
                profile_hash=adm.profile_hash,
                selfie_sha256=adm.selfie_sha,
                usage_period=adm.period,
            )
            svc.audit.append(
                s,
                GENERATION_CREATED,
                account_id=caller.account_id,
                objects={"generation": job.id, "board": adm.board_id},
                request_id=caller.request_id,
                detail={"identity_sha256" if selfie is None else
                        "product_sha256" if body.subject == "product" else "selfie_sha256": adm.selfie_sha,
                        "profile_sha256": adm.profile_hash, "n": adm.gen_request.n},
            )
            idem.complete(s, status=202, body=None, resource_id=job.id)
            payload = JobPayload(
                job_id=job.id,
                account_id=caller.account_id,
                request=job_request(body, adm.gen_request),
                selfie=selfie or b"",  # empty: an identity-only job (no pixels of the person came here)
                selfie_name=body.selfie_name if selfie is not None else "identity",
                face=face,
                identity=identity,
                profile_json=adm.profile_json,
                pins=adm.pins,
            )
            runner.stage(s, job, payload)  # queue mode: the job's input commits with the job
            s.commit()
        except StoreConflictError as exc:  # the account or board went away during the face check
            s.rollback()
            slot.release()
            raise _vanished(svc, caller, adm) from exc
        except BaseException:
            s.rollback()
            slot.release()
            raise
    runner.submit(slot, payload)
    return job.id


def _vanished(svc: Services, caller: Caller, adm: _Admission) -> ServiceError:
    """The clear error for a job that could not be written because what it refers to was deleted."""
    with svc.store.session() as s:
        if s.get_account(caller.account_id) is None:
            return InvalidApiKeyError(
                "this account was deleted while the generation was being admitted; nothing was queued or charged"
            )
        if adm.board_id is not None and s.owner_of("board", adm.board_id) is None:
            return NotFoundError(
                f"board {adm.board_id!r} was deleted while the generation was being admitted; nothing was queued"
            )
    return ConflictError("the account's data changed while the generation was being admitted; retry the request")


async def admit(
    svc: Services, caller: Caller, body: GenerationCreate, selfie: bytes | None, key: str | None
) -> tuple[str, bool]:
    """Admit a generation: cheap checks, then the face check in the CPU pool, then the job. (job id, replayed)

    The face check is awaited, not waited for in a thread: a burst of generations can never starve the
    thread pool the other endpoints run on. Each account has at most ``max_active_jobs`` generations
    queued, running or being admitted; beyond that it gets 429 ``too_many_jobs`` before any CPU is spent.
    Without a selfie, ``body.identity`` is the person (for engines that accept one alone): there is no face to
    check.
    """
    settings = svc.settings
    idem = Idempotency(svc, caller.principal, key, ENDPOINT)
    given = parse_identity(body.identity) if selfie is None and body.identity is not None else None
    adm = await run_in_threadpool(_begin, svc, caller, body, selfie, idem, given)
    if isinstance(adm, str):
        return adm, True
    try:
        if given is not None:
            face, identity = None, given
        elif body.subject == "product":  # cut out now: a photo that cannot be is a 422, not a failed job
            assert selfie is not None
            face = await svc.runner.call_async(task_prepare_product, selfie, body.selfie_name,
                                               settings.max_image_pixels, settings.max_image_bytes, body.consent)
            identity = None
        else:
            assert selfie is not None
            face, identity = await svc.runner.call_async(
                task_prepare_subject,
                selfie,
                body.selfie_name,
                settings.max_image_pixels,
                settings.max_image_bytes,
                settings.min_face_px,
                body.face_index,
            )
        job_id = await run_in_threadpool(_finish, svc, caller, body, selfie, idem, adm, face, identity)
    except BaseException:
        await run_in_threadpool(idem.abandon)
        raise
    finally:
        svc.runner.end_admission(caller.account_id)
    return job_id, False


def cancel(svc: Services, caller: Caller, job_id: str) -> Job:
    """Cancel the caller's generation ``job_id`` and return it as stored now (status ``cancelled``).

    Another account's id is a 404 (probe audited, as everywhere); a generation that has already succeeded,
    failed or been cancelled is a 409 ``job_finished``. The runner stops the work (see
    :meth:`~tastemaker.jobs.JobRunner.cancel`); the refund and the ``generation.cancelled`` audit entry commit
    with the status.
    """
    with svc.store.session() as s:
        owned_job(svc, s, caller, job_id)
    svc.runner.cancel(job_id, request_id=caller.request_id)
    with svc.store.session() as s:
        return s.get_job(caller.account_id, job_id)
