"""What a browser brings to a board form that the JSON API does not take, turned into what it does: a
folder (its files arrive as uploads with paths), a zip (unpacked here, safely: image members only, no path
leaving the archive, bounded in count and in unpacked size) and ``pins.csv`` / ``pins.jsonl`` files (parsed
by the core's folder-import parser, then matched by file name as the API's ``pins`` field is).
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from fastapi import UploadFile
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUpload

from ..api.schemas import PinIn, SkippedPin
from ..boards import MAX_PINS_FILE_BYTES, PINS_FILES, parse_pins_csv, parse_pins_jsonl
from ..errors import BoardError, PinsFileError
from ..media import IMAGE_SUFFIXES

#: a zip may unpack to at most this many times the request limit (JPEG and PNG barely compress; a zip
#: that expands further is a bomb or far more than one request could carry as plain files)
ZIP_EXPANSION = 2
#: a member that expands more than this (and to more than a megabyte) is refused as a bomb
ZIP_MAX_RATIO = 100


@dataclass
class Sources:
    """What one board form brought, sorted: the image uploads (base names), the engagement by file name, and
    the files that are not images (skipped, with their reason)."""

    images: list[UploadFile] = field(default_factory=list)
    meta: dict[str, PinIn] = field(default_factory=dict)
    skipped: list[SkippedPin] = field(default_factory=list)


def base_name(filename: str | None) -> str:
    """A file's own name, without the folder a folder upload or a zip member puts before it."""
    return PureWindowsPath(PurePosixPath((filename or "").strip()).name).name.strip()


def _hidden(path: str) -> bool:
    """Dot files and macOS's resource forks: ignored, as the folder import ignores hidden files."""
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(path).parts)


def _pin_in(pin: Any) -> PinIn:
    return PinIn(image=pin.image, saves=pin.saves, clicks=pin.clicks, dwell_seconds=pin.dwell_seconds,
                 pinned_at=pin.pinned_at, title=pin.title, tags=list(pin.tags), source=pin.source)


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def parse_pins_upload(filename: str, data: bytes) -> dict[str, PinIn]:
    """An uploaded ``pins.csv`` / ``pins.jsonl``, read by the core's parser (the one a board folder's file
    goes through, with its line-numbered errors), as the API's ``pins`` entries keyed by image name."""
    name = base_name(filename) or "pins"
    kind = name.lower().rsplit(".", 1)[-1]
    if kind not in ("csv", "jsonl"):
        raise BoardError(f"{name}: an engagement file is a .csv or a .jsonl file (as pins.csv or pins.jsonl)")
    if len(data) > MAX_PINS_FILE_BYTES:
        raise BoardError(f"{name} is over {MAX_PINS_FILE_BYTES // (1024 * 1024)} MB; split it")
    with tempfile.TemporaryDirectory(prefix="tm-pins-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        rows = parse_pins_csv(path) if kind == "csv" else parse_pins_jsonl(path)
    out: dict[str, PinIn] = {}
    for line, pin in rows:
        if pin.image in out:
            raise PinsFileError(name, line, f"image {pin.image!r} is listed twice")
        try:
            out[pin.image] = _pin_in(pin)
        except ValidationError as exc:
            raise PinsFileError(name, line, first_error(exc)) from None
    return out


def unpack_zip(settings: Any, filename: str, data: bytes) -> tuple[list[UploadFile], list[tuple[str, bytes]],
                                                                     list[SkippedPin]]:
    """A zip's image members as uploads, its pins files, and what else it held (skipped).

    Refused whole, with the reason: a member whose path is absolute or climbs out with ``..``, more images
    than a board holds, more unpacked bytes than :data:`ZIP_EXPANSION` times the request limit (declared
    sizes are checked before anything is unpacked, and reads are capped at them), a member that expands
    more than :data:`ZIP_MAX_RATIO` times, and a damaged or encrypted archive."""
    name = base_name(filename) or "the zip"
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise BoardError(f"{name} is not a zip file (or it is damaged); choose a .zip of images") from None
    limit = ZIP_EXPANSION * settings.max_request_bytes
    with archive:
        infos = archive.infolist()
        if len(infos) > 4 * settings.max_pins_per_board + 100:
            raise BoardError(f"{name} has {len(infos)} entries; a board holds at most "
                             f"{settings.max_pins_per_board} images")
        members: list[zipfile.ZipInfo] = []
        for info in infos:
            path = info.filename
            parts = path.replace("\\", "/").split("/")
            if path.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", path):
                raise BoardError(f"{name}: the member {path[:100]!r} points outside the archive (an absolute path "
                                 "or '..'); such a zip is refused — zip the images themselves")
            if not info.is_dir() and not _hidden(path):
                members.append(info)
        images = [i for i in members if PurePosixPath(i.filename).suffix.lower() in IMAGE_SUFFIXES]
        pins = [i for i in members if base_name(i.filename).lower() in PINS_FILES]
        sorted_out = {id(i) for i in images + pins}
        others = [i for i in members if id(i) not in sorted_out]
        if len(images) > settings.max_pins_per_board:
            raise BoardError(f"{name} holds {len(images)} images; a board holds at most "
                             f"{settings.max_pins_per_board}")
        total = sum(i.file_size for i in images + pins)
        if total > limit:
            raise BoardError(f"{name} would unpack to {total / 1e6:,.0f} MB, over the {limit / 1e6:,.0f} MB a zip "
                             "may hold: refused (a zip bomb, or far more than one upload; send fewer images)")
        for i in images + pins:
            ratio = i.file_size / max(1, i.compress_size)
            if i.file_size > 1_000_000 and ratio > ZIP_MAX_RATIO:
                raise BoardError(f"{name}: {base_name(i.filename)!r} expands {ratio:,.0f} times (a zip bomb): "
                                 "the zip is refused")
        uploads: list[UploadFile] = []
        pins_files: list[tuple[str, bytes]] = []
        skipped = [SkippedPin(image=base_name(i.filename), reason="not an image Tastemaker reads (JPEG, PNG, WebP, "
                              "GIF, TIFF, BMP)", code="not_an_image") for i in others]
        for i in images + pins:
            member = base_name(i.filename)
            is_pins = i in pins  # at most a few
            cap = MAX_PINS_FILE_BYTES if is_pins else settings.max_image_bytes
            if i.file_size > cap:
                skipped.append(SkippedPin(image=member, reason=f"over the {cap / 1e6:.0f} MB limit per file",
                                          code="image_too_large"))
                continue
            try:
                with archive.open(i) as fh:
                    blob = fh.read(cap + 1)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise BoardError(f"{name}: {member!r} could not be unpacked ({exc}); the zip is damaged or "
                                 "encrypted") from None
            if is_pins:
                pins_files.append((member, blob))
            else:
                uploads.append(UploadFile(file=io.BytesIO(blob), filename=member, size=len(blob)))
    return uploads, pins_files, skipped


def _uploads(form: FormData, key: str) -> list[StarletteUpload]:
    """The files a file input sent (an empty input sends one nameless, empty part: not a file)."""
    return [v for v in form.getlist(key) if isinstance(v, StarletteUpload) and (v.filename or v.size)]


def gather(settings: Any, form: FormData) -> Sources:
    """Sort a board form's inputs — ``images`` (files), ``folder`` (a chosen folder), ``archive`` (a zip) and
    ``pins_file`` — into :class:`Sources`. A zip among the files is unpacked as the ``archive`` is; a
    ``pins.csv`` / ``pins.jsonl`` among the files or in the folder or zip counts as the engagement file;
    there may be one."""
    src = Sources()
    pins_files: list[tuple[str, bytes]] = []
    archives = _uploads(form, "archive")
    for up in _uploads(form, "images") + _uploads(form, "folder"):
        name = base_name(up.filename)
        if name.lower().endswith(".zip"):  # a zip dropped or chosen with the images
            archives.append(up)
        elif name.lower() in PINS_FILES:
            pins_files.append((name, up.file.read(MAX_PINS_FILE_BYTES + 1)))
        elif not _hidden(up.filename or ""):
            src.images.append(UploadFile(file=up.file, filename=name, size=up.size))
    for up in archives:
        images, found, skipped = unpack_zip(settings, up.filename or "", up.file.read(settings.max_request_bytes + 1))
        src.images += images
        pins_files += found
        src.skipped += skipped
    pins_files += [(up.filename or "pins", up.file.read(MAX_PINS_FILE_BYTES + 1)) for up in _uploads(form, "pins_file")]
    if len(pins_files) > 1:
        names = ", ".join(repr(base_name(n)) for n, _ in pins_files)
        raise BoardError(f"more than one engagement file came with these images ({names}); keep one")
    if pins_files:
        src.meta = parse_pins_upload(*pins_files[0])
    if not src.images:
        raise BoardError("choose some images: files, a folder or a zip (JPEG, PNG, WebP, GIF, TIFF or BMP)")
    return src
