"""The boards pages: the account's boards, making one (files, a folder, a zip, an engagement file), its pins
edited in place, and its taste profile.

Every change goes through the JSON API's domain layer (:mod:`tastemaker.api.domain.boards`), so a board
made here has the API's limits, idempotency, skipped-file reports and audit entries. What a browser brings
that the API does not take (a folder, a zip, an engagement file) is turned into API uploads by
:mod:`tastemaker.web.board_uploads`.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from ...api.deps import Services
from ...api.domain import boards as domain
from ...api.domain.common import Caller, owned_board
from ...api.domain.feedback import profile_history
from ...api.domain.profiles import ensure_profile
from ...api.http_errors import status_of
from ...api.schemas import PinIn
from ...boards import check_pinned_at
from ...encoders.style import lab_to_rgb8
from ...errors import (
    BoardError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PinsFileError,
    TastemakerError,
)
from ...store import StoreSession
from ...store.records import Board, StoredPin
from ..board_uploads import Sources, first_error, gather
from ..deps import FormUser, ServicesDep, User, caller, need_scope
from ..render import FLASH, explain, page, redirect
from ..session import SESSION_COOKIE, WebUser, current_user
from ..thumbs import thumbnail_response, thumbs

router = APIRouter(include_in_schema=False)

#: audit actions of the edits only the web app offers (the API's own are in :mod:`tastemaker.audit`)
BOARD_PIN_EDITED = "board.pin_edited"
BOARD_PIN_REMOVED = "board.pin_removed"
#: longest side of a pin's thumbnail on the pages
THUMB_PX = 320
#: boards on the list page shown with their first pin as a cover (the rest by name only)
MAX_COVERS = 60
_SHA = re.compile(r"^[0-9a-f]{64}$")
_IDEM = re.compile(r"^[\x21-\x7e]{1,255}$")


def _check_sha(sha256: str) -> str:
    if not _SHA.match(sha256):
        raise NotFoundError(f"there is no pin {sha256[:16]!r} on this board")
    return sha256


# ------------------------------------------------------------------------------------------ what is shown


def lab_hex(lab: list[list[float]]) -> list[str]:
    """Lab colours (a mode's palette) as ``#rrggbb``, the way the API's ``/v1/styleembed`` shows them."""
    if not lab:
        return []
    rgb = lab_to_rgb8(np.asarray(lab, dtype=np.float32).reshape(1, -1, 3)).reshape(-1, 3)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]


@dataclass
class PinView:
    """One pin as its card shows it (and as its edit form is filled)."""

    sha256: str
    image: str
    saves: str
    clicks: str
    dwell_seconds: str
    pinned_at: str
    title: str
    tags: str
    error: str | None = None
    saved: bool = False

    @property
    def id(self) -> str:
        return self.sha256[:16]

    @classmethod
    def of(cls, stored: StoredPin) -> PinView:
        p = stored.pin
        dwell = f"{p.dwell_seconds:g}"
        when = p.pinned_at.strftime("%Y-%m-%dT%H:%M:%SZ") if p.pinned_at else ""
        return cls(p.sha256, p.image, str(p.saves), str(p.clicks), dwell, when, p.title, ", ".join(p.tags))


def _text(form: FormData, key: str, limit: int) -> str:
    value = form.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _create(svc: Services, who: Caller, name: str, src: Sources, key: str | None) -> dict[str, Any]:
    """The API's create: the uploads read and checked, then stored with the board in one transaction."""
    up = domain.read_uploads(svc, src.images, src.meta, f"board {name!r}")
    up.skipped += src.skipped
    with svc.store.session() as s:
        done = domain.create_board(svc, s, who, name=name, up=up, key=key)
    body: dict[str, Any] = done.body
    return body


def _add(svc: Services, who: Caller, board_id: str, src: Sources, key: str | None) -> dict[str, Any]:
    with svc.store.session() as s:
        board = owned_board(svc, s, who, board_id, with_pins=True)
        assert board.pins is not None
        up = domain.read_uploads(svc, src.images, src.meta, "this upload", existing=len(board.pins))
        up.skipped += src.skipped
        done = domain.add_pins(svc, s, who, board, up=up, key=key)
    body: dict[str, Any] = done.body
    return body


def _form_key(form: FormData) -> str | None:
    """The form's idempotency key (a page hands out a fresh one): sending the same form twice (a reload, a
    double click) makes one board."""
    key = _text(form, "idem", 255)
    return key if _IDEM.match(key) else None


def _new_key() -> str:
    return secrets.token_urlsafe(18)


def limits(settings: Any) -> dict[str, int]:
    """The upload limits a board form states (the API's own)."""
    return {"pins": settings.max_pins_per_board, "image_mb": max(1, round(settings.max_image_bytes / 1e6)),
            "request_mb": max(1, round(settings.max_request_bytes / 1e6))}


# ------------------------------------------------------------------------------------------ board list


def _list_page(request: Request, svc: Services, user: WebUser, *, status: int = 200, error: str | None = None,
               name: str = "") -> HTMLResponse:
    with svc.store.session() as s:
        boards = s.list_boards(user.principal.account_id)
        counts = s.pin_counts([b.id for b in boards])
        covers = {}
        for b in boards[:MAX_COVERS]:
            first = s.board_pins(b.id)[:1]
            if first:
                covers[b.id] = first[0].pin.sha256
    return page(request, "boards/list.html", user, nav="boards", status=status, boards=boards, counts=counts,
                covers=covers, error=error, board_name=name, idem=_new_key(), limits=limits(svc.settings))


@router.get("/boards", response_class=HTMLResponse)
def boards_list(request: Request, svc: ServicesDep, user: User) -> Response:
    need_scope(user, "boards:read")
    return _list_page(request, svc, user)


def _refusal(exc: TastemakerError) -> str:
    if isinstance(exc, IdempotencyKeyReusedError):
        return "This form was already sent with other files; it has been reset — choose the files again."
    if isinstance(exc, PinsFileError):
        return exc.message  # it starts with the file's name, as typed
    return explain(exc)


@router.post("/boards", response_class=HTMLResponse)
async def create_board(request: Request, svc: ServicesDep, user: FormUser) -> Response:
    need_scope(user, "boards:write")
    form = await request.form()
    name = _text(form, "name", 200).strip()
    try:
        if not name:
            raise BoardError("give the board a name")
        src = await run_in_threadpool(gather, svc.settings, form)
        body = await run_in_threadpool(_create, svc, caller(request, user), name, src, _form_key(form))
    except TastemakerError as exc:
        if status_of(exc) >= 500:
            raise
        return _list_page(request, svc, user, status=status_of(exc), error=_refusal(exc), name=name)
    finally:
        await form.close()
    if not body.get("skipped"):
        return redirect(f"/boards/{body['id']}", done="board_created")
    return await run_in_threadpool(_board_page, request, svc, user, body["id"], skipped=body["skipped"],
                                   flash=FLASH["board_created"], status=201)


# ------------------------------------------------------------------------------------------ one board


def _board_page(request: Request, svc: Services, user: WebUser, board_id: str, *, status: int = 200,
                skipped: list[dict[str, Any]] | None = None, flash: str | None = None,
                override: PinView | None = None, add_error: str | None = None) -> HTMLResponse:
    with svc.store.session() as s:
        board = owned_board(svc, s, caller(request, user), board_id, with_pins=True)
    assert board.pins is not None
    pins = [override if override is not None and p.pin.sha256 == override.sha256 else PinView.of(p)
            for p in board.pins]
    extra: dict[str, Any] = {"flash": flash} if flash else {}
    return page(request, "boards/board.html", user, nav="boards", status=status, board=board, pins=pins,
                skipped=skipped or [], add_error=add_error, idem=_new_key(), limits=limits(svc.settings),
                **extra)


@router.get("/boards/{board_id}", response_class=HTMLResponse)
def board_page(request: Request, board_id: str, svc: ServicesDep, user: User) -> Response:
    need_scope(user, "boards:read")
    return _board_page(request, svc, user, board_id)


def _viewer(request: Request, svc: ServicesDep) -> WebUser:
    """The signed-in person, for a page's images: not counted in the ``requests`` bucket (a page of 200 pins
    asks for 200 thumbnails at once; like the static files, they are part of the page already counted)."""
    user = current_user(svc, request.cookies.get(SESSION_COOKIE))
    request.state.web_user = user
    return user


@router.get("/boards/{board_id}/pins/{sha256}/image")
def pin_image(
    request: Request, board_id: str, sha256: str, svc: ServicesDep, user: Annotated[WebUser, Depends(_viewer)]
) -> Response:
    """A pin's thumbnail (at most :data:`THUMB_PX` a side), only for the board's owner. The URL names the
    image by its hash, so the browser may keep it (privately) for a day without asking again."""
    need_scope(user, "boards:read")
    _check_sha(sha256)
    with svc.store.session() as s:
        board = owned_board(svc, s, caller(request, user), board_id, with_pins=True)
    assert board.pins is not None
    if not any(p.pin.sha256 == sha256 for p in board.pins):
        raise NotFoundError(f"there is no pin {sha256[:16]!r} on this board")
    return thumbnail_response(request, svc.store.blobs, svc.settings, sha256, THUMB_PX)


@router.post("/boards/{board_id}/pins", response_class=HTMLResponse)
async def add_pins(request: Request, board_id: str, svc: ServicesDep, user: FormUser) -> Response:
    need_scope(user, "boards:write")
    form = await request.form()
    try:
        src = await run_in_threadpool(gather, svc.settings, form)
        body = await run_in_threadpool(_add, svc, caller(request, user), board_id, src, _form_key(form))
    except TastemakerError as exc:
        if status_of(exc) >= 500 or isinstance(exc, NotFoundError):
            raise
        return await run_in_threadpool(_board_page, request, svc, user, board_id, status=status_of(exc),
                                       add_error=_refusal(exc))
    finally:
        await form.close()
    if not body.get("skipped"):
        return redirect(f"/boards/{board_id}", done="pins_added")
    return await run_in_threadpool(_board_page, request, svc, user, board_id, skipped=body["skipped"],
                                   flash=FLASH["pins_added"])


def _count(text: str, label: str, *, whole: bool) -> float:
    raw = text.strip()
    if not raw:
        return 0
    what = "a whole number" if whole else "a number"
    try:
        value = float(raw)
    except ValueError:
        raise BoardError(f"{label} must be {what} of 0 or more, not {raw[:30]!r}") from None
    if not math.isfinite(value) or value < 0 or (whole and value != int(value)):
        raise BoardError(f"{label} must be {what} of 0 or more, not {raw[:30]!r}")
    return value


def parse_pin_edit(image: str, view: PinView) -> dict[str, Any]:
    """The pin fields an edit form sent, checked as the API checks a ``pins`` entry: counts are numbers
    of 0 or more, the date ISO 8601 (UTC when it names no zone, at most a day ahead), tags separated by
    commas. Returns the values for ``update_pin``; a bad one is a :class:`BoardError` naming it."""
    pinned = None
    if view.pinned_at.strip():
        text = view.pinned_at.strip()
        try:
            pinned = check_pinned_at(datetime.fromisoformat(text))
        except ValueError as exc:
            problem = str(exc) if "future" in str(exc) or "range" in str(exc) else "is not an ISO 8601 date"
            raise BoardError(f"pinned at {text[:40]!r}: {problem} (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)") from None
    tags = [t.strip() for t in re.split(r"[,;]", view.tags) if t.strip()]
    try:
        entry = PinIn(image=image, saves=int(_count(view.saves, "saves", whole=True)),
                      clicks=int(_count(view.clicks, "clicks", whole=True)),
                      dwell_seconds=_count(view.dwell_seconds, "dwell seconds", whole=False),
                      pinned_at=pinned, title=view.title, tags=tags)
    except ValidationError as exc:
        raise BoardError(first_error(exc).replace("_", " ")) from None
    pin = entry.to_pin("")
    return {"saves": pin.saves, "clicks": pin.clicks, "dwell_seconds": pin.dwell_seconds,
            "pinned_at": pin.pinned_at, "title": pin.title, "tags": pin.tags}


def _owned_pin(svc: Services, s: StoreSession, who: Caller, board_id: str, sha256: str) -> tuple[Board, StoredPin]:
    board = owned_board(svc, s, who, board_id, with_pins=True)
    assert board.pins is not None
    for p in board.pins:
        if p.pin.sha256 == sha256:
            return board, p
    raise NotFoundError(f"there is no pin {sha256[:16]!r} on this board")


def _pin_fragment(request: Request, user: WebUser, board_id: str, pin: PinView, status: int = 200) -> HTMLResponse:
    return page(request, "boards/_pin.html", user, status=status, board_id=board_id, pin=pin)


Field = Annotated[str, Form(max_length=600)]


@router.post("/boards/{board_id}/pins/{sha256}/edit", response_class=HTMLResponse)
def edit_pin(
    request: Request, board_id: str, sha256: str, svc: ServicesDep, user: FormUser, saves: Field = "",
    clicks: Field = "", dwell_seconds: Field = "", pinned_at: Field = "", title: Field = "", tags: Field = "",
) -> Response:
    """Save a pin's engagement (a new board revision: the profile is rebuilt on next use); a bad value comes
    back next to the pin with 422. htmx gets the pin's card; a plain form the board page."""
    need_scope(user, "boards:write")
    _check_sha(sha256)
    who = caller(request, user)
    htmx = bool(request.headers.get("hx-request"))
    with svc.store.session() as s:
        board, stored = _owned_pin(svc, s, who, board_id, sha256)
        sent = PinView(sha256, stored.pin.image, saves, clicks, dwell_seconds, pinned_at, title, tags)
        try:
            values = parse_pin_edit(stored.pin.image, sent)
        except BoardError as exc:
            sent.error = explain(exc)
            if htmx:
                return _pin_fragment(request, user, board_id, sent, status=422)
            return _board_page(request, svc, user, board_id, status=422, override=sent)
        board = s.update_pin(board, sha256, values)
        svc.audit.append(s, BOARD_PIN_EDITED, account_id=who.account_id, objects={"board": board.id},
                         request_id=who.request_id, detail={"pin_sha256": sha256, "revision": board.revision})
        s.commit()
    assert board.pins is not None
    if not htmx:
        return redirect(f"/boards/{board_id}", done="pin_saved")
    now = next(PinView.of(p) for p in board.pins if p.pin.sha256 == sha256)
    now.saved = True
    return _pin_fragment(request, user, board_id, now)


@router.post("/boards/{board_id}/pins/{sha256}/remove")
def remove_pin(request: Request, board_id: str, sha256: str, svc: ServicesDep, user: FormUser) -> Response:
    """Take a pin off the board, and its image out of the store when nothing else refers to it (under the
    blob lock, as deleting a board does). The last pin stays: delete the board instead."""
    need_scope(user, "boards:write")
    _check_sha(sha256)
    who = caller(request, user)
    blobs = svc.store.blobs
    with svc.store.session() as s:
        board, _ = _owned_pin(svc, s, who, board_id, sha256)
        assert board.pins is not None
        if len(board.pins) == 1:
            raise BoardError("this is the board's only pin; delete the board instead")
        with blobs.lock:
            board = s.remove_pin(board, sha256)
            svc.audit.append(s, BOARD_PIN_REMOVED, account_id=who.account_id, objects={"board": board.id},
                             request_id=who.request_id, detail={"pin_sha256": sha256, "revision": board.revision})
            s.commit()
            for sha in s.unreferenced_blobs([sha256]):
                blobs.delete(sha)
    thumbs(request).forget([sha256])
    return redirect(f"/boards/{board_id}", done="pin_removed")


@router.post("/boards/{board_id}/delete")
def delete_board(request: Request, board_id: str, svc: ServicesDep, user: FormUser) -> Response:
    need_scope(user, "boards:write")
    with svc.store.session() as s:
        shas = [p.pin.sha256 for p in s.board_pins(owned_board(svc, s, caller(request, user), board_id).id)]
        domain.delete_board(svc, s, caller(request, user), board_id)
    thumbs(request).forget(shas)
    return redirect("/boards", done="board_deleted")


# ------------------------------------------------------------------------------------------ taste


@dataclass
class ModeView:
    """One mode of the taste profile as the taste page shows it."""

    name: str
    percent: float
    n_pins: int
    swatches: list[tuple[str, float]]
    medoids: list[StoredPin]
    tags: list[str]


def _change(event: Any) -> str:
    """What made a profile version, in words."""
    if event.kind == "built":
        return "Learnt from the board's pins"
    if event.kind == "rebuilt":
        return f"Rebuilt after the pins changed; {event.replayed or 0} reaction(s) carried over"
    what = {"like": "Liked", "save": "Saved", "skip": "Skipped", "hide": "Hid"}.get(
        str(event.action), str(event.action or "Reacted").capitalize())
    how = "the mode it was made in" if event.mode_source == "generation" else "the nearest mode"
    where = f" (mode {event.mode}: {how})"
    dwell = f", looked at for {event.dwell_seconds:g} s" if event.dwell_seconds else ""
    return f"{what} a generated image{where if event.mode else ''}{dwell}"


@router.get("/boards/{board_id}/taste", response_class=HTMLResponse)
def taste_page(request: Request, board_id: str, svc: ServicesDep, user: User) -> Response:
    """The board's taste profile (built in the CPU pool on first view, then cached per board revision) and
    the history of what feedback changed."""
    need_scope(user, "boards:read")
    who = caller(request, user)
    with svc.store.session() as s:
        board = owned_board(svc, s, who, board_id, with_pins=True)
        cached = ensure_profile(svc, s, board)
        s.commit()
        history = profile_history(svc, s, who, board_id)
    assert board.pins is not None
    by_id = {p.pin.id: p for p in board.pins}
    profile = cached.profile()
    total = sum(m.weight for m in profile.modes) or 1.0
    modes = [
        ModeView(
            name=m.name, percent=round(100 * m.weight / total, 1), n_pins=m.n_pins,
            swatches=list(zip(lab_hex(m.look.palette), m.look.palette_weights, strict=False)),
            medoids=[by_id[i] for i in m.medoids if i in by_id],
            tags=[t for t, _ in sorted(m.tags.items(), key=lambda kv: -kv[1])[:8]],
        )
        for m in sorted(profile.modes, key=lambda m: -m.weight)
    ]
    versions = [(v, _change(v)) for v in reversed(history.versions)]
    return page(request, "boards/taste.html", user, nav="boards", board=board, modes=modes, versions=versions,
                profile_hash=cached.profile_hash, n_pins=len(board.pins))


__all__ = ["BOARD_PIN_EDITED", "BOARD_PIN_REMOVED", "lab_hex", "parse_pin_edit", "router"]
