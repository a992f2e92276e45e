"""Boards: uploads read and checked, then stored — a new board or pins added — in one transaction.

Every upload is decoded (at thumbnail size) before anything is stored, through the core's one safe
decoder. As in a board folder on the command line, an upload that cannot be used — not an image, a bomb,
over the per-image size, the same bytes as another — is skipped and reported (file name, reason, code), and so
is a ``pins`` entry naming no uploaded file; the request is refused (422 ``board_empty``, naming each file and
its reason) only when none of its images can be used. Image bytes go to the blob store; the database keeps
pins and hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from fastapi import UploadFile
from pydantic import TypeAdapter, ValidationError

from ... import safejson
from ...audit import BOARD_CREATED, BOARD_DELETED, BOARD_PINS_ADDED
from ...boards import check_pinned_at, make_thumb
from ...errors import BoardError, EmptyBoardError, ImageError
from ...store import StoreSession, sha256_hex
from ...store.records import Board, StoredPin
from ..deps import Idempotency, Services, fingerprint
from ..schemas import BoardOut, PinIn, PinOut, PinsAdded, SkippedPin
from .common import Caller, Replay, owned_board
from .profiles import forget_board_files

_PINS = TypeAdapter(list[PinIn])


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
    """A request's uploads, read and checked, with their engagement: the pins to store (each image once), the
    bytes of the usable uploads, and what was skipped with its reason."""

    pins: list[StoredPin]
    usable: list[bytes]
    skipped: list[SkippedPin]


def read_uploads(
    svc: Services, images: Sequence[UploadFile], meta: dict[str, PinIn], what: str, *, existing: int = 0
) -> Uploads:
    """Read and check every upload. One that cannot be used is skipped with its reason (as the CLI skips it
    in a board folder); two uploads with one name, more pins than a board holds, or no usable image at all
    refuse the request. Identical images are kept once, and a ``pins`` entry naming no uploaded file is
    reported (as a ``pins.csv`` row without its file is in a folder)."""
    settings = svc.settings
    if existing + len(images) > settings.max_pins_per_board:
        raise BoardError(
            f"a board holds at most {settings.max_pins_per_board} pins; this would make {existing + len(images)}"
        )
    out = Uploads([], [], [])
    names: set[str] = set()
    seen: dict[str, str] = {}
    duplicates: list[SkippedPin] = []
    for i, up in enumerate(images):
        name = _clean_name(up.filename, i)
        if name in names:
            raise BoardError(f"two uploads are named {name!r}; file names identify pins, so make them unique")
        names.add(name)
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
        out.usable.append(data)
        digest = sha256_hex(data)
        if digest in seen:
            duplicates.append(SkippedPin(image=name, reason=f"same image as {seen[digest]!r}", code="duplicate"))
            continue
        seen[digest] = name
        out.pins.append(StoredPin((meta.get(name) or PinIn(image=name)).to_pin(digest), len(data)))
    if not out.usable:
        if not out.skipped:
            raise EmptyBoardError(f"{what} has no images; upload JPEG, PNG, WebP or GIF files")
        detail = "; ".join(f"{p.image}: {p.reason}" for p in out.skipped[:5])
        more = f" (and {len(out.skipped) - 5} more)" if len(out.skipped) > 5 else ""
        raise EmptyBoardError(f"{what}: none of its {len(out.skipped)} image(s) could be used — {detail}{more}")
    for name in sorted(set(meta) - names):
        out.skipped.append(SkippedPin(image=name, reason="listed in pins, but no file of that name was uploaded",
                                      code="not_uploaded"))
    out.skipped += duplicates
    return out


@dataclass(frozen=True)
class Stored:
    """An upload's outcome: the response body for the board it went to."""

    body: dict[str, Any]
    board_id: str


#: what an upload does with its pins in the store: (the board, how many pins it added, the response body)
Write = Callable[[StoreSession], tuple[Board, int, dict[str, Any]]]


def _store(
    svc: Services, s: StoreSession, caller: Caller, up: Uploads, *, endpoint: str, fields: dict[str, Any],
    key: str | None, action: str, status: int, write: Write,
) -> Stored | Replay:
    """The one upload transaction: claim the idempotency key, write the blobs, then the rows, the audit entry
    and the idempotent outcome — committed together, or the blobs nothing refers to are removed again."""
    idem = Idempotency(svc, caller.principal, key, endpoint)
    pins_fp = sorted((p.pin.sha256, json.dumps(p.pin.to_record(), default=str)) for p in up.pins)
    replay = idem.claim(s, fingerprint(endpoint, {**fields, "pins": pins_fp}))
    if replay is not None:
        return Replay.of(replay)
    blobs = svc.store.blobs
    with blobs.lock:  # no delete can collect a blob between its write and the commit of the rows naming it
        shas: list[str] = []
        try:
            shas = [blobs.put(data) for data in up.usable]
            board, added, body = write(s)
            digest = sha256_hex("".join(sorted(p.pin.sha256 for p in up.pins)).encode())
            svc.audit.append(s, action, account_id=caller.account_id, objects={"board": board.id},
                             request_id=caller.request_id, detail={"pins": added, "pins_sha256": digest})
            idem.complete(s, status=status, body=body, resource_id=board.id)
            s.commit()
        except BaseException:
            s.rollback()
            for sha in s.unreferenced_blobs(shas):
                blobs.delete(sha)
            idem.abandon()
            raise
    return Stored(body, board.id)


def create_board(
    svc: Services, s: StoreSession, caller: Caller, *, name: str, up: Uploads, key: str | None
) -> Stored | Replay:
    def write(s: StoreSession) -> tuple[Board, int, dict[str, Any]]:
        board = s.create_board(caller.account_id, name.strip(), up.pins)
        return board, len(up.pins), BoardOut.of(board, up.skipped).model_dump(mode="json")

    return _store(svc, s, caller, up, endpoint="POST /v1/boards", fields={"name": name}, key=key,
                  action=BOARD_CREATED, status=201, write=write)


def add_pins(
    svc: Services, s: StoreSession, caller: Caller, board: Board, *, up: Uploads, key: str | None
) -> Stored | Replay:
    def write(s: StoreSession) -> tuple[Board, int, dict[str, Any]]:
        now, added, dupes = s.add_pins(board, up.pins)
        skipped = up.skipped + [SkippedPin(image=d.pin.image, reason="already on the board", code="already_on_board")
                                for d in dupes]
        body = PinsAdded(board=BoardOut.of(now), added=[PinOut.of(p) for p in added], skipped=skipped)
        return now, len(added), body.model_dump(mode="json")

    return _store(svc, s, caller, up, endpoint=f"POST /v1/boards/{board.id}/pins", fields={}, key=key,
                  action=BOARD_PINS_ADDED, status=200, write=write)


def delete_board(svc: Services, s: StoreSession, caller: Caller, board_id: str) -> None:
    """Delete a board, its pins, profile versions and privacy ledger, and every image nothing else refers to."""
    board = owned_board(svc, s, caller, board_id)
    blobs = svc.store.blobs
    with blobs.lock:
        shas = s.delete_board(board)
        svc.audit.append(s, BOARD_DELETED, account_id=caller.account_id, objects={"board": board_id},
                         request_id=caller.request_id, detail={"pins": len(shas)})
        s.commit()
        for sha in s.unreferenced_blobs(shas):
            blobs.delete(sha)
    forget_board_files(svc.settings.data_dir, board_id)
