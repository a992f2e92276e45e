"""Rendering pages: the Jinja2 templates, what every page gets, and errors in words a person reads.

Templates autoescape everything. Every page gets ``user`` (or ``None``), ``csrf`` (the token every form
repeats), ``nav`` (the current section) and ``flash`` (one message carried over a redirect in the query
string, from a fixed list, so a link cannot put words in our mouth).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import __version__
from ..api.http_errors import status_of
from ..errors import (
    ConsentRequiredError,
    ImageTooLargeError,
    MultipleFacesError,
    NoFaceError,
    PrivacyBudgetError,
    QuotaExceededError,
    RateLimitedError,
    RequestTooLargeError,
    TastemakerError,
    TooManyJobsError,
)
from .session import WebUser

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: the messages a redirect may carry (``?done=<key>``)
FLASH = {
    "signed_out": "You are signed out.",
    "board_created": "Board created. Its taste profile is learnt the first time you open it.",
    "board_deleted": "Board deleted, with its pins and taste profile.",
    "pins_added": "Pins added; the taste profile will be rebuilt.",
    "pin_saved": "Pin saved; the taste profile will be rebuilt.",
    "pin_removed": "Pin removed; the taste profile will be rebuilt.",
    "profile_imported": "Profile imported.",
    "cancelled": "Generation cancelled; its images went back to your quota.",
    "account_deleted": ("Your account is deleted: its boards, images, profiles and keys are gone, and you are "
                        "signed out."),
    "reacted": "Reaction recorded; the board's taste profile learnt from it.",
}


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["version"] = __version__
    # decimal units, as the API's and the CLI's messages state sizes (52,428,800 bytes is "52 MB" everywhere)
    env.filters["kb"] = lambda n: f"{n / 1e3:.0f} KB" if n < 1e6 else f"{n / 1e6:.0f} MB"
    return env


templates = Jinja2Templates(env=_env())


def page(
    request: Request, name: str, user: WebUser | None, *, nav: str = "", status: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``name`` with what every page needs."""
    done = request.query_params.get("done", "")
    ctx = {"user": user, "csrf": user.csrf_token if user else "", "nav": nav, "flash": FLASH.get(done), **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def wait_words(seconds: float | None) -> str:
    """'in 12 seconds', 'in 3 minutes': how long until trying again helps."""
    if seconds is None:
        return "in a little while"
    s = max(1, math.ceil(seconds))
    if s < 90:
        return f"in {s} second{'s' if s != 1 else ''}"
    if s < 5400:
        return f"in {math.ceil(s / 60)} minutes"
    return f"in {math.ceil(s / 3600)} hours"


def explain(exc: TastemakerError) -> str:
    """An error as a person should read it: what happened and what to do, never JSON."""
    if isinstance(exc, QuotaExceededError):
        return f"This month's image quota is used up. {exc.message}"
    if isinstance(exc, RateLimitedError | TooManyJobsError):
        return f"Too many requests right now. Try again {wait_words(exc.retry_after_s)}. ({exc.message})"
    if isinstance(exc, PrivacyBudgetError):
        return f"The privacy budget for this profile is spent; try again {wait_words(exc.retry_after_s)}."
    if isinstance(exc, NoFaceError):
        return f"No face was found in the selfie: use a photo where your face is clear and well lit. ({exc.message})"
    if isinstance(exc, MultipleFacesError):
        return f"The selfie shows more than one face: crop it to just you. ({exc.message})"
    if isinstance(exc, ImageTooLargeError | RequestTooLargeError):
        return f"That file is too large. {exc.message}"
    if isinstance(exc, ConsentRequiredError):
        return "Tick the consent box: the selfie is only used with your explicit consent."
    return exc.message[:1].upper() + exc.message[1:]


def error_fragment(request: Request, exc: TastemakerError, user: WebUser | None) -> HTMLResponse:
    """An error as a message box (for htmx to swap in next to what caused it) or a whole page."""
    status = status_of(exc)
    name = "_error.html" if request.headers.get("hx-request") else "error.html"
    resp = page(request, name, user, status=status, message=explain(exc), code=exc.code)
    if exc.retry_after_s is not None:
        resp.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return resp


def redirect(url: str, *, done: str | None = None) -> RedirectResponse:
    """A 303 after a form (post/redirect/get), with an optional flash key from :data:`FLASH`."""
    assert done is None or done in FLASH, done
    return RedirectResponse(f"{url}{'&' if '?' in url else '?'}done={done}" if done else url, status_code=303)
