"""What can be indexed or curated: the pins of board folders, and a shop's catalogue (``products.csv``).

Both become :class:`SourceImage` records: where the image file is, a stable key, the words (title, tags) and
the engagement a person gave it. Nothing here decodes pixels; reading the bytes is the caller's step, so a
missing or unreadable file is reported by the step that needs it.

**Boards.** ``DIR`` is one board (a folder of images, see :mod:`tastemaker.boards`), or a tree of them: every
folder under ``DIR`` that holds images directly is a board, and the folders above it name its *account*
(``DIR/alice/summer/`` is board ``summer`` of account ``alice``; a plain folder of boards has no accounts).

**Catalogues.** ``products.csv`` has the columns ``id, title, image, url, price, currency, brand, tags``
(``id`` and ``image`` required; ``image`` a file path, relative to the CSV's folder; tags ``;``-separated).
A malformed row is a :class:`~tastemaker.errors.CatalogueError` naming the file and line: a missing id, an id
listed twice, a price that is not a number >= 0, an image that is a URL (nothing is fetched from the network
here: download the images and give their paths) or a file that does not exist.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..boards import MAX_PINS_FILE_BYTES, Pin, read_pins_file
from ..errors import BoardError, CatalogueError
from ..media import IMAGE_SUFFIXES, read_bounded
from ..taste.weights import WeightConfig, engagement_score

CATALOGUE_FIELDS = ("id", "title", "image", "url", "price", "currency", "brand", "tags")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^//|^data:", re.IGNORECASE)
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
Kind = Literal["pin", "product"]


@dataclass(frozen=True)
class SourceImage:
    """One image to index or curate, with what is known about it besides its pixels."""

    key: str  #: stable id: ``pin:<first 16 hex of the bytes' SHA-256>`` or ``product:<catalogue id>``
    kind: Kind
    path: Path
    title: str = ""
    tags: tuple[str, ...] = ()
    board: str = ""
    account: str = ""
    source: str = ""
    url: str = ""
    price: float | None = None
    currency: str = ""
    brand: str = ""
    saves: int = 0
    clicks: int = 0
    dwell_seconds: float = 0.0
    #: the engagement score of :func:`tastemaker.taste.weights.engagement_score` (0 for catalogue items)
    engagement: float = 0.0
    #: filled by whoever read the bytes
    sha256: str = field(default="", compare=False)

    @property
    def text(self) -> str:
        """Title and tags as one string (what text search and captions use)."""
        return " ".join([self.title, *self.tags]).strip()


def is_url(value: str) -> bool:
    """Whether ``value`` names a network resource (``https://``, ``s3://``, ``//host``, ``data:``) and not a file."""
    return bool(_URL.match(value.strip()))


# ------------------------------------------------------------------------------------------ boards


def _has_images(folder: Path) -> bool:
    try:
        return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
                   for p in folder.iterdir())
    except OSError:
        return False


def find_board_folders(root: Path) -> list[tuple[str, str, Path]]:
    """``(account, board, folder)`` for every board under ``root`` (``root`` itself when it holds images)."""
    if not root.is_dir():
        raise BoardError(f"{root} is not a folder; give a board folder or a folder of board folders")
    if _has_images(root):
        return [("", root.name, root)]
    found: list[tuple[str, str, Path]] = []

    def walk(folder: Path, parents: tuple[str, ...]) -> None:
        try:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as exc:
            raise BoardError(f"{folder}: cannot read ({exc.strerror})") from None
        for sub in subs:
            if _has_images(sub):
                found.append(("/".join(parents), sub.name, sub))
            elif len(parents) < 4:
                walk(sub, (*parents, sub.name))

    walk(root, ())
    if not found:
        raise BoardError(f"{root} holds no images and no board folders with images")
    return found


def board_images(root: Path, *, weights: WeightConfig | None = None) -> Iterator[SourceImage]:
    """Every image of every board under ``root``, with its pin's title, tags, source and engagement.

    The key is filled from the bytes later (:func:`with_sha256`); until then it is the path.
    """
    cfg = weights or WeightConfig()
    for account, board, folder in find_board_folders(root):
        _, listed = read_pins_file(folder)
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            pin = listed.get(path.name) or Pin(image=path.name)
            yield SourceImage(
                key=f"pin-path:{path}", kind="pin", path=path, title=pin.title, tags=pin.tags, board=board,
                account=account, source=pin.source, saves=pin.saves, clicks=pin.clicks,
                dwell_seconds=pin.dwell_seconds, engagement=round(engagement_score(pin, cfg), 6),
            )


def with_sha256(item: SourceImage, data: bytes) -> SourceImage:
    """``item`` with its bytes' SHA-256, and (for a pin) its content key."""
    from dataclasses import replace

    digest = hashlib.sha256(data).hexdigest()
    key = f"pin:{digest[:16]}" if item.kind == "pin" else item.key
    return replace(item, sha256=digest, key=key)


# ------------------------------------------------------------------------------------------ catalogues


def _price(value: str, path: Path, line: int) -> float | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        price = float(text)
    except ValueError:
        raise CatalogueError(path, line, f"price must be a number >= 0, got {text[:40]!r}") from None
    if not math.isfinite(price) or price < 0:
        raise CatalogueError(path, line, f"price must be a number >= 0, got {text[:40]!r}")
    return price


def read_catalogue(path: Path | str, *, check_images: bool = True) -> list[SourceImage]:
    """Parse ``products.csv``; every problem is a :class:`CatalogueError` naming the file and line."""
    p = Path(path)
    data = read_bounded(p, MAX_PINS_FILE_BYTES * 4, lambda m: CatalogueError(p, None, m))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError(p, 1, f"not UTF-8 text ({exc.reason})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise CatalogueError(p, 1, f"malformed CSV header ({exc})") from None
    missing = [c for c in ("id", "image") if c not in header]
    if missing:
        raise CatalogueError(p, 1, f"the header must have the columns {', '.join(CATALOGUE_FIELDS)} "
                                   f"(id and image required); missing {', '.join(missing)}")
    unknown = [h for h in header if h and h not in CATALOGUE_FIELDS]
    if unknown:
        raise CatalogueError(p, 1, f"unknown column(s) {', '.join(unknown)}; the columns are "
                                   f"{', '.join(CATALOGUE_FIELDS)}")
    items: list[SourceImage] = []
    seen: dict[str, int] = {}
    rows = iter(reader)
    while True:
        start = reader.line_num + 1
        try:
            raw = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CatalogueError(p, start, f"malformed CSV ({exc})") from None
        line = reader.line_num
        if None in raw:
            raise CatalogueError(p, line, f"more fields than the header's {len(header)} columns")
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        pid = row.get("id", "")
        if not pid:
            raise CatalogueError(p, line, "missing the 'id' field (the product's id in your shop)")
        if pid in seen:
            raise CatalogueError(p, line, f"id {pid!r} is listed twice (first on line {seen[pid]})")
        seen[pid] = line
        image = row.get("image", "")
        if not image:
            raise CatalogueError(p, line, f"product {pid!r} has no image (a file path relative to {p.name})")
        if is_url(image):
            raise CatalogueError(p, line, f"image {image[:80]!r} is a URL; this command never fetches from the "
                                          "network: download the images and give their file paths")
        img_path = Path(image) if Path(image).is_absolute() else p.parent / image
        if check_images and not img_path.is_file():
            raise CatalogueError(p, line, f"image {image!r} not found (looked for {img_path})")
        if check_images and img_path.suffix.lower() not in IMAGE_SUFFIXES:
            raise CatalogueError(p, line, f"image {image!r} is not a JPEG, PNG, WebP, GIF, TIFF or BMP file")
        currency = row.get("currency", "")
        if currency and not _CURRENCY.match(currency):
            raise CatalogueError(p, line, f"currency must be a 3-letter ISO 4217 code such as EUR, got "
                                          f"{currency[:20]!r}")
        price = _price(row.get("price", ""), p, line)
        if price is not None and not currency:
            raise CatalogueError(p, line, f"product {pid!r} has a price but no currency")
        tags = tuple(t.strip() for t in row.get("tags", "").split(";") if t.strip())
        items.append(SourceImage(
            key=f"product:{pid}", kind="product", path=img_path, title=row.get("title", ""), tags=tags,
            url=row.get("url", ""), price=price, currency=currency.upper(), brand=row.get("brand", ""),
            source=row.get("brand", ""),
        ))
    if not items:
        raise CatalogueError(p, None, "the catalogue has no products (only a header, or nothing)")
    return items


def read_sources(path: Path | str) -> list[SourceImage]:
    """A ``.csv`` catalogue, or the pins of a board folder (tree)."""
    p = Path(path)
    if is_url(str(path)):
        raise CatalogueError(str(path), None, "a URL; this command never fetches from the network: give a "
                                              "folder of boards or a products.csv")
    if p.suffix.lower() == ".csv" and p.name not in ("pins.csv",):
        if not p.exists():
            raise CatalogueError(p, None, "file not found")
        return read_catalogue(p)
    if not p.exists():
        raise BoardError(f"{p} does not exist; give a board folder, a folder of boards or a products.csv")
    return list(board_images(p))
