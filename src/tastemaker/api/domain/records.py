"""Registering an output rendered on the person's own device (``POST /v1/records``).

On-device mode keeps the selfie and the identity embedding at home: the device fetches the board's taste, renders
with its local engine, and sends here only the outputs the person keeps. Each one gets what a server-made output
gets — this deployment's invisible watermark, a signed C2PA manifest and an entry in the transparency log, under
the deployment's keys — so it verifies like any other. Honestly: the record (and the manifest's record assertion
and ``c2pa.created`` action) says ``rendered_on: device``; the engine, seed, prompt and profile hash in it are what
the device reported, since the service registered the picture and did not watch it being made.

An image that already carries this deployment's mark is refused with 409 ``already_registered``: a marked output
has its record, and a second mark over the first would garble both. (The same picture rendered again — same seed,
same taste — is a new output and gets a record of its own.) The work (decode, mark, fingerprint, sign, log) runs in
the CPU pool. ``Idempotency-Key`` is honoured: the retry gets the first answer, marked image included, for as long
as keys are kept.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from fastapi.concurrency import run_in_threadpool

from ...audit import RECORD_REGISTERED
from ...errors import AlreadyRegisteredError
from ...jobs.tasks import Outcome, guard
from ...store import sha256_hex
from ..deps import Idempotency, Services, fingerprint
from ..schemas import RecordCreate, RecordRegisteredOut
from .common import Caller, Replay, owned_board

ENDPOINT = "POST /v1/records"
#: held while the provenance store is opened: :func:`~tastemaker.pipeline.provenance_for` makes a new store's C2PA
#: signing identity on first use, and two threads doing that at once would each sign with their own
_OPENING = threading.Lock()
_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def task_register(
    data: bytes,
    data_dir: str,
    secret: str | None,
    max_pixels: int,
    max_bytes: int,
    fmt: str | None,
    meta: dict[str, Any],
) -> Outcome:
    """Mark, sign and log one output rendered on a device (in a worker): the marked file and its record."""

    def run() -> dict[str, Any]:
        from ...media import decode_image
        from ...pipeline import provenance_for
        from ...provenance import watermark as wm
        from ...provenance.service import Provenance

        pixels = decode_image(data, name="image", max_pixels=max_pixels, max_bytes=max_bytes)
        with _OPENING:  # two first registrations at once must not both make the store's signing identity
            prov: Provenance = provenance_for(data_dir, secret)
        det = wm.detect(pixels, key=prov.key, search=False)  # a marked output sent back as it is (0.8 s -> ~0.1 s)
        if det.payload is not None and prov.lookup(det.payload) is not None:
            raise AlreadyRegisteredError(
                f"image: this picture already carries this service's mark for record {det.payload:010x} (made or "
                "registered here before): register the unmarked output, once; check this one with POST /v1/verify"
            )
        out_fmt = fmt or _format_of(data)
        stamped = prov.stamp(pixels, fmt=out_fmt, rendered_on="device", **meta)
        h, w = stamped.pixels.shape[:2]
        return {"data": stamped.data, "record": stamped.record.to_dict(), "log_index": stamped.log_index,
                "media_type": _MEDIA[out_fmt], "width": w, "height": h}

    return guard(run)


def _format_of(data: bytes) -> str:
    """The uploaded file's own format where it is one we write (png, jpeg, webp); png otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "png"


def _claim(svc: Services, idem: Idempotency, body: RecordCreate, sha: str) -> Replay | None:
    fields = body.model_dump(exclude={"image"})
    fields["image_sha256"] = sha
    with svc.store.session() as s:
        replay = idem.claim(s, fingerprint(ENDPOINT, fields))
    return None if replay is None else Replay.of(replay)


def _check_board(svc: Services, caller: Caller, board_id: str) -> None:
    with svc.store.session() as s:
        owned_board(svc, s, caller, board_id)


def _finish(
    svc: Services, caller: Caller, body: RecordCreate, upload_sha: str, done: dict[str, Any], idem: Idempotency
) -> dict[str, Any]:
    """The response body, and the audit entry (and the idempotency record) committed with it."""
    record = dict(done["record"])
    record["account"] = caller.account_id  # the record names the account by pseudonym; its owner sees the id
    data: bytes = done["data"]
    doc = RecordRegisteredOut.model_validate({
        "record_id": f"{record['record_id']:010x}",
        "log_index": done["log_index"],
        "record": record,
        "image": {"media_type": done["media_type"], "width": done["width"], "height": done["height"],
                  "bytes": len(data), "sha256": sha256_hex(data), "b64": base64.b64encode(data).decode()},
    }).model_dump(mode="json", by_alias=True)
    with svc.store.session() as s:
        try:
            svc.audit.append(
                s, RECORD_REGISTERED, account_id=caller.account_id,
                objects={"record": doc["record_id"], "board": body.board_id}, request_id=caller.request_id,
                detail={"rendered_on": "device", "upload_sha256": upload_sha, "image_sha256": doc["image"]["sha256"],
                        "profile_sha256": body.profile_hash, "engine": body.engine},
            )
            idem.complete(s, status=201, body=doc, resource_id=doc["record_id"])
            s.commit()
        except BaseException:
            s.rollback()
            raise
    return doc


async def register(
    svc: Services, caller: Caller, body: RecordCreate, image: bytes, key: str | None
) -> dict[str, Any] | Replay:
    """Register one device-rendered output: the board checked, then mark + sign + log in the CPU pool."""
    settings = svc.settings
    if body.board_id is not None:
        await run_in_threadpool(_check_board, svc, caller, body.board_id)
    upload_sha = sha256_hex(image)
    idem = Idempotency(svc, caller.principal, key, ENDPOINT)
    replay = await run_in_threadpool(_claim, svc, idem, body, upload_sha)
    if replay is not None:
        return replay
    meta = dict(prompt=body.prompt, profile_hash=body.profile_hash, engine=body.engine,
                engine_version=body.engine_version, seed=body.seed, account=caller.account_id)
    try:
        done = await svc.runner.call_async(
            task_register, image, str(settings.data_dir), settings.provenance_secret, settings.max_image_pixels,
            settings.max_image_bytes, body.output_format, meta,
        )
        return await run_in_threadpool(_finish, svc, caller, body, upload_sha, done, idem)
    except BaseException:
        await run_in_threadpool(idem.abandon)
        raise
