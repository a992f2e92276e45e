"""Evaluation data on disk: folders of selfies and folders of boards, with every skip on record.

Selfies (``--selfies DIR``), one of two layouts:

* **flat** — images directly in ``DIR``; each image is its own person (no other photos to compare
  with, so identity is measured against the selfie only);
* **per person** — one sub-folder per person (``DIR/<person>/*.jpg``). The first photo (by file name)
  is the selfie the engine gets (the first ``selfies_per_person`` photos take turns); the others are
  held out and each output is also compared with them: identity transfer, not pixel copying.

Mixing the two (images beside person folders) is refused: it is ambiguous which person they are.

Boards (``--boards DIR``): one sub-folder per board, each read with :func:`tastemaker.load_board`
(images + optional ``pins.csv`` / ``pins.jsonl``). A folder holding images and no sub-folders is taken
as one board.

Nothing is dropped silently. Unreadable images, photos without a usable face (none, several, too
small), images outside a board folder and boards with nothing readable become :class:`Skip` entries
that the report lists; only when *nothing* usable is left is it an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..boards import Board, load_board
from ..encoders.identity import Face, IdentityEncoder
from ..errors import BoardError, EmptyBoardError, FaceError, ImageError, InputError, NoFaceError
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, decode_image, read_image_bytes


@dataclass(frozen=True)
class Skip:
    """Something the evaluation could not use, and why."""

    kind: str  # "selfie", "pin", "board", "file"
    where: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "reason": self.reason}


@dataclass
class Photo:
    """One decoded photo of a person with its face and dlib embedding."""

    name: str
    path: Path
    image: np.ndarray = field(repr=False)
    face: Face = field(repr=False)
    embedding: np.ndarray = field(repr=False)
    decode_s: float = 0.0
    identity_s: float = 0.0


@dataclass
class Person:
    name: str
    photos: list[Photo]

    def others(self, selfie: Photo) -> list[Photo]:
        """The person's photos other than ``selfie`` (held out from the engine)."""
        return [p for p in self.photos if p is not selfie]


@dataclass
class SelfieSet:
    root: Path
    layout: str  # "flat" | "per-person"
    people: list[Person]
    skipped: list[Skip] = field(default_factory=list)


@dataclass
class BoardEntry:
    name: str
    path: Path
    board: Board = field(repr=False)
    load_s: float = 0.0


@dataclass
class BoardSet:
    root: Path
    boards: list[BoardEntry]
    skipped: list[Skip] = field(default_factory=list)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES


def _folder(root: Path | str, what: str) -> Path:
    r = Path(root)
    if not r.exists():
        raise InputError(f"{what} folder {r} does not exist")
    if not r.is_dir():
        raise InputError(f"{what} path {r} is not a folder")
    return r


def load_selfies(
    root: Path | str,
    *,
    encoder: IdentityEncoder | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SelfieSet:
    """Read a selfie folder (flat or one sub-folder per person); see the module docstring."""
    r = _folder(root, "selfies")
    enc = encoder or IdentityEncoder()
    entries = sorted(p for p in r.iterdir() if _visible(p))
    files = [p for p in entries if _is_image(p)]
    dirs = [p for p in entries if p.is_dir()]
    skipped = [
        Skip("file", str(p.relative_to(r)), "not an image (by suffix); ignored")
        for p in entries
        if p.is_file() and not _is_image(p)
    ]
    dirs_with_images = [d for d in dirs if any(_is_image(f) for f in d.iterdir())]
    if files and dirs_with_images:
        raise InputError(
            f"selfies folder {r} mixes images ({files[0].name}, ...) with person folders "
            f"({dirs_with_images[0].name}/, ...); use either images directly or one sub-folder per person"
        )
    groups: list[tuple[str, list[Path]]]
    if dirs_with_images:
        layout = "per-person"
        groups = []
        for d in dirs:
            imgs = sorted(f for f in d.iterdir() if _visible(f) and _is_image(f))
            skipped += [
                Skip("file", str(f.relative_to(r)), "not an image (by suffix); ignored")
                for f in sorted(d.iterdir())
                if _visible(f) and f.is_file() and not _is_image(f)
            ]
            if not imgs:
                skipped.append(Skip("selfie", f"{d.name}/", "person folder has no images"))
                continue
            groups.append((d.name, imgs))
    else:
        layout = "flat"
        stems = [f.stem for f in files]
        groups = [(f.stem if stems.count(f.stem) == 1 else f.name, [f]) for f in files]
        skipped += [Skip("file", f"{d.name}/", "folder without images; ignored") for d in dirs]
    if not groups:
        raise InputError(
            f"selfies folder {r} has no images; put selfies in it (JPEG, PNG, WebP) or one sub-folder per person"
        )

    people: list[Person] = []
    tried = 0
    for name, paths in groups:
        photos: list[Photo] = []
        for path in paths:
            tried += 1
            where = str(path.relative_to(r))
            t = time.perf_counter()
            try:
                img = decode_image(
                    read_image_bytes(path, max_bytes=max_bytes), name=path.name, max_pixels=max_pixels,
                    max_bytes=max_bytes,
                )
            except ImageError as exc:
                skipped.append(Skip("selfie", where, exc.message))
                continue
            decode_s = time.perf_counter() - t
            t = time.perf_counter()
            try:
                face, vec = enc.embed(img, name=path.name)
            except FaceError as exc:
                skipped.append(Skip("selfie", where, exc.message))
                continue
            photos.append(Photo(path.name, path, img, face, vec, decode_s, time.perf_counter() - t))
        if photos:
            people.append(Person(name, photos))
        elif len(paths) > 1:
            skipped.append(Skip("selfie", f"{name}/", "no photo of this person has a usable face"))
    if not people:
        detail = "; ".join(f"{s.where}: {s.reason}" for s in skipped if s.kind == "selfie")[:600]
        raise NoFaceError(f"no usable face in any of the {tried} selfie image(s) in {r} — {detail}")
    return SelfieSet(root=r, layout=layout, people=people, skipped=skipped)


def load_boards(
    root: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> BoardSet:
    """Read a folder of board folders (or one board folder); see the module docstring."""
    r = _folder(root, "boards")
    entries = sorted(p for p in r.iterdir() if _visible(p))
    dirs = [p for p in entries if p.is_dir()]
    skipped: list[Skip] = []
    if not dirs:
        targets = [r] if any(_is_image(p) for p in entries) else []
    else:
        targets = dirs
        skipped += [
            Skip("file", p.name, "not inside a board sub-folder; ignored")
            for p in entries
            if p.is_file()
        ]
    if not targets:
        raise EmptyBoardError(
            f"boards folder {r} has no boards; make one sub-folder per board with its images (+ optional pins.csv)"
        )
    boards: list[BoardEntry] = []
    for d in targets:
        t = time.perf_counter()
        try:
            board = load_board(d, max_pixels=max_pixels, max_bytes=max_bytes)
        except BoardError as exc:
            skipped.append(Skip("board", f"{d.name}/", exc.message))
            continue
        dt = time.perf_counter() - t
        skipped += [Skip("pin", f"{d.name}/{name}", reason) for name, reason in board.skipped]
        boards.append(BoardEntry(d.name, d, board, dt))
    if not boards:
        detail = "; ".join(f"{s.where}: {s.reason}" for s in skipped if s.kind == "board")[:600]
        raise EmptyBoardError(f"no usable board in {r} — {detail}")
    return BoardSet(root=r, boards=boards, skipped=skipped)
