"""Pins and boards: what a person pinned and how much they engaged with each pin.

A board on disk is a folder of images with an optional ``pins.csv`` or ``pins.jsonl`` beside them.
Fields (all optional except ``image``; defaults in brackets):

=================  =======================================================  ===========
field              meaning                                                  default
=================  =======================================================  ===========
``image``          file name inside the board folder                        (required)
``saves``          times the person saved the pin (int >= 0)                0
``clicks``         click-throughs (int >= 0)                                0
``dwell_seconds``  total time spent looking at it (float >= 0)              0
``pinned_at``      ISO 8601 time it was pinned; naive times are UTC         unknown (*)
``title``          free text                                                ""
``tags``           ``;``-separated tags                                     none
``source``         where the pin came from (domain, account), for caps      ""
=================  =======================================================  ===========

(*) a pin with no ``pinned_at`` is treated as being as recent as the newest pin: no recency decay. A
``pinned_at`` more than a day in the future (:data:`FUTURE_TOLERANCE`: clocks and time zones disagree by
hours, never by days) is refused with the file and line, as every other malformed field is; the API refuses
such a pin the same way. Profiles built from pins stored before this rule stay buildable: a future date
counts as "now" (see :mod:`tastemaker.taste.weights`).

Images in the folder that the pins file does not list still count, with default engagement. A folder is
read as what it is, not as what it links to: an image or pins file that is a link to somewhere outside the
folder is refused (never read), and a pins file must be a regular file of at most
:data:`MAX_PINS_FILE_BYTES`, so a link to an endless device cannot hang the import.
Unreadable images are skipped and reported in :attr:`Board.skipped` (the CLI prints them), and so is every
other file in the folder that is not an image Tastemaker reads (``.heic``, ``.txt``, sub-folders...; hidden
files are ignored); a board with no readable image at all is an :class:`~tastemaker.errors.EmptyBoardError`.
A folder that cannot be read (no permission) is a :class:`~tastemaker.errors.BoardError` naming it.

(Just over 500 lines on purpose: the board format — its fields, both pins files and the folder rules — is read
and checked in this one place that the CLI, the API and the web app all use.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from . import safejson
from .errors import BoardError, EmptyBoardError, ImageError, PinsFileError
from .media import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    decode_image,
    kind_of,
    read_bounded,
    read_image_bytes,
    resize_max_side,
    stat_input,
)

PIN_FIELDS = ("image", "saves", "clicks", "dwell_seconds", "pinned_at", "title", "tags", "source")
#: Largest pins.csv / pins.jsonl read (about 50,000 pins with titles and tags): a link to an endless device
#: or a runaway export is refused instead of read forever.
MAX_PINS_FILE_BYTES = 16 * 1024 * 1024
#: Longest side of the thumbnails kept per pin (all style analysis runs on these).
THUMB_SIDE = 256
#: How far in the future a ``pinned_at`` may lie (clock skew, time zones); later dates are refused.
FUTURE_TOLERANCE = timedelta(days=1)
#: The names of the pins files a board folder may hold (never reported as skipped files).
PINS_FILES = ("pins.csv", "pins.jsonl")


@dataclass(frozen=True)
class Pin:
    """One pinned image and the engagement the person gave it."""

    image: str
    saves: int = 0
    clicks: int = 0
    dwell_seconds: float = 0.0
    pinned_at: datetime | None = None
    title: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""
    #: SHA-256 of the image bytes (hex); fills in when the image is read. Pins are ordered by it.
    sha256: str = ""

    @property
    def id(self) -> str:
        """Stable content id: the first 16 hex digits of the image's SHA-256."""
        return self.sha256[:16] if self.sha256 else self.image

    @property
    def text(self) -> str:
        """Title and tags as one string, for prompt matching."""
        return " ".join([self.title, *self.tags]).strip()

    def to_record(self) -> dict[str, Any]:
        """A flat dict in the pins-file format."""
        return {
            "image": self.image,
            "saves": self.saves,
            "clicks": self.clicks,
            "dwell_seconds": self.dwell_seconds,
            "pinned_at": self.pinned_at.isoformat() if self.pinned_at else "",
            "title": self.title,
            "tags": ";".join(self.tags),
            "source": self.source,
        }


@dataclass
class Board:
    """A set of pins with their decoded thumbnails, in canonical (content-hash) order."""

    name: str
    pins: list[Pin]
    thumbs: list[np.ndarray]
    #: (file name, reason) for every image that could not be used.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: reads a pin's image bytes again (the board folder, a blob store), for engines that need more than
    #: thumbnails (medium transfer, scenes); None for boards that only exist as thumbnails
    reader: Callable[[Pin], bytes] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.pins) != len(self.thumbs):
            raise ValueError("pins and thumbs must have the same length")
        order = sorted(range(len(self.pins)), key=lambda i: (self.pins[i].sha256, self.pins[i].image))
        self.pins = [self.pins[i] for i in order]
        self.thumbs = [self.thumbs[i] for i in order]

    def __len__(self) -> int:
        return len(self.pins)

    def to_csv(self) -> str:
        """Export the pins (not the images) as ``pins.csv`` text."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(PIN_FIELDS), lineterminator="\n")
        writer.writeheader()
        for pin in sorted(self.pins, key=lambda p: p.image):
            writer.writerow(pin.to_record())
        return buf.getvalue()

    def to_jsonl(self) -> str:
        """Export the pins as ``pins.jsonl`` text."""
        rows = [json.dumps(p.to_record(), ensure_ascii=False) for p in sorted(self.pins, key=lambda p: p.image)]
        return "\n".join(rows) + ("\n" if rows else "")


# --------------------------------------------------------------------------------------- parsing


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: an error message quotes a value, never a megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text):,} characters)"


def _parse_count(value: Any, name: str, path: Path, line: int, *, whole: bool) -> float:
    """A non-negative number from a pins file (blank is 0); ``whole`` for counts. Names the line when bad."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0.0
    what = "a whole number" if whole else "a number"
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise PinsFileError(path, line, f"{name} must be {what} >= 0, got {_shown(value)}") from None
    if not math.isfinite(f) or f < 0 or (whole and f != int(f)):
        raise PinsFileError(path, line, f"{name} must be {what} >= 0, got {_shown(value)}")
    return f


def check_pinned_at(t: datetime, *, now: datetime | None = None) -> datetime:
    """``t`` in UTC (naive times are UTC), or :class:`ValueError` naming the problem: a date more than
    :data:`FUTURE_TOLERANCE` in the future, or one that cannot be expressed in UTC."""
    try:
        utc = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"pinned_at {t.isoformat()} is out of range once converted to UTC") from None
    now = now or datetime.now(UTC)
    if utc - now > FUTURE_TOLERANCE:
        raise ValueError(
            f"pinned_at {t.isoformat()} is in the future (now is {now.isoformat(timespec='seconds')}); "
            "fix the date or leave it empty"
        )
    return utc


def _parse_time(value: Any, path: Path, line: int) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise PinsFileError(path, line, f"pinned_at must be an ISO 8601 string, got {_shown(value)}")
    text = value.strip()
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise PinsFileError(
            path, line, f"pinned_at {text!r} is not ISO 8601 (expected e.g. 2024-05-01T12:00:00Z)"
        ) from None
    try:
        return check_pinned_at(t)
    except ValueError as exc:
        raise PinsFileError(path, line, str(exc)) from None


def _parse_tags(value: Any, path: Path, line: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = value.split(";")
    else:
        raise PinsFileError(path, line, f"tags must be a ';'-separated string or a list, got {_shown(value)}")
    return tuple(str(t).strip() for t in items if str(t).strip())


def _row_to_pin(row: dict[str, Any], path: Path, line: int) -> Pin:
    image = row.get("image")
    if image is None or (isinstance(image, str) and not image.strip()):
        raise PinsFileError(path, line, "missing the 'image' field (the image's file name)")
    if not isinstance(image, str):
        raise PinsFileError(path, line, f"'image' must be a string (the image's file name), got {_shown(image)}")
    image = image.strip()
    if "/" in image or "\\" in image or image in (".", ".."):
        raise PinsFileError(path, line, f"image {image!r} must be a plain file name inside the board folder")
    title = row.get("title") or ""
    source = row.get("source") or ""
    return Pin(
        image=image,
        saves=int(_parse_count(row.get("saves"), "saves", path, line, whole=True)),
        clicks=int(_parse_count(row.get("clicks"), "clicks", path, line, whole=True)),
        dwell_seconds=_parse_count(row.get("dwell_seconds"), "dwell_seconds", path, line, whole=False),
        pinned_at=_parse_time(row.get("pinned_at"), path, line),
        title=str(title).strip(),
        tags=_parse_tags(row.get("tags"), path, line),
        source=str(source).strip(),
    )


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with every link followed, is ``root`` or lies under it."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, dangling or a link loop
        return False


def read_pins_text(path: Path) -> str:
    """A pins file's text: a regular file of at most :data:`MAX_PINS_FILE_BYTES` (checked before and while
    reading, so neither a device, a FIFO nor a file that keeps growing can hold the import up)."""
    data = read_bounded(path, MAX_PINS_FILE_BYTES, BoardError)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PinsFileError(path, 1, f"not UTF-8 text ({exc.reason})") from exc


def _newlines_in(row: dict[Any, Any]) -> int:
    """Line breaks inside a CSV record's (quoted) fields."""
    values = [v for v in row.values() if isinstance(v, str)] + [x for v in row.values() if isinstance(v, list)
                                                                for x in v if isinstance(x, str)]
    return sum(len(v.replace("\r\n", "\n").replace("\r", "\n").split("\n")) - 1 for v in values)


def parse_pins_csv(path: Path) -> list[tuple[int, Pin]]:
    """Parse ``pins.csv``; returns (line, pin) pairs. Errors name the file and line."""
    text = read_pins_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise PinsFileError(path, 1, f"malformed CSV header ({exc})") from exc
    if not header or "image" not in [h.strip() for h in header]:
        raise PinsFileError(path, 1, f"header must include an 'image' column; got {header!r}")
    out: list[tuple[int, Pin]] = []
    rows = iter(reader)
    while True:
        start = reader.line_num + 1  # the line the next record starts on (a quoted field may span lines)
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            problem = str(exc)
            if "field limit" in problem:
                problem = f"a field is longer than {csv.field_size_limit():,} characters"
            raise PinsFileError(path, start, f"malformed CSV ({problem})") from exc
        line = reader.line_num - _newlines_in(row)  # the record's first line, after any blank ones
        if None in row:
            raise PinsFileError(path, line, f"more fields than the header's {len(header)} columns")
        clean = {k.strip(): v for k, v in row.items() if k is not None}
        if all((v is None or not str(v).strip()) for v in clean.values()):
            continue
        if any(v is None for v in clean.values()) and clean.get("image") is None:
            raise PinsFileError(path, line, "row has fewer fields than the header")
        out.append((line, _row_to_pin(clean, path, line)))
    return out


def parse_pins_jsonl(path: Path) -> list[tuple[int, Pin]]:
    """Parse ``pins.jsonl`` (one JSON object per line; blank lines allowed)."""
    out: list[tuple[int, Pin]] = []
    lines = read_pins_text(path).splitlines()
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = safejson.loads(raw, what="the line")
        except safejson.JSONSyntaxError as exc:
            raise PinsFileError(path, i, f"invalid JSON ({exc.detail})") from exc
        except (safejson.JSONTooDeepError, safejson.JSONNumberTooLargeError) as exc:
            raise PinsFileError(path, i, exc.message.removeprefix("the line: ")) from exc
        if not isinstance(row, dict):
            raise PinsFileError(path, i, f"each line must be a JSON object, got {type(row).__name__}")
        out.append((i, _row_to_pin(row, path, i)))
    return out


def read_pins_file(folder: Path) -> tuple[Path | None, dict[str, Pin]]:
    """Find and parse the board's pins file, if any; refuse duplicates and missing images."""
    csv_path, jsonl_path = folder / "pins.csv", folder / "pins.jsonl"

    def present(p: Path) -> bool:
        try:
            p.lstat()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BoardError(f"{p}: cannot read ({exc.strerror}); check the board folder's permissions") from None
        return True

    if present(csv_path) and present(jsonl_path):
        raise BoardError(f"{folder}: both pins.csv and pins.jsonl exist; keep one")
    path = csv_path if present(csv_path) else jsonl_path if present(jsonl_path) else None
    if path is None:
        return None, {}
    if not inside(folder, path):
        raise BoardError(f"{path} links outside the board folder (or nowhere); copy the file into the folder")
    rows = parse_pins_csv(path) if path.suffix == ".csv" else parse_pins_jsonl(path)
    pins: dict[str, Pin] = {}
    for line, pin in rows:
        if pin.image in pins:
            raise PinsFileError(path, line, f"image {pin.image!r} is listed twice")
        if not (folder / pin.image).is_file():
            raise PinsFileError(path, line, f"image {pin.image!r} not found in {folder}")
        if not inside(folder, folder / pin.image):
            raise PinsFileError(path, line, f"image {pin.image!r} is a link to a file outside the board folder")
        pins[pin.image] = pin
    return path, pins


# --------------------------------------------------------------------------------------- loading


def make_thumb(data: bytes, name: str, *, max_pixels: int, max_bytes: int) -> np.ndarray:
    """Decode at reduced size and shrink to :data:`THUMB_SIDE` on the longest side."""
    img = decode_image(data, name=name, max_pixels=max_pixels, max_bytes=max_bytes, reduce_to=THUMB_SIDE)
    return resize_max_side(img, THUMB_SIDE)


def build_board(
    name: str,
    items: Iterable[tuple[Pin, bytes]],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skipped: Sequence[tuple[str, str]] = (),
    reader: Callable[[Pin], bytes] | None = None,
) -> Board:
    """Build a board from pins and their image bytes (used by folder import and API upload alike).

    ``reader`` re-reads a pin's bytes later (see :attr:`Board.reader`); without one the board keeps the
    bytes of its pins in memory for that purpose.
    """
    pins: list[Pin] = []
    thumbs: list[np.ndarray] = []
    skip = list(skipped)
    seen: set[str] = set()
    items = list(items)

    def thumb_of(item: tuple[Pin, bytes]) -> np.ndarray | ImageError:
        try:
            return make_thumb(item[1], item[0].image, max_pixels=max_pixels, max_bytes=max_bytes)
        except ImageError as exc:
            return exc

    # Pillow releases the GIL while decoding: two threads use both cores
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = list(pool.map(thumb_of, items))
    for (pin, data), thumb in zip(items, decoded, strict=True):
        if isinstance(thumb, ImageError):
            skip.append((pin.image, thumb.message))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            skip.append((pin.image, "duplicate of another pin's image (same bytes)"))
            continue
        seen.add(digest)
        pins.append(replace(pin, sha256=digest))
        thumbs.append(thumb)
    if not pins:
        if skip:
            detail = "; ".join(f"{n}: {r}" for n, r in skip[:5])
            more = f" (and {len(skip) - 5} more)" if len(skip) > 5 else ""
            raise EmptyBoardError(f"board {name!r}: none of its {len(skip)} images could be used — {detail}{more}")
        raise EmptyBoardError(f"board {name!r} has no images; add JPEG, PNG, WebP or GIF files")
    if reader is None:
        kept = {pin.image: data for pin, data in items}

        def reader(pin: Pin) -> bytes:
            return kept[pin.image]

    return Board(name=name, pins=pins, thumbs=thumbs, skipped=skip, reader=reader)


def _entry_kind(path: Path) -> str:
    """What a folder entry is, in words (a link counts as what it points to): "a regular file", "a folder"…"""
    try:
        return kind_of(path.stat().st_mode)
    except OSError:
        return "a broken link" if path.is_symlink() else "a file that cannot be read"


def folder_reader(root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Callable[[Pin], bytes]:
    """Read a pin's image from its board folder, refusing a file that changed since the board was loaded."""

    def read(pin: Pin) -> bytes:
        if not inside(root, root / pin.image):
            raise BoardError(f"{root / pin.image} is a link to a file outside the board folder; refusing to read it")
        data = read_image_bytes(root / pin.image, max_bytes=max_bytes)
        if pin.sha256 and hashlib.sha256(data).hexdigest() != pin.sha256:
            raise BoardError(f"{root / pin.image} changed since the board was loaded; load the board again")
        return data

    return read


def load_board(
    folder: Path | str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Board:
    """Import a board folder: its images plus the optional ``pins.csv`` / ``pins.jsonl``."""
    root = Path(folder)
    st = stat_input(root, BoardError, missing=f"board folder {root} does not exist",
                    unreadable=f"board folder {root}: cannot read")
    if not stat.S_ISDIR(st.st_mode):
        raise BoardError(f"{root} is not a folder; a board is a folder of images (plus optional pins.csv)")
    try:
        entries = sorted(root.iterdir())
        for entry in entries[:1]:
            entry.lstat()  # listing needs read permission, looking at the entries execute permission
    except OSError as exc:
        raise BoardError(
            f"board folder {root}: cannot read ({exc.strerror}); it needs read and execute permission "
            f"(chmod u+rx {root})"
        ) from None
    _, listed = read_pins_file(root)
    found: set[Path] = set()
    skipped: list[tuple[str, str]] = []
    for entry in entries:
        name = entry.name
        if name in PINS_FILES or name in listed:
            continue
        kind = _entry_kind(entry)
        if kind == "a regular file" and entry.suffix.lower() in IMAGE_SUFFIXES:
            found.add(entry)
        elif name.startswith("."):
            continue  # hidden files (.DS_Store, editors' swap files) are never pins
        elif kind == "a regular file":
            what = f"{entry.suffix.lower()} is" if entry.suffix else "a file without a suffix is"
            skipped.append((name, f"not read: {what} not a supported image format; convert it to JPEG, PNG, "
                                  "WebP or GIF"))
        elif kind == "a folder":
            skipped.append((name, "not read: a folder (board folders are not read recursively)"))
        else:
            skipped.append((name, f"not read: {kind}, not an image file"))
    files = sorted(found | {root / name for name in listed})
    items: list[tuple[Pin, bytes]] = []
    for path in files:
        pin = listed.get(path.name) or Pin(image=path.name)
        if not inside(root, path):  # a link that leaves the folder: never read what it points at
            skipped.append((path.name, "a link to a file outside the board folder (not read)"))
            continue
        try:
            data = read_image_bytes(path, max_bytes=max_bytes)
        except ImageError as exc:
            skipped.append((path.name, exc.message))
            continue
        items.append((pin, data))
    return build_board(
        root.name, items, max_pixels=max_pixels, max_bytes=max_bytes, skipped=skipped,
        reader=folder_reader(root, max_bytes),
    )
