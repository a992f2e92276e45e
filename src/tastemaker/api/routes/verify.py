"""``POST /v1/verify``: where an image came from — C2PA manifest, watermark, record, inclusion proof.

**Auth: required, any tier, its own rate-limit bucket** (``verify_per_minute``). A provenance check is in the
public interest, so no tier is excluded; but each check costs a watermark search on the CPU pool, so it is
metered per account like everything else, separately from the request bucket so verifying never starves an
account's other calls (and vice versa).

The verdict — ``verified``, ``not_ours`` or ``tampered`` — is data, so all three are a 200; only bad input is
an error (413 oversize, 415 not JSON/multipart or an unsupported image format, 422 unreadable image or bad
base64). A record says which account made the image; for another account's image that id is **redacted** to
``redacted:<hash>`` (a keyed hash: the same account always gets the same one, and it cannot be turned back
into the id or checked against a guess). Everything else in a record is already hashes and ids.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...audit import PROVENANCE_VERIFIED
from ...errors import RequestError
from ...store import sha256_hex
from ...worker import task_verify
from ..deps import Principal, Services, ServicesDep, VerifyAccount, request_id
from ..schemas import VerifyIn, VerifyOut
from .common import AUTH_ERRORS, errors
from .uploads import image_body_schema, read_image_body

router = APIRouter(tags=["provenance"], responses=AUTH_ERRORS)

_REDACT_LABEL = b"tastemaker.verify.account.v1"

VERIFY_BODY = image_body_schema(
    "VerifyIn",
    {"image": {"type": "string", "format": "binary", "description": "the image file (PNG, JPEG, WebP, ...)"}},
    ["image"],
)


def redact_account(secret: str, account: str) -> str:
    """``redacted:`` + 16 hex digits of an HMAC of the account id under the server secret."""
    key = hmac.new(secret.encode(), _REDACT_LABEL, hashlib.sha256).digest()
    return "redacted:" + hmac.new(key, account.encode(), hashlib.sha256).hexdigest()[:16]


def public_report(report: dict[str, Any], principal: Principal, secret: str, image_sha256: str) -> dict[str, Any]:
    """The report as the caller may see it: another account's id redacted, wherever a record carries it."""
    record = report.get("record")
    owner = None
    if record is not None:
        owner = "you" if record.get("account") == principal.account_id else "another_account"
    for rec in (record, report["c2pa"].get("record")):
        if isinstance(rec, dict) and isinstance(rec.get("account"), str) and rec["account"] != principal.account_id:
            rec["account"] = redact_account(secret, rec["account"])
    return {
        "verdict": report["verdict"],
        "image_sha256": image_sha256,
        "record_owner": owner,
        **{k: report[k] for k in ("c2pa", "watermark", "record", "log", "problems")},
    }


def _audit(svc: Services, request: Request, principal: Principal, doc: dict[str, Any]) -> None:
    record = doc.get("record") or {}
    with svc.store.session() as s:
        svc.audit.record(
            s,
            PROVENANCE_VERIFIED,
            account_id=principal.account_id,
            objects={"record": f"{record['record_id']:010x}" if record else None},
            request_id=request_id(request),
            outcome=doc["verdict"],
            detail={"image_sha256": doc["image_sha256"], "record_owner": doc["record_owner"]},
        )


@router.post(
    "/v1/verify",
    response_model=VerifyOut,
    summary="Where an image came from: C2PA manifest, watermark, provenance record and its inclusion proof",
    description=(
        'Send the image as a multipart file part named `image`, or as JSON `{"image": "<base64>"}`. '
        "Works on copies whose metadata was stripped (the invisible watermark alone resolves the record). "
        "The verdict is in the body — `verified`, `not_ours` or `tampered`, all with status 200. Any tier may "
        "verify, within its own per-minute `verify` limit. Another account's id in a record is redacted."
    ),
    responses=errors(413, 415),
    openapi_extra=VERIFY_BODY,
)
async def verify(request: Request, svc: ServicesDep, principal: VerifyAccount) -> JSONResponse:
    settings = svc.settings
    _, data = await read_image_body(request, VerifyIn, max_bytes=settings.max_image_bytes)
    if data is None:  # pragma: no cover - VerifyIn requires the image
        raise RequestError("image: missing")
    report = await svc.runner.call_async(
        task_verify, data, str(settings.data_dir), settings.max_image_pixels, settings.max_image_bytes
    )
    doc = public_report(report, principal, settings.secret_key.get_secret_value(), sha256_hex(data))
    await run_in_threadpool(_audit, svc, request, principal, doc)
    return JSONResponse(doc)
