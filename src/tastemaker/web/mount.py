"""The web app on top of the JSON API: ``create_site(settings)`` is what ``tastemaker serve`` and
``tastemaker ui`` run — the API under ``/v1`` exactly as :func:`tastemaker.api.create_app` builds it, and
the pages at ``/``.

The pages call the same domain functions as the API's routes (:mod:`tastemaker.api.domain`), so a board
made in the browser is the board the API returns, with the same limits, audit entries and errors. What
this module adds is the edge a browser needs: the static files, security headers on every page (a
Content-Security-Policy without inline scripts, no framing, no sniffing), and errors rendered as pages or
as message boxes instead of JSON.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.app import create_app
from ..api.settings import ServerSettings
from ..errors import InternalError, NotFoundError, RequestTooLargeError, SessionExpiredError, TastemakerError
from .pages import ROUTERS
from .render import STATIC, error_fragment

log = logging.getLogger("tastemaker.web")

#: what a page may load: only this origin's scripts, styles and images (data:/blob: for previews)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
API_PREFIXES = ("/v1/", "/docs", "/redoc", "/openapi.json", "/healthz")


def is_page(path: str) -> bool:
    """Whether ``path`` belongs to the web app (not the JSON API or its docs)."""
    return not path.startswith(API_PREFIXES)


@dataclass
class LocalLogin:
    """``tastemaker ui``: one local person, no API key to type. The browser is opened at a one-time link
    (``/local-login?token=...``) whose token is held only in this process's memory; following it opens a
    session for the local account's key. Anyone else on the machine needs that link."""

    account_id: str
    key_id: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used: bool = False


class PageEdge:
    """Adds :data:`SECURITY_HEADERS` to every page response (pure ASGI, so streams are not buffered), and
    answers a page's over-large body with a page saying so (the API's edge would answer it in JSON)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers.setdefault(k, v)
            await send(message)

        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            exc = RequestTooLargeError(f"the upload is {int(length) / 1e6:.1f} MB; the limit is "
                                       f"{self.max_body / 1e6:g} MB for one request: send fewer or smaller files")
            await error_fragment(Request(scope), exc, None)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    """Call one of the API's exception handlers (sync or async)."""
    result = handler(request, exc)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Response)
    return result


def _page_errors(app: FastAPI) -> None:
    """Route errors on pages to HTML; the API's JSON handlers keep everything under ``/v1``."""
    api_error = app.exception_handlers[TastemakerError]
    api_http = app.exception_handlers[StarletteHTTPException]
    api_unexpected = app.exception_handlers[Exception]

    async def on_error(request: Request, exc: Exception) -> Response:
        if not is_page(request.url.path):
            return await _call(api_error, request, exc)
        assert isinstance(exc, TastemakerError)
        user = getattr(request.state, "web_user", None)
        if isinstance(exc, SessionExpiredError):
            if request.headers.get("hx-request"):
                return Response(status_code=204, headers={"HX-Redirect": "/signin"})
            if request.method == "GET":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/signin?next={target}", status_code=303)
        return error_fragment(request, exc, user)

    async def on_http(request: Request, exc: Exception) -> Response:
        if not is_page(request.url.path):
            return await _call(api_http, request, exc)
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return await on_error(request, NotFoundError(f"there is no page at {request.url.path}"))
        if exc.status_code == 413:  # a body without a length that grew past the limit while being read
            return await on_error(request, RequestTooLargeError(f"the upload is too large: {exc.detail}"))
        return await _call(api_http, request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if not is_page(request.url.path):
            return await _call(api_unexpected, request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return await on_error(request, InternalError("something went wrong on our side; it has been logged"))

    app.add_exception_handler(TastemakerError, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def create_site(settings: ServerSettings | None = None, *, local: LocalLogin | None = None) -> FastAPI:
    """The JSON API plus the web app (see the module docstring)."""
    app = create_app(settings)
    app.state.local_login = local
    app.add_middleware(PageEdge, max_body=app.state.services.settings.max_request_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    _page_errors(app)
    return app


__all__ = ["CSP", "LocalLogin", "create_site", "is_page"]
