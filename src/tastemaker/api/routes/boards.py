"""Boards: upload (multipart images + pins metadata), read, delete, add pins.

Every upload is decoded (at thumbnail size) before anything is stored, through the core's one safe
decoder. As in a board folder on the command line, an upload that cannot be used — not an image, a bomb,
over the per-image size, the same bytes as another — is skipped and reported in the response's
``skipped`` (file name, reason, code), and so is a ``pins`` entry naming no uploaded file; the request is
refused (422 ``board_empty``, naming each file and its reason) only when none of its images can be used.
Image bytes go to the content-addressed blob store; the database keeps pins and hashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from ... import safejson
from ...audit import BOARD_CREATED, BOARD_DELETED, BOARD_PINS_ADDED
from ...boards import Pin, check_pinned_at, make_thumb
from ...errors import BoardError, EmptyBoardError, ImageError, UnsupportedMediaTypeError
from ...store import repo, sha256_hex
from ...store.models import Board, PinRecord
from ..deps import (
    BoardsRead,
    BoardsWrite,
    Idempotency,
    IdempotencyKey,
    Principal,
    Services,
    ServicesDep,
    SessionDep,
    fingerprint,
    request_id,
)
from ..profiles import forget_board_files
from ..schemas import BoardOut, PinIn, PinOut, PinsAdded, ProfileState, SkippedPin
from .common import AUTH_ERRORS, errors, media_type, owned_board

router = APIRouter(prefix="/v1/boards", tags=["boards"], responses=AUTH_ERRORS)

BoardId = Annotated[str, PathParam(min_length=1, max_length=64, description="a board id (brd_...)")]
_PINS = TypeAdapter(list[PinIn])
PINS_HELP = (
    "Engagement per image, as a JSON array of objects matched to the uploads by file name: "
    '`[{"image": "a.jpg", "saves": 3, "clicks": 1, "dwell_seconds": 12.5, "pinned_at": "2024-05-01T12:00:00Z", '
    '"title": "...", "tags": ["film", "grain"], "source": "..."}]`. Images without an entry count with no '
    "engagement; entries naming no uploaded file are reported in `skipped`."
)
#: The pins field is JSON text: an array of PinIn (published in the components; `null` means no engagement).
PINS_SCHEMA: dict[str, Any] = {
    "contentMediaType": "application/json",
    "contentSchema": {"anyOf": [{"type": "array", "items": {"$ref": "#/components/schemas/PinIn"}}, {"type": "null"}]},
}


def require_multipart(request: Request, principal: BoardsWrite) -> Principal:
    """Uploads are multipart/form-data; say so with 415 rather than a confusing 422 (after auth: 401 first)."""
    ctype = media_type(request)
    if ctype != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"this endpoint takes multipart/form-data (image files + form fields), got {ctype or 'no content type'!r}"
        )
    return principal


UploadAccount = Annotated[Principal, Depends(require_multipart)]


def _validation_message(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        parts.append(f"{where}{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_pins(text: str | None) -> dict[str, PinIn]:
    """The ``pins`` form field: a JSON array of :class:`PinIn`, keyed by image name."""
    if text is None or not text.strip():
        return {}
    try:
        data = safejson.loads(text, what="the pins field")  # nesting and number size bounded: 400 json_*
    except safejson.JSONSyntaxError as exc:
        raise BoardError(f"{exc.message}; send a JSON array of pin objects") from None
    if data is None:
        return {}
    try:
        entries = _PINS.validate_python(data)
    except ValidationError as exc:
        detail = _validation_message(exc, "pins")
        raise BoardError(f"pins field is not a valid JSON array of pin objects: {detail}") from None
    out: dict[str, PinIn] = {}
    for i, entry in enumerate(entries):
        if entry.image in out:
            raise BoardError(f"pins[{i}]: image {entry.image!r} is listed twice")
        if entry.pinned_at is not None:  # the folder import's rule: UTC, at most a day in the future
            try:
                entry = entry.model_copy(update={"pinned_at": check_pinned_at(entry.pinned_at)})
            except ValueError as exc:
                raise BoardError(f"pins[{i}] ({entry.image}): {exc}") from None
        out[entry.image] = entry
    return out


def _clean_name(filename: str | None, i: int) -> str:
    """The upload's base name (never a path); a nameless part becomes image-N."""
    raw = (filename or "").strip()
    name = PureWindowsPath(PurePosixPath(raw).name).name.strip()
    if not name or name in (".", "..") or any(ord(c) < 32 for c in name):
        return f"image-{i + 1}"
    return name[:255]


@dataclass
class Uploads:
    """A request's uploads, read and checked: the usable ones, and the skipped ones with their reasons."""

    usable: list[tuple[str, bytes]]
    skipped: list[SkippedPin]
    names: set[str]  # every upload's name, usable or not

    def require_some(self, what: str) -> None:
        """Refuse the request (422 ``board_empty``, each file named with its reason) when nothing is usable."""
        if self.usable:
            return
        if not self.skipped:
            raise EmptyBoardError(f"{what} has no images; upload JPEG, PNG, WebP or GIF files")
        detail = "; ".join(f"{p.image}: {p.reason}" for p in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        raise EmptyBoardError(f"{what}: none of its {len(self.skipped)} image(s) could be used — {detail}{more}")


def read_uploads(svc: Services, images: list[UploadFile], *, existing: int = 0) -> Uploads:
    """Read and check every upload. One that cannot be used is skipped with its reason (as the CLI skips it
    in a board folder); two uploads with one name, or more pins than a board holds, refuse the request."""
    settings = svc.settings
    if existing + len(images) > settings.max_pins_per_board:
        raise BoardError(
            f"a board holds at most {settings.max_pins_per_board} pins; this would make {existing + len(images)}"
        )
    out = Uploads([], [], set())
    for i, up in enumerate(images):
        name = _clean_name(up.filename, i)
        if name in out.names:
            raise BoardError(f"two uploads are named {name!r}; file names identify pins, so make them unique")
        out.names.add(name)
        data = up.file.read(settings.max_image_bytes + 1)
        if len(data) > settings.max_image_bytes:
            limit = f"{settings.max_image_bytes / 1e6:.0f} MB"
            out.skipped.append(SkippedPin(image=name, reason=f"over the {limit} limit per image",
                                          code="image_too_large"))
            continue
        try:
            make_thumb(data, name, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes)
        except ImageError as exc:
            out.skipped.append(SkippedPin(image=name, reason=exc.message, code=exc.code))
            continue
        out.usable.append((name, data))
    return out


def new_pins(uploads: Uploads, meta: dict[str, PinIn]) -> tuple[list[repo.NewPin], list[SkippedPin]]:
    """Combine uploads with their engagement; identical images in one upload are kept once, and a ``pins``
    entry naming no uploaded file is reported (as a ``pins.csv`` row without its file is in a folder)."""
    skipped = list(uploads.skipped)
    for name in sorted(set(meta) - uploads.names):
        skipped.append(SkippedPin(image=name, reason="listed in pins, but no file of that name was uploaded",
                                  code="not_uploaded"))
    pins: list[repo.NewPin] = []
    seen: dict[str, str] = {}
    for name, data in uploads.usable:
        digest = sha256_hex(data)
        if digest in seen:
            skipped.append(SkippedPin(image=name, reason=f"same image as {seen[digest]!r}", code="duplicate"))
            continue
        seen[digest] = name
        m = meta.get(name) or PinIn(image=name)
        pinned = m.pinned_at
        if pinned is not None:
            pinned = pinned.replace(tzinfo=UTC) if pinned.tzinfo is None else pinned.astimezone(UTC)
        pin = Pin(
            image=name,
            saves=m.saves,
            clicks=m.clicks,
            dwell_seconds=m.dwell_seconds,
            pinned_at=pinned,
            title=m.title.strip(),
            tags=tuple(t.strip() for t in m.tags if t.strip()),
            source=m.source.strip(),
        )
        pins.append(repo.NewPin(pin=replace(pin, sha256=digest), byte_size=len(data)))
    return pins, skipped


def pin_out(p: PinRecord) -> PinOut:
    return PinOut(
        id=p.sha256[:16],
        image=p.image,
        sha256=p.sha256,
        bytes=p.byte_size,
        saves=p.saves,
        clicks=p.clicks,
        dwell_seconds=p.dwell_seconds,
        pinned_at=p.pinned_at,
        title=p.title,
        tags=list(p.tags),
        source=p.source,
    )


def board_out(board: Board, skipped: list[SkippedPin] | None = None) -> BoardOut:
    profile = None
    if board.profile_hash is not None and board.profile_revision is not None:
        profile = ProfileState(
            hash=board.profile_hash, revision=board.profile_revision, stale=board.profile_revision != board.revision
        )
    return BoardOut(
        id=board.id,
        name=board.name,
        revision=board.revision,
        n_pins=len(board.pins),
        created_at=board.created_at,
        updated_at=board.updated_at,
        profile=profile,
        pins=[pin_out(p) for p in board.pins],
        skipped=skipped or [],
    )


def _pins_digest(pins: list[repo.NewPin]) -> str:
    return sha256_hex("".join(sorted(p.pin.sha256 for p in pins)).encode())


def _store_blobs(svc: Services, s: Session, uploads: list[tuple[str, bytes]]) -> list[str]:
    """Write the uploads' blobs (call with ``svc.store.blobs.lock`` held, before committing the rows)."""
    return [svc.store.blobs.put(data) for _, data in uploads]


def _forget_blobs(svc: Services, s: Session, shas: list[str]) -> None:
    """After a failed upload: remove the blobs it wrote that nothing refers to (lock held)."""
    for sha in repo.unreferenced(s, shas):
        svc.store.blobs.delete(sha)


def _replay(record: Any) -> JSONResponse:
    return JSONResponse(
        record.response_body, status_code=record.response_status or 200, headers={"Idempotent-Replayed": "true"}
    )


@router.post(
    "",
    status_code=201,
    response_model=BoardOut,
    summary="Create a board from uploaded images and their engagement",
    responses=errors(400, 413, 415),
)
def create_board(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: UploadAccount,
    name: Annotated[str, Form(min_length=1, max_length=200, description="the board's name")],
    images: Annotated[
        list[UploadFile], File(min_length=1, description="the pinned images (JPEG, PNG, WebP, GIF, TIFF, BMP)")
    ],
    pins: Annotated[str | None, Form(description=PINS_HELP, json_schema_extra=PINS_SCHEMA)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    meta = parse_pins(pins)
    uploads = read_uploads(svc, images)
    uploads.require_some(f"board {name.strip()!r}")
    items, skipped = new_pins(uploads, meta)
    idem = Idempotency(svc, principal, idempotency_key, "POST /v1/boards")
    fp = {"name": name, "pins": sorted((p.pin.sha256, json.dumps(p.pin.to_record(), default=str)) for p in items)}
    replay = idem.claim(session, fingerprint("POST /v1/boards", fp))
    if replay is not None:
        return _replay(replay)
    with svc.store.blobs.lock:
        shas: list[str] = []
        try:
            shas = _store_blobs(svc, session, uploads.usable)
            board = repo.create_board(session, principal.account_id, name.strip(), items)
            svc.audit.append(
                session,
                BOARD_CREATED,
                account_id=principal.account_id,
                objects={"board": board.id},
                request_id=request_id(request),
                detail={"pins": len(items), "pins_sha256": _pins_digest(items)},
            )
            body = board_out(board, skipped).model_dump(mode="json")
            idem.complete(session, status=201, body=body, resource_id=board.id)
            session.commit()
        except BaseException:
            session.rollback()
            _forget_blobs(svc, session, shas)
            idem.abandon()
            raise
    return JSONResponse(
        body, status_code=201, headers={"Location": str(request.url_for("get_board", board_id=board.id))}
    )


@router.get("/{board_id}", response_model=BoardOut, summary="A board and its pins", responses=errors(404))
def get_board(
    request: Request, svc: ServicesDep, session: SessionDep, principal: BoardsRead, board_id: BoardId
) -> BoardOut:
    board = owned_board(svc, session, request, principal, board_id, with_pins=True)
    return board_out(board)


@router.delete(
    "/{board_id}",
    status_code=204,
    summary="Delete a board, its pins, its profile (and versions, and privacy ledger) and their images",
    responses=errors(404),
)
def delete_board(
    request: Request, svc: ServicesDep, session: SessionDep, principal: BoardsWrite, board_id: BoardId
) -> Response:
    board = owned_board(svc, session, request, principal, board_id)
    with svc.store.blobs.lock:
        shas = repo.delete_board(session, board)
        svc.audit.append(
            session,
            BOARD_DELETED,
            account_id=principal.account_id,
            objects={"board": board_id},
            request_id=request_id(request),
            detail={"pins": len(shas)},
        )
        session.commit()
        for sha in repo.unreferenced(session, shas):
            svc.store.blobs.delete(sha)
    forget_board_files(svc.settings.data_dir, board_id)
    return Response(status_code=204)


@router.post(
    "/{board_id}/pins",
    response_model=PinsAdded,
    summary="Add pins to a board (its profile is rebuilt on next use)",
    responses=errors(400, 404, 413, 415),
)
def add_pins(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: UploadAccount,
    board_id: BoardId,
    images: Annotated[list[UploadFile], File(min_length=1, description="more pinned images")],
    pins: Annotated[str | None, Form(description=PINS_HELP, json_schema_extra=PINS_SCHEMA)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    board = owned_board(svc, session, request, principal, board_id, with_pins=True)
    meta = parse_pins(pins)
    uploads = read_uploads(svc, images, existing=len(board.pins))
    uploads.require_some("this upload")
    items, skipped = new_pins(uploads, meta)
    endpoint = f"POST /v1/boards/{board_id}/pins"
    idem = Idempotency(svc, principal, idempotency_key, endpoint)
    fp = {"pins": sorted((p.pin.sha256, json.dumps(p.pin.to_record(), default=str)) for p in items)}
    replay = idem.claim(session, fingerprint(endpoint, fp))
    if replay is not None:
        return _replay(replay)
    with svc.store.blobs.lock:
        shas: list[str] = []
        try:
            shas = _store_blobs(svc, session, uploads.usable)
            added, dupes = repo.add_pins(session, board, items)
            skipped += [SkippedPin(image=d.pin.image, reason="already on the board", code="already_on_board")
                        for d in dupes]
            svc.audit.append(
                session,
                BOARD_PINS_ADDED,
                account_id=principal.account_id,
                objects={"board": board.id},
                request_id=request_id(request),
                detail={"pins": len(added), "pins_sha256": _pins_digest(items)},
            )
            body = PinsAdded(board=board_out(board), added=[pin_out(p) for p in added], skipped=skipped).model_dump(
                mode="json"
            )
            idem.complete(session, status=200, body=body, resource_id=board.id)
            session.commit()
        except BaseException:
            session.rollback()
            _forget_blobs(svc, session, shas)
            idem.abandon()
            raise
    return JSONResponse(body)
