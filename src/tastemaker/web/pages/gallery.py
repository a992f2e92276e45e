"""The gallery: every generation of the account, newest first, with its settings ("Use these settings" goes
back to the form), downloads, and reactions (save / like / skip / hide) that teach the board's taste profile
through the API's feedback (:func:`tastemaker.api.domain.feedback.react`).

A reaction is not stored twice: the one shown under an image is read back from the board's profile versions,
whose events name the generation, the image and the action. An image the person hid is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from ...api.domain import feedback
from ...api.schemas import FeedbackAction, FeedbackIn
from ...errors import RequestError
from ...store import StoreSession
from ...store.records import Job
from ..deps import FormUser, ServicesDep, User, caller, need_scope
from ..render import page, redirect

router = APIRouter(include_in_schema=False)

#: generations per gallery page
PAGE = 12
#: the reactions, in the order their buttons are shown, with their words
ACTIONS: dict[str, str] = {"save": "Save", "like": "Like", "skip": "Skip", "hide": "Hide"}
assert set(ACTIONS) == set(FeedbackAction.__args__), "a button for every reaction the API takes"  # type: ignore[attr-defined]


def board_names(s: StoreSession, account_id: str) -> dict[str, str]:
    """The account's boards by id (the gallery names them; a deleted board is simply absent)."""
    return {b.id: b.name for b in s.list_boards(account_id)}


def reactions_of(s: StoreSession, jobs: Iterable[Job]) -> dict[tuple[str, int], str]:
    """The latest reaction to each image of ``jobs``: (generation id, image index) -> action, read from the
    profile versions of the boards they were made from."""
    wanted = {j.id for j in jobs}
    boards = {j.board_id for j in jobs if j.board_id}
    found: dict[tuple[str, int], str] = {}
    for board_id in sorted(b for b in boards if b):
        for v in s.profile_versions(board_id):  # oldest first: a later reaction replaces an earlier one
            ev = v.event
            gid, k, action = ev.get("generation_id"), ev.get("image_index"), ev.get("action")
            if gid in wanted and isinstance(k, int) and isinstance(action, str):
                found[(gid, k)] = action
    return found


def _before(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise RequestError("before: not a date and time (follow the gallery's own 'Older' link)") from None


@router.get("/gallery", response_class=HTMLResponse)
def gallery(request: Request, svc: ServicesDep, user: User, before: str = "") -> HTMLResponse:
    """The account's generations, newest first, :data:`PAGE` at a time (``?before=`` the last one shown)."""
    need_scope(user, "generate")
    account = user.principal.account_id
    with svc.store.session() as s:
        jobs = s.list_jobs(account, limit=PAGE + 1, before=_before(before[:64]))
        names = board_names(s, account)
        reacted = reactions_of(s, jobs[:PAGE])
    older = jobs[PAGE - 1].created_at.isoformat() if len(jobs) > PAGE else None
    return page(request, "gallery/index.html", user, nav="gallery", jobs=jobs[:PAGE], board_names=names,
                reactions=reacted, older=older, first=not before, actions=ACTIONS,
                back=f"/gallery?before={quote(before)}" if before else "/gallery")


def _back(target: str, generation_id: str) -> str:
    """Where a plain (non-htmx) reaction returns: the gallery or the job page, never another site."""
    if target.startswith("/gallery") and "//" not in target and "\\" not in target:
        return target
    return f"/generations/{generation_id}"


@router.post("/generations/{generation_id}/images/{k}/react")
async def react(
    request: Request,
    svc: ServicesDep,
    user: FormUser,
    generation_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    k: Annotated[int, PathParam(ge=0, le=63)],
    action: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Record a reaction exactly as ``POST /v1/feedback`` does; htmx gets the image's card back (or a note
    that it is hidden), a plain form goes back where it came from."""
    need_scope(user, "boards:write")
    if action not in ACTIONS:
        raise RequestError(f"action: one of {', '.join(ACTIONS)}")
    body = FeedbackIn(action=action, generation_id=generation_id, image_index=k)
    await feedback.react(svc, caller(request, user), body, None, None)
    if not request.headers.get("hx-request"):
        return redirect(_back(next, generation_id), done="reacted")
    with svc.store.session() as s:
        job = s.get_job(user.principal.account_id, generation_id)
    image = next_image(job.images, k)
    return page(request, "gallery/_image.html", user, job=job, im=image, reaction=action, actions=ACTIONS,
                back=next, just_reacted=True)


def next_image(images: Sequence[Any], k: int) -> Any:
    """Image ``k`` of a job's images (the reaction succeeded, so it exists)."""
    return next(im for im in images if im.k == k)


__all__ = ["ACTIONS", "PAGE", "board_names", "reactions_of", "router"]
