"""``POST /v1/verify``: where an image came from — C2PA manifest, watermark, record, inclusion proof.

**Auth: required, any tier, its own rate-limit bucket** (``verify_per_minute``). A provenance check is in the
public interest, so no tier is excluded; but each check costs a watermark search on the CPU pool, so it is
metered per account like everything else, separately from the request bucket so verifying never starves an
account's other calls (and vice versa).

The verdict — ``verified``, ``not_ours``, ``tampered``, ``forged`` (the watermark names a record but the picture
is another one: a copied mark) or ``untrusted`` (a manifest claiming to be ours, signed outside the trust list) —
is data, so all are a 200; only bad input is an error (413 oversize, 415 not JSON/multipart or an unsupported
image format, 422 unreadable image or bad base64). Records name accounts only by the store's keyed pseudonym;
the owner sees their own account id, anyone else ``redacted:<hash>`` (a keyed hash: the same account always
gets the same one, and it cannot be turned back into the id or checked against a guess). Everything else in a
record is already keyed hashes and ids.

The response carries the log's signed tree head and consistency proofs. A client that kept a tree head from an
earlier answer passes its size and root (``since_size``, ``since_root``): the log must prove that it still
extends it, or the verdict is ``tampered`` (a rewritten history).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...audit import PROVENANCE_VERIFIED
from ...errors import IncompleteTreeHeadError, LedgerError, ProofError, RequestError
from ...jobs import task_verify
from ...store import sha256_hex
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


def public_report(
    report: dict[str, Any], principal: Principal, secret: str, image_sha256: str, pseudonym: str | None = None
) -> dict[str, Any]:
    """The report as the caller may see it: their own pseudonym shown as their id, anyone else's redacted.

    ``pseudonym`` is how the provenance store names the caller's account in records (older records hold
    the raw id, which is recognised too).
    """
    mine = {principal.account_id} | ({pseudonym} if pseudonym else set())
    record = report.get("record")
    owner = None
    if record is not None:
        owner = "you" if record.get("account") in mine else "another_account"
    for rec in (record, report["c2pa"].get("record")):
        if isinstance(rec, dict) and isinstance(rec.get("account"), str):
            rec["account"] = (
                principal.account_id if rec["account"] in mine else redact_account(secret, rec["account"])
            )
    return {
        "verdict": report["verdict"],
        "image_sha256": image_sha256,
        "record_owner": owner,
        **{k: report[k] for k in ("c2pa", "watermark", "record", "match", "log", "problems")},
        **({"media": report["media"]} if "media" in report else {}),
    }


def account_pseudonym(data_dir: str, secret: str | None, account_id: str) -> str:
    """How the provenance log names an account (a keyed hash: the log never holds account ids)."""
    from ...pipeline import provenance_for

    return provenance_for(data_dir, secret).pseudonym(account_id)


def _check_since(doc: dict[str, Any], data_dir: str, secret: str | None, size: int, root_hex: str) -> None:
    """The log must extend the tree (size, root) the caller saw before; otherwise the verdict is ``tampered``."""
    from ...pipeline import provenance_for

    log = doc["log"]
    ledger = provenance_for(data_dir, secret).ledger
    try:
        root = bytes.fromhex(root_hex)
        head = ledger.tree_head()
        proof = ledger.prove_extends(size, root, head)
        log["consistency"] = {"from_size": size, "from_root": root_hex, "to_size": head.size,
                              "proof": [p.hex() for p in proof], "ok": True}
        log["tree_head"], log["tree_size"], log["root"] = head.to_note(), head.size, head.root.hex()
    except (ValueError, ProofError, LedgerError) as exc:
        log["consistency"] = {"from_size": size, "from_root": root_hex, "to_size": log.get("tree_size"),
                              "proof": [], "ok": False}
        why = exc.message if isinstance(exc, ProofError | LedgerError) else str(exc)
        doc["problems"].append(f"the log is not consistent with the tree head you saved (size {size}): {why}")
        if doc["verdict"] in ("verified", "untrusted", "not_ours"):
            doc["verdict"] = "tampered"


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
    summary="Where an image came from: C2PA manifest, watermark, fingerprint, provenance record and log proofs",
    description=(
        'Send the image as a multipart file part named `image`, or as JSON `{"image": "<base64>"}`. '
        "Works on copies whose metadata was stripped (the invisible watermark alone resolves the record) and on "
        "copies whose mark was stripped or replaced (the picture's fingerprint finds it). The verdict is in the "
        "body, always with status 200: `verified`, `not_ours`, `tampered`, `forged` (the mark names a record but "
        "the picture is not that record's: a copied mark) or `untrusted` (a manifest claiming to be ours, signed "
        "by a certificate outside the trust list). The log part carries the signed tree head and consistency "
        "proofs; pass `since_size` and `since_root` from a tree head you kept to have the log prove it still "
        "extends it. Any tier may verify, within its own per-minute `verify` limit. Another account's id is "
        "redacted."
    ),
    responses=errors(400, 413, 415),
    openapi_extra=VERIFY_BODY,
)
async def verify(
    request: Request,
    svc: ServicesDep,
    principal: VerifyAccount,
    since_size: int | None = Query(None, ge=0, le=2**62, description="size of a tree head you kept"),
    since_root: str | None = Query(
        None, pattern="^[0-9a-f]{64}$", description="root (hex) of that tree head; required with since_size"
    ),
) -> JSONResponse:
    settings = svc.settings
    if (since_size is None) != (since_root is None):
        raise IncompleteTreeHeadError(
            "since_size and since_root go together: both from the same tree head, or neither"
        )
    with svc.verify_pool.claim(principal.account_id):  # verify's own pool: a place before the body is read
        _, data = await read_image_body(request, VerifyIn, max_bytes=settings.max_image_bytes)
        if data is None:  # pragma: no cover - VerifyIn requires the image
            raise RequestError("image: missing")
        report = await svc.verify_pool.run(
            task_verify, data, str(settings.data_dir), settings.max_image_pixels, settings.max_image_bytes,
            settings.verify_max_pixels, settings.verify_decode_side, settings.provenance_secret,
        )
    pseudonym = await run_in_threadpool(account_pseudonym, str(settings.data_dir), settings.provenance_secret,
                                        principal.account_id)
    doc = public_report(report, principal, settings.secret_key.get_secret_value(), sha256_hex(data), pseudonym)
    if since_size is not None and since_root is not None:
        await run_in_threadpool(_check_since, doc, str(settings.data_dir), settings.provenance_secret, since_size,
                                since_root)
    await run_in_threadpool(_audit, svc, request, principal, doc)
    return JSONResponse(doc)
