"""``/account``: usage against the tier's limits, the portable taste profile out and in, and deleting the account.

Each action is the API's: usage is ``GET /v1/usage``'s :func:`~tastemaker.api.domain.account.usage`, deleting
is ``DELETE /v1/me``'s :func:`~tastemaker.api.domain.account.delete_account` (a key with every scope only),
and the export is ``POST /v1/styleembed``'s release (:func:`~tastemaker.api.domain.profiles.styleembed`: its
scope, its stricter bucket, counted and audited) put in the portable, signed export format the CLI writes
(:func:`~tastemaker.taste.portable.export_document`, signed with this installation's profile key). On this
server a board's taste vectors leave the store only as that differentially private release, so that is
what an export holds.

Import checks a file with the CLI's own code (:func:`tastemaker.web.portable.verify_export`, which ``/generate``
uses too) and shows what it holds. The API has nowhere to keep an imported profile (a generation takes one
inline), so nothing is stored, and the page says so and links to ``/generate`` with the export option chosen.
The CLI's trust-on-first-use list is not consulted or changed: on a server that list is the operator's, not any
one account's; the page says who signed and whether it was this server.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from ...api.domain import account as account_domain
from ...api.domain import profiles
from ...api.http_errors import status_of
from ...api.keys import SCOPES
from ...errors import CsrfError, InsufficientScopeError, RequestError, TastemakerError
from ...taste.portable import export_document, profile_key
from ...taste.profile import TasteProfile
from ..deps import FormUser, ServicesDep, User, caller, need_scope
from ..portable import IMPORT_MAX_BYTES, describe, verify_export
from ..render import explain, page, redirect
from ..session import SESSION_COOKIE, WebUser, sign_out

router = APIRouter(include_in_schema=False)

def _overview(svc: ServicesDep, user: WebUser) -> dict[str, Any]:
    """What the account page shows: usage, the key in use, and the boards one may export."""
    p = user.principal
    with svc.store.session() as s:
        usage = account_domain.usage(svc, s, p)
        key = s.get_key(user.session.key_id)
        boards = s.list_boards(p.account_id)
        counts = s.pin_counts([b.id for b in boards])
    return {
        "usage": usage,
        "key_prefix": key.prefix if key else "?",
        "key_name": key.name if key else "",
        "scopes": sorted(p.scopes),
        "full_access": set(SCOPES) <= p.scopes,
        "can_export": "styleembed" in p.scopes,
        "boards": [b for b in boards if counts.get(b.id)],
        "counts": counts,
    }


def _account_page(request: Request, svc: ServicesDep, user: WebUser, *, status: int = 200,
                  **ctx: Any) -> HTMLResponse:
    return page(request, "account/account.html", user, nav="account", status=status,
                **_overview(svc, user), **ctx)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, svc: ServicesDep, user: User) -> Response:
    return _account_page(request, svc, user)


# ------------------------------------------------------------------------------------------ export


def export_board(request: Request, svc: ServicesDep, user: WebUser, board_id: str) -> dict[str, Any]:
    """The board's private taste release as a signed portable export (see the module docstring)."""
    p = user.principal
    need_scope(user, "styleembed")
    svc.limiter.hit(p.account_id, p.tier_name, p.tier, "styleembed", prior=[])
    with svc.store.session() as s:
        cached, _ = profiles.styleembed(svc, s, caller(request, user), board_id, fields={"board_id": board_id},
                                        key=None)
    release = json.loads(cached.styleembed_json)
    profile = TasteProfile.from_json(json.dumps(release["profile"]), name=f"board {board_id}")
    return export_document(profile, profile_key(svc.settings.data_dir))


@router.post("/account/export")
def export(
    request: Request, svc: ServicesDep, user: FormUser, board_id: Annotated[str, Form(max_length=32)] = ""
) -> Response:
    try:
        if not board_id:
            raise RequestError("choose a board to export")
        doc = export_board(request, svc, user, board_id)
    except CsrfError:
        raise
    except TastemakerError as exc:
        return _account_page(request, svc, user, status=status_of(exc), export_error=explain(exc),
                             export_board_id=board_id)
    body = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="tastemaker-taste-{board_id}.json"',
        "Cache-Control": "no-store",
    })


# ------------------------------------------------------------------------------------------ import


def check_import(svc: ServicesDep, name: str, data: bytes, allow_unsigned: bool) -> dict[str, Any]:
    """Verify an export (:func:`~tastemaker.web.portable.verify_export`, as ``/generate`` does); what it holds
    and who signed it, for the page (nothing is stored)."""
    found = verify_export(svc, name, data, allow_unsigned=allow_unsigned)
    profile = found.profile
    return {
        "name": name,
        "signer": found.signer,
        "own": found.own,
        "encoder": f"{profile.encoder.get('name', '?')} {profile.encoder.get('version', '')}".strip(),
        "private": bool(profile.privacy),
        "modes": describe(profile),
    }


@router.post("/account/import", response_class=HTMLResponse)
async def import_(request: Request, svc: ServicesDep, user: FormUser) -> Response:
    form = await request.form()  # already parsed (and the CSRF token checked) by FormUser
    upload = form.get("export")
    allow_unsigned = form.get("allow_unsigned") == "yes"
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise RequestError("choose a taste export file (.json) to import")
        data = await upload.read(IMPORT_MAX_BYTES + 1)  # verify_export refuses anything longer
        imported = await run_in_threadpool(check_import, svc, upload.filename, data, allow_unsigned)
    except TastemakerError as exc:
        return await run_in_threadpool(partial(_account_page, request, svc, user, status=status_of(exc),
                                               import_error=explain(exc)))
    return await run_in_threadpool(partial(_account_page, request, svc, user, imported=imported))


# ------------------------------------------------------------------------------------------ delete


@router.post("/account/delete")
def delete(
    request: Request, svc: ServicesDep, user: FormUser, confirm_name: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    p = user.principal
    try:
        if not set(SCOPES) <= p.scopes:
            raise InsufficientScopeError(
                "only a key with every scope may delete the account; sign in with such a key",
                scopes=frozenset(SCOPES) - p.scopes,
            )
        if confirm_name.strip() != p.account_name:
            raise RequestError(f"type the account name exactly ({p.account_name}) to confirm")
    except TastemakerError as exc:
        return _account_page(request, svc, user, status=status_of(exc), delete_error=explain(exc))
    with svc.store.session() as s:
        account_domain.delete_account(svc, s, caller(request, user))
    try:
        sign_out(svc, user)  # normally gone with the account already
    except TastemakerError:
        pass
    resp = redirect("/signin", done="account_deleted")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
