"""Signing in and out: ``/signin`` (an API key, once), ``/signout``, and ``/local-login`` for
``tastemaker ui`` (a one-time link; see :class:`tastemaker.web.mount.LocalLogin`)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...errors import AuthError, RateLimitedError
from ..deps import FormUser, ServicesDep
from ..render import explain, page, redirect
from ..session import (
    SESSION_COOKIE,
    SESSION_TTL,
    SIGNIN_COOKIE,
    check_csrf,
    current_user,
    new_signin_token,
    open_session,
    sign_in,
    sign_out,
)

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//evil.example`` or a full URL): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/boards"
    return target


def _with_session(resp: Response, request: Request, token: str) -> Response:
    resp.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()), httponly=True, samesite="lax",
                    secure=request.url.scheme == "https", path="/")
    resp.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return resp


def _signin_page(request: Request, *, error: str | None = None, status: int = 200, next_: str = "") -> Response:
    token = new_signin_token()
    resp = page(request, "signin.html", None, status=status, error=error, signin_token=token, next=next_)
    resp.set_cookie(SIGNIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/signin")
    return resp


@router.get("/")
def home(request: Request, svc: ServicesDep) -> Response:
    try:
        current_user(svc, request.cookies.get(SESSION_COOKIE))
    except AuthError:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse("/boards", status_code=303)


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "") -> Response:
    return _signin_page(request, next_=_safe_next(next) if next else "")


@router.post("/signin")
def signin(
    request: Request,
    svc: ServicesDep,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_csrf(request.cookies.get(SIGNIN_COOKIE, ""), csrf_token)  # login CSRF: the form must be ours
    client = request.client.host if request.client else "unknown"
    try:
        if not api_key.strip():
            raise AuthError("enter your API key")
        token, _ = sign_in(svc, api_key)
    except RateLimitedError as exc:
        return _signin_page(request, error=explain(exc), status=429, next_=next)
    except AuthError as exc:
        blocked = svc.limiter.hit_client(client, svc.settings.unauthenticated_per_minute)
        if blocked is not None:
            return _signin_page(request, error=explain(blocked), status=429, next_=next)
        return _signin_page(request, error=explain(exc), status=401, next_=next)
    return _with_session(RedirectResponse(_safe_next(next), status_code=303), request, token)


@router.post("/signout")
async def signout(svc: ServicesDep, user: FormUser) -> Response:
    await run_in_threadpool(sign_out, svc, user)
    resp = redirect("/signin", done="signed_out")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/local-login")
def local_login(request: Request, svc: ServicesDep, token: str = "") -> Response:
    """``tastemaker ui``'s one-time link: opens a session for the local account, then the link is spent."""
    local = request.app.state.local_login
    if local is None or local.used or not token or not _same(local.token, token):
        return _signin_page(request, error="This sign-in link is not valid (it works once); start "
                            "`tastemaker ui` again for a new one.", status=401)
    local.used = True
    session_token, _ = open_session(svc, local.account_id, local.key_id)
    return _with_session(RedirectResponse("/boards", status_code=303), request, session_token)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
