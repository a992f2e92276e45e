"""``/verify``: drop any image and learn, in words, where it came from — signed in or not.

The check is the JSON API's (:mod:`tastemaker.api.routes.verify`): the same body parser and limits, the same
task in the verify pool (a place claimed before the body is read), the same report with other accounts'
ids redacted, and an audit entry with hashes only. What differs is who may ask: a provenance check is in
the public interest, so a visitor without an account may verify too. A signed-in person whose key has the
``verify`` scope spends their account's ``verify`` bucket; anyone else (signed out, or a key without that
scope) spends their address's ``unauthenticated_per_minute`` and holds at most the pool's per-account number
of checks per address — so the page cannot be used to flood the pool.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from ...api.deps import Principal, Services, client_address, request_id
from ...api.http_errors import status_of
from ...api.routes.uploads import read_image_body
from ...api.routes.verify import account_pseudonym, public_report
from ...api.settings import TierLimits
from ...audit import PROVENANCE_VERIFIED
from ...errors import AuthError, CsrfError, RateLimitedError, RequestError, TastemakerError
from ...jobs import task_verify
from ...store import sha256_hex
from ..deps import ServicesDep
from ..render import explain, page
from ..session import CSRF_HEADER, SESSION_COOKIE, WebUser, check_csrf, current_user

router = APIRouter(include_in_schema=False)

#: a visitor without an account: matches no record's account, so every record's account is redacted
_NOBODY = Principal(account_id="", account_name="", tier_name="", key_id="",
                    tier=TierLimits(requests_per_minute=1, styleembed_per_minute=1, images_per_month=0,
                                    max_active_jobs=1, verify_per_minute=1),
                    scopes=frozenset())


class VerifyForm(BaseModel):
    """The page's multipart form: the image part and the CSRF token (a signed-in person's form repeats it)."""

    model_config = ConfigDict(extra="forbid")

    image: str
    csrf_token: str = ""


def _optional_user(request: Request, svc: Services) -> WebUser | None:
    """The signed-in person, or None for a visitor (an ended session is a visitor here, not an error)."""
    try:
        user = current_user(svc, request.cookies.get(SESSION_COOKIE))
    except AuthError:
        return None
    p = user.principal
    svc.limiter.hit(p.account_id, p.tier_name, p.tier, "requests", prior=[])
    request.state.account_id = p.account_id
    request.state.web_user = user
    return user


def _admit(request: Request, svc: Services, user: WebUser | None) -> tuple[Principal, str]:
    """Who pays for this check: (the principal the report is shown to, the verify pool's owner key).

    Raises the 429 that says how long to wait when the bucket is empty.
    """
    if user is not None and "verify" in user.principal.scopes:
        p = user.principal
        svc.limiter.hit(p.account_id, p.tier_name, p.tier, "verify", prior=[])
        return p, p.account_id
    address = client_address(request)
    blocked = svc.limiter.hit_client(address, svc.settings.unauthenticated_per_minute)
    if blocked is not None:
        raise RateLimitedError(
            f"at most {svc.settings.unauthenticated_per_minute} checks a minute from one address without an "
            "account that may verify",
            retry_after_s=blocked.retry_after_s or 60.0,
        )
    return _NOBODY, f"client:{address}"


def _audit(svc: Services, request: Request, principal: Principal, doc: dict[str, Any]) -> None:
    """The API's audit entry for a check (hashes only); a visitor's names no account."""
    record = doc.get("record") or {}
    with svc.store.session() as s:
        svc.audit.record(
            s,
            PROVENANCE_VERIFIED,
            account_id=principal.account_id or None,
            objects={"record": f"{record['record_id']:010x}" if record else None},
            request_id=request_id(request),
            outcome=doc["verdict"],
            detail={"image_sha256": doc["image_sha256"], "record_owner": doc["record_owner"], "via": "web"},
        )


async def check_image(request: Request, svc: Services, user: WebUser | None) -> dict[str, Any]:
    """Run the API's provenance check on the uploaded image: the report as the person may see it."""
    settings = svc.settings
    principal, owner = await run_in_threadpool(_admit, request, svc, user)
    with svc.verify_pool.claim(owner):  # a place before the body is read, as the API
        form, data = await read_image_body(request, VerifyForm, max_bytes=settings.max_image_bytes,
                                           missing="choose an image file to check", max_fields=4)
        if user is not None:
            check_csrf(user.csrf_token, request.headers.get(CSRF_HEADER) or form.csrf_token)
        if not data:
            raise RequestError("the file is empty: choose an image file to check")
        report = await svc.verify_pool.run(
            task_verify, data, str(settings.data_dir), settings.max_image_pixels, settings.max_image_bytes,
            settings.verify_max_pixels, settings.verify_decode_side, settings.provenance_secret,
        )
    pseudonym = None
    if principal.account_id:
        pseudonym = await run_in_threadpool(account_pseudonym, str(settings.data_dir), settings.provenance_secret,
                                            principal.account_id)
    doc = public_report(report, principal, settings.secret_key.get_secret_value(), sha256_hex(data), pseudonym)
    await run_in_threadpool(_audit, svc, request, principal, doc)
    return doc


# ------------------------------------------------------------------------------------------ words


def when(stamp: str | None) -> str:
    """'1 December 2026 at 10:36 UTC' from a record's RFC 3339 time."""
    if not stamp:
        return "an unknown date"
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return f"{t.day} {t:%B %Y} at {t:%H:%M} UTC"


def verdict_words(doc: dict[str, Any]) -> dict[str, str]:
    """The verdict as a headline, a sentence that explains it, and its tone (ok / bad / neutral)."""
    record = doc.get("record") or {}
    made = when(record.get("created_at"))
    whose = {"you": " for you", "another_account": " for another account"}.get(doc.get("record_owner") or "", "")
    verdict = doc["verdict"]
    if verdict == "verified" and record.get("rendered_on") == "device":
        return {"tone": "ok", "title": f"Registered with this Tastemaker server on {made}",
                "text": f"This picture was rendered on a person's own device and registered here{whose}: this server "
                        "marked, signed and logged it (it did not watch it being made), its record is in our public "
                        "log, and the picture matches what the record describes."}
    if verdict == "verified":
        return {"tone": "ok", "title": f"Made by this Tastemaker server on {made}",
                "text": f"This picture was generated here{whose}: its record is in our public log, and the picture "
                        "matches what the record describes."}
    if verdict == "not_ours":
        return {"tone": "neutral", "title": "Not made here",
                "text": "No watermark, content credentials or record of ours was found in this picture. It was not "
                        "generated by this server (or it was changed so much that nothing of ours survives)."}
    if verdict == "tampered":
        return {"tone": "bad", "title": "Altered after it was made",
                "text": f"We made an image with this mark on {made}, but what you uploaded no longer checks out: "
                        "its content credentials, its record or our log do not agree with it (see the problems "
                        "below)." if record else
                        "Something about this picture or our log does not check out (see the problems below)."}
    if verdict == "forged":
        return {"tone": "bad", "title": "A copied mark: not the picture we made",
                "text": f"This file carries the mark of an image we made on {made}, but the picture itself is a "
                        "different one. Someone copied our mark onto another picture."}
    return {"tone": "bad", "title": "Claims to come from here, but we did not sign it",
            "text": "The picture carries content credentials that say they are ours, signed with a certificate this "
                    "server does not trust."}


def c2pa_words(c2pa: dict[str, Any]) -> str:
    """The content credentials (C2PA manifest) in a sentence."""
    state = c2pa.get("state")
    if state == "absent":
        return ("No content credentials (C2PA manifest) in the file. That is normal for a copy whose metadata was "
                "stripped, e.g. by a social network; the watermark is inside the pixels.")
    who = "signed by this server (trusted)" if c2pa.get("trusted") else "signed by a certificate we do not trust"
    if state == "valid":
        return f"Content credentials (C2PA manifest) present and valid, {who}."
    detail = f" ({c2pa['validation_state']})" if c2pa.get("validation_state") else ""
    return f"Content credentials (C2PA manifest) present but they do not validate{detail}: {who}."


def proof_words(log: dict[str, Any]) -> str | None:
    """What the inclusion proof proves, in one sentence (None without a record in the log)."""
    if log.get("index") is None or not log.get("tree_size"):
        return None
    if log.get("proof_ok"):
        return (f"The record is entry {log['index'] + 1} of {log['tree_size']} in our append-only public log, and the "
                "proof hashes it up to the signed root below: the record was logged and has not been changed since, "
                "or the root would not match.")
    return "The record names a place in our log, but the inclusion proof does not check out (see the problems)."


def _page(request: Request, user: WebUser | None, name: str = "verify/verify.html", *, status: int = 200,
          **ctx: Any) -> HTMLResponse:
    s = request.app.state.services.settings
    return page(request, name, user, nav="verify", status=status,
                max_bytes=s.max_image_bytes, per_minute=s.unauthenticated_per_minute, **ctx)


@router.get("/verify", response_class=HTMLResponse)
def verify_form(request: Request, svc: ServicesDep) -> Response:
    return _page(request, _optional_user(request, svc))


@router.post("/verify", response_class=HTMLResponse)
async def verify(request: Request, svc: ServicesDep) -> Response:
    user = await run_in_threadpool(_optional_user, request, svc)
    try:
        doc = await check_image(request, svc, user)
    except CsrfError:
        raise  # a form from elsewhere: the page error handler says so
    except TastemakerError as exc:  # too many, too large, not an image: said next to the file field
        resp = _page(request, user, status=status_of(exc), error=explain(exc))
        if exc.retry_after_s is not None:
            resp.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return resp
    return _page(request, user, "verify/result.html", doc=doc, verdict=verdict_words(doc),
                c2pa=c2pa_words(doc["c2pa"]), proof=proof_words(doc["log"]),
                made=when((doc.get("record") or {}).get("created_at")))
