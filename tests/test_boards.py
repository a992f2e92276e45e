"""Board import: pins files, defaults, unlisted images, malformed rows, unreadable images."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tastemaker.boards import Board, load_board, parse_pins_csv
from tastemaker.errors import BoardError, EmptyBoardError, PinsFileError
from tastemaker.media import encode_image

from .conftest import neon_image


def _board_dir(tmp_path: Path, n: int = 3, fmt: str = "png") -> Path:
    d = tmp_path / "board"
    d.mkdir()
    for i in range(n):
        (d / f"p{i}.{fmt}").write_bytes(encode_image(neon_image(i, 64), fmt))
    return d


def test_folder_without_pins_file_uses_defaults(tmp_path: Path) -> None:
    board = load_board(_board_dir(tmp_path))
    assert len(board) == 3
    for pin in board.pins:
        assert (pin.saves, pin.clicks, pin.dwell_seconds, pin.pinned_at, pin.tags) == (0, 0, 0.0, None, ())
        assert len(pin.sha256) == 64


def test_csv_fields_parsed_and_unlisted_images_still_count(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.csv").write_text(
        "image,saves,clicks,dwell_seconds,pinned_at,title,tags\n"
        "p0.png,5,7,12.5,2024-05-01T12:00:00Z,Golden cafe,warm; film ;cafe\n"
        "p1.png,,,,2024-05-02 08:00,,\n"
    )
    board = load_board(d)
    pins = {p.image: p for p in board.pins}
    assert set(pins) == {"p0.png", "p1.png", "p2.png"}
    p0 = pins["p0.png"]
    assert (p0.saves, p0.clicks, p0.dwell_seconds) == (5, 7, 12.5)
    assert p0.pinned_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert p0.tags == ("warm", "film", "cafe") and p0.title == "Golden cafe"
    assert pins["p1.png"].pinned_at == datetime(2024, 5, 2, 8, tzinfo=UTC)  # naive -> UTC
    assert pins["p2.png"].saves == 0


def test_jsonl(tmp_path: Path) -> None:
    d = _board_dir(tmp_path, fmt="jpeg")
    rows = [{"image": "p0.jpeg", "saves": 3, "tags": ["a", "b"]}, {"image": "p2.jpeg", "dwell_seconds": 4}]
    (d / "pins.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pins = {p.image: p for p in load_board(d).pins}
    assert pins["p0.jpeg"].tags == ("a", "b") and pins["p2.jpeg"].dwell_seconds == 4.0


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("image,saves\np0.png,3\np1.png,many\n", 3, "saves must be a whole number"),
        ("image,saves\np0.png,-1\n", 2, "saves must be a whole number"),
        ("image,pinned_at\np0.png,yesterday\n", 2, "not ISO 8601"),
        ("image,dwell_seconds\np0.png,nan\n", 2, "dwell_seconds must be a number"),
        ("image,saves\np0.png,1\np0.png,2\n", 3, "listed twice"),
        ("image,saves\nmissing.png,1\n", 2, "not found"),
        ("image,saves\np0.png,1,extra\n", 2, "more fields than the header"),
        ("title,saves\nx,1\n", 1, "header must include an 'image' column"),
        ("image\n../etc/passwd\n", 2, "plain file name"),
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.csv").write_text(content)
    with pytest.raises(PinsFileError, match=rf"pins\.csv, line {line}: .*{message}") as exc:
        load_board(d)
    assert exc.value.line == line


def test_malformed_jsonl_names_line(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.jsonl").write_text('{"image": "p0.png"}\n\n{"image": "p1.png", \n')
    with pytest.raises(PinsFileError, match=r"pins\.jsonl, line 3: invalid JSON"):
        load_board(d)


def test_both_pins_files_is_an_error(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.csv").write_text("image\n")
    (d / "pins.jsonl").write_text("")
    with pytest.raises(BoardError, match="both pins.csv and pins.jsonl"):
        load_board(d)


def test_empty_board(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(EmptyBoardError, match="has no images"):
        load_board(d)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="does not exist"):
        load_board(tmp_path / "nope")


def test_only_unreadable_images(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"")
    (d / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(EmptyBoardError, match=r"none of its 2 images could be used .*a\.jpg: .*empty"):
        load_board(d)


def test_unreadable_image_is_skipped_and_reported(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "broken.jpg").write_bytes(b"not really a jpeg")
    board = load_board(d)
    assert len(board) == 3
    assert [name for name, _ in board.skipped] == ["broken.jpg"]


def test_duplicate_images_counted_once(tmp_path: Path) -> None:
    d = _board_dir(tmp_path, n=2)
    (d / "copy.png").write_bytes((d / "p0.png").read_bytes())
    board = load_board(d)
    assert len(board) == 2 and board.skipped[0][0] in {"copy.png", "p0.png"}


def test_export_roundtrip(tmp_path: Path, demo_board: Board) -> None:
    out = tmp_path / "pins.csv"
    out.write_text(demo_board.to_csv())
    parsed = {p.image: p for _, p in parse_pins_csv(out)}
    for pin in demo_board.pins:
        q = parsed[pin.image]
        assert (q.saves, q.clicks, q.dwell_seconds, q.pinned_at, q.tags, q.title) == (
            pin.saves, pin.clicks, pin.dwell_seconds, pin.pinned_at, pin.tags, pin.title,
        )
    lines = demo_board.to_jsonl().splitlines()
    assert len(lines) == len(demo_board) and json.loads(lines[0])["image"]


def test_pins_are_in_canonical_order(tmp_path: Path) -> None:
    board = load_board(_board_dir(tmp_path, n=5))
    hashes = [p.sha256 for p in board.pins]
    assert hashes == sorted(hashes)
    assert all(t.dtype == np.uint8 and max(t.shape[:2]) <= 256 for t in board.thumbs)


# ------------------------------------------------------------------ hostile board folders (issue 11)


def test_deeply_nested_pins_jsonl_names_the_line(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.jsonl").write_text('{"image": "p0.png"}\n' + '{"image": "p1.png", "x": ' + "[" * 100_000 + "\n")
    with pytest.raises(PinsFileError, match=r"pins\.jsonl, line 2: .*nested"):
        load_board(d)


def test_huge_integer_in_pins_jsonl_names_the_line(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.jsonl").write_text('{"image": "p0.png", "saves": ' + "9" * 5000 + "}\n")
    with pytest.raises(PinsFileError, match=r"pins\.jsonl, line 1: .*digits"):
        load_board(d)


def test_symlinked_image_outside_the_folder_is_refused(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    secret = tmp_path / "elsewhere" / "private.png"
    secret.parent.mkdir()
    secret.write_bytes(encode_image(neon_image(9, 64), "png"))
    (d / "leak.png").symlink_to(secret)
    (d / "inside.png").symlink_to(d / "p0.png")  # a link that stays in the folder is fine (same image: dup)
    board = load_board(d)
    assert "leak.png" not in [p.image for p in board.pins]
    assert any(name == "leak.png" and "outside the board folder" in why for name, why in board.skipped)
    assert board.reader is not None
    with pytest.raises(BoardError, match="outside the board folder"):
        from tastemaker.boards import Pin, folder_reader

        folder_reader(d)(Pin(image="leak.png"))


def test_pins_file_listing_a_link_outside_is_refused(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    secret = tmp_path / "private.png"
    secret.write_bytes(encode_image(neon_image(9, 64), "png"))
    (d / "leak.png").symlink_to(secret)
    (d / "pins.csv").write_text("image,saves\nleak.png,3\n")
    with pytest.raises(PinsFileError, match="outside the board folder"):
        load_board(d)


def test_pins_file_linked_outside_is_refused(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("image\np0.png\n")
    (d / "pins.csv").symlink_to(other)
    with pytest.raises(BoardError, match="outside the board folder"):
        load_board(d)


def test_pins_file_linked_to_an_endless_device_does_not_hang(tmp_path: Path) -> None:
    d = _board_dir(tmp_path)
    (d / "pins.csv").symlink_to("/dev/zero")
    with pytest.raises(BoardError):
        load_board(d)


def test_pins_file_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    import os

    d = _board_dir(tmp_path)
    os.mkfifo(d / "pins.jsonl")  # opening a FIFO for reading would block until a writer comes
    with pytest.raises(BoardError, match="not a regular file"):
        load_board(d)


def test_oversized_pins_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tastemaker.boards as boards

    monkeypatch.setattr(boards, "MAX_PINS_FILE_BYTES", 1000)
    d = _board_dir(tmp_path)
    (d / "pins.csv").write_text("image,title\n" + "".join(f"p0.png,{'x' * 50}\n" for _ in range(40)))
    with pytest.raises(BoardError, match="pins.csv is over the 0.001 MB limit"):
        load_board(d)
