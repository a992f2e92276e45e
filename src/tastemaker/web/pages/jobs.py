"""The job pages: a generation's page with live progress (``/generations/{id}``, its server-sent events over the
session instead of a key), cancelling it, its images (full size, as a download, or as the pages' thumbnail) and
all of them as a zip. Everything is for the generation's owner only; another account's id is a 404.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ...api.domain.common import owned_job
from ...api.domain.feedback import output_image
from ...api.domain.generations import cancel
from ...api.routes.generations import image_response, job_events
from ...jobs.watch import STAGES
from ...store.records import ACTIVE, Job, JobImage
from ..deps import FormUser, ServicesDep, User, caller, need_scope
from ..render import page, redirect
from ..session import WebUser
from ..thumbs import thumbnail_response
from .gallery import ACTIONS, board_names, reactions_of

router = APIRouter(include_in_schema=False)

JobId = Annotated[str, PathParam(min_length=1, max_length=64)]
ImageIndex = Annotated[int, PathParam(ge=0, le=63)]


#: each stage of a job in words (the keys are the runner's stages)
STAGE_WORDS = {
    "queued": "Waiting in the queue",
    "starting": "Starting",
    "identity": "Reading your face",
    "profile": "Reading the taste profile",
    "render": "Rendering",
    "provenance": "Watermarking and signing",
    "store": "Saving",
    "done": "Done",
}
assert set(STAGE_WORDS) == set(STAGES), "every runner stage needs its words"

STATUS_WORDS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def stage_words(status: str, progress: dict[str, Any]) -> str:
    """What the job is doing now, for a person ("Rendering image 2 of 4")."""
    if status != "running" and status != "queued":
        return STATUS_WORDS.get(status, status)
    stage = str(progress.get("stage", status))
    words = STAGE_WORDS.get(stage, stage.capitalize())
    done, total = progress.get("done", 0), progress.get("total", 0)
    if stage == "render" and total:
        words += f" image {min(done + 1, total)} of {total}"
    return words


@router.get("/generations/{generation_id}", response_class=HTMLResponse)
def job_page(request: Request, svc: ServicesDep, user: User, generation_id: JobId) -> HTMLResponse:
    """One generation: live progress while it runs (``generate.js``), then its images with reactions."""
    need_scope(user, "generate")
    c = caller(request, user)
    with svc.store.session() as s:
        job = owned_job(svc, s, c, generation_id)
        names = board_names(s, c.account_id)
        reacted = reactions_of(s, [job])
    return page(
        request, "generate/job.html", user, nav="generate", job=job, board_name=names.get(job.board_id or ""),
        reactions=reacted, active=job.status in ACTIVE, words=stage_words(job.status, job.progress),
        fraction=float(job.progress.get("fraction", 0.0)), actions=ACTIONS, back=f"/generations/{job.id}",
    )


def _owned_job_id(request: Request, svc: ServicesDep, user: User, generation_id: JobId) -> str:
    """Ownership is settled before the stream starts, so another account's id is a plain 404 page."""
    need_scope(user, "generate")
    with svc.store.session() as s:
        return owned_job(svc, s, caller(request, user), generation_id).id


@router.get("/generations/{generation_id}/events", response_class=EventSourceResponse)
async def job_events_page(
    request: Request, svc: ServicesDep, user: User, job_id: Annotated[str, Depends(_owned_job_id)]
) -> AsyncIterator[ServerSentEvent]:
    """The API's event stream (the same events, from the same loop), with the words the page shows; the
    session cookie stands in for the bearer key an EventSource cannot send."""
    n = 0
    async for event, doc in job_events(request, svc, caller(request, user), job_id):
        n += 1
        data = {"status": doc["status"], "fraction": doc["progress"]["fraction"],
                "words": stage_words(doc["status"], doc["progress"]), "images": len(doc["images"])}
        yield ServerSentEvent(event=event, data=data, id=str(n))


@router.post("/generations/{generation_id}/cancel")
async def cancel_job(request: Request, svc: ServicesDep, user: FormUser, generation_id: JobId) -> Response:
    """Cancel a queued or running generation (its images go back to the quota); an ended one is a 409 page."""
    need_scope(user, "generate")
    job = await run_in_threadpool(cancel, svc, caller(request, user), generation_id)
    return redirect(f"/generations/{job.id}", done="cancelled")


def _image(
    request: Request, svc: ServicesDep, user: WebUser, generation_id: str, k: int, what: str
) -> tuple[Job, JobImage]:
    need_scope(user, "generate")
    with svc.store.session() as s:
        return output_image(svc, s, caller(request, user), generation_id, k, what=what)


@router.get("/generations/{generation_id}/images/{k}")
def job_image(
    request: Request, svc: ServicesDep, user: User, generation_id: JobId, k: ImageIndex, download: bool = False,
    thumb: bool = False,
) -> Response:
    """One output image for its owner, with the API's headers; ``?download=1`` saves it instead of showing it,
    ``?thumb=1`` is the small JPEG the gallery and job pages show (the link opens the real image)."""
    job, image = _image(request, svc, user, generation_id, k, "images exist")
    if thumb:
        return thumbnail_response(request, svc.store.blobs, svc.settings, image.sha256, OUTPUT_THUMB_PX)
    return image_response(svc, job, image, attachment=download)


EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
#: longest side of an output's thumbnail on the pages (shown at about 200 px: sharp on a 2x screen)
OUTPUT_THUMB_PX = 480


class _Chunks(io.RawIOBase):
    """A write-only stream that hands back what was written since the last call (zip output, chunk by chunk)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def zip_stream(svc: Any, job: Job) -> Iterator[bytes]:
    """The job's images as a zip, one image at a time (stored, not deflated: they are compressed already)."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf:
        for im in sorted(job.images, key=lambda i: i.k):
            zf.writestr(f"{job.id}_{im.k}.{EXTENSIONS.get(im.media_type, 'bin')}", svc.store.blobs.get(im.sha256))
            yield sink.take()
    yield sink.take()


@router.get("/generations/{generation_id}/zip")
def job_zip(request: Request, svc: ServicesDep, user: User, generation_id: JobId) -> Response:
    """Every image of a finished generation in one zip, streamed."""
    job, _ = _image(request, svc, user, generation_id, 0, "downloads exist")
    return StreamingResponse(
        zip_stream(svc, job), media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.zip"', "Cache-Control": "private, no-store"},
    )


__all__ = ["OUTPUT_THUMB_PX", "router", "stage_words", "zip_stream"]

