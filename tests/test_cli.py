"""The command line: happy paths and exact exit codes for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.cli import app
from tastemaker.media import encode_image, load_image

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("prof") / "profile.json"
    code, text = run("profile", str(demo_dir / "board"), "-o", str(out))
    assert code == 0, text
    return out


def test_profile_command(profile_file: Path) -> None:
    data = json.loads(profile_file.read_text())
    assert data["schema"] == "tastemaker.profile" and len(data["modes"]) == 2


def test_generate_writes_images_manifest_and_contact_sheet(
    tmp_path: Path, profile_file: Path, selfie_path: Path
) -> None:
    out = tmp_path / "out"
    code, text = run("generate", "--selfie", str(selfie_path), "--profile", str(profile_file), "-n", "2",
                     "--size", "320", "--format", "jpeg", "--seed", "3", "-o", str(out))
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == 2
    for entry in manifest["images"]:
        img = load_image(out / entry["file"])
        assert max(img.shape[:2]) == 320 and entry["file"].endswith(".jpg")
        assert entry["identity_distance"] < 0.35
        assert {"mode", "seed", "style_score", "timings_ms"} <= set(entry)
    assert (out / "contact_sheet.png").stat().st_size > 10_000
    assert manifest["request"]["seed"] == 3


def test_demo_command(tmp_path: Path) -> None:
    code, text = run("demo", "-o", str(tmp_path / "demo"), "-n", "2", "--size", "384")
    assert code == 0, text
    assert "Contact sheet:" in text and (tmp_path / "demo" / "contact_sheet.png").exists()


def test_identity_command_never_stores_the_image(tmp_path: Path, selfie_path: Path) -> None:
    out = tmp_path / "me.json"
    code, text = run("identity", str(selfie_path), "-o", str(out))
    assert code == 0, text
    data = json.loads(out.read_text())
    assert data["kind"] == "tastemaker.identity" and len(data["vector"]) == 128
    assert out.stat().st_size < 5_000


def test_selfie_without_a_face(tmp_path: Path, profile_file: Path, demo_dir: Path) -> None:
    code, text = run("generate", "-s", str(demo_dir / "board" / "cat-nap.jpg"), "-p", str(profile_file),
                     "-o", str(tmp_path / "o"))
    assert code == 2
    assert "NoFaceError: cat-nap.jpg: no face found" in text
    assert "Traceback" not in text
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_selfie_with_two_faces(tmp_path: Path, profile_file: Path, selfie: np.ndarray) -> None:
    p = tmp_path / "two.png"
    p.write_bytes(encode_image(np.concatenate([selfie, selfie[:, ::-1]], axis=1), "png"))
    code, text = run("generate", "-s", str(p), "-p", str(profile_file), "-o", str(tmp_path / "o"))
    assert code == 2 and "MultipleFacesError" in text and "--face-index" in text
    code, text = run("generate", "-s", str(p), "-p", str(profile_file), "-o", str(tmp_path / "o"),
                     "--face-index", "1", "-n", "1", "--size", "256")
    assert code == 0, text


def test_tiny_face(tmp_path: Path, profile_file: Path, selfie: np.ndarray) -> None:
    p = tmp_path / "tiny.jpg"
    p.write_bytes(encode_image(selfie[::2, ::2].copy(), "jpeg"))
    code, text = run("identity", str(p), "-o", str(tmp_path / "x.json"))
    assert code == 2 and "FaceTooSmallError" in text


@pytest.mark.parametrize("content", [b"", b"GIF89a broken", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_unreadable_selfie(tmp_path: Path, profile_file: Path, content: bytes) -> None:
    p = tmp_path / "selfie.jpg"
    p.write_bytes(content)
    code, text = run("generate", "-s", str(p), "-p", str(profile_file), "-o", str(tmp_path / "o"))
    assert code == 2 and "ImageDecodeError: selfie.jpg" in text


def test_empty_board(tmp_path: Path, selfie_path: Path) -> None:
    (tmp_path / "b").mkdir()
    code, text = run("generate", "-s", str(selfie_path), "-b", str(tmp_path / "b"), "-o", str(tmp_path / "o"))
    assert code == 2 and "EmptyBoardError" in text


def test_board_of_unreadable_images(tmp_path: Path) -> None:
    b = tmp_path / "b"
    b.mkdir()
    (b / "x.png").write_bytes(b"nope")
    code, text = run("profile", str(b), "-o", str(tmp_path / "p.json"))
    assert code == 2 and "none of its 1 images could be used" in text


def test_malformed_csv_names_line(tmp_path: Path, demo_dir: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(demo_dir / "board", b)
    lines = (b / "pins.csv").read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "lots", 1)
    (b / "pins.csv").write_text("\n".join(lines) + "\n")
    code, text = run("profile", str(b), "-o", str(tmp_path / "p.json"))
    assert code == 2 and "pins.csv, line 4: saves must be a whole number" in text
    assert not (tmp_path / "p.json").exists()


def test_skipped_images_are_reported(tmp_path: Path, demo_dir: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(demo_dir / "board", b)
    (b / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    code, text = run("profile", str(b), "-o", str(tmp_path / "p.json"))
    assert code == 0 and "skipped broken.jpg" in text


def test_output_dir_not_writable(tmp_path: Path, profile_file: Path, selfie_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, text = run("generate", "-s", str(selfie_path), "-p", str(profile_file), "-o", str(blocker / "out"))
    assert code == 73 and "OutputError" in text


def test_bad_request_values(tmp_path: Path, profile_file: Path, selfie_path: Path) -> None:
    code, text = run("generate", "-s", str(selfie_path), "-p", str(profile_file), "-o", str(tmp_path), "-n", "20")
    assert code == 2 and "RequestError: n:" in text
    code, text = run("generate", "-s", str(selfie_path), "-p", str(profile_file), "-o", str(tmp_path),
                     "--aspect", "5:1")
    assert code == 2 and "aspect: must be one of" in text
    code, text = run("generate", "-s", str(selfie_path), "-o", str(tmp_path))
    assert code == 2 and "exactly one of --board DIR or --profile FILE" in text


def test_bad_profile_file(tmp_path: Path, selfie_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text("{}")
    code, text = run("generate", "-s", str(selfie_path), "-p", str(p), "-o", str(tmp_path / "o"))
    assert code == 2 and "ProfileError" in text


def test_version_and_engines() -> None:
    code, text = run("--version")
    assert code == 0 and text.startswith("tastemaker ")
    code, text = run("engines")
    assert code == 0 and "look" in text


def test_identity_file_instead_of_selfie(tmp_path: Path, profile_file: Path, selfie_path: Path) -> None:
    ident = tmp_path / "me.json"
    assert run("identity", str(selfie_path), "-o", str(ident))[0] == 0
    code, text = run("generate", "--identity", str(ident), "-p", str(profile_file), "-o", str(tmp_path / "o"))
    assert code == 2 and "the look engine redraws a selfie" in text
    code, text = run("generate", "-p", str(profile_file), "-o", str(tmp_path / "o"))
    assert code == 2 and "--identity FILE" in text
    code, text = run("generate", "--identity", str(ident), "-s", str(selfie_path), "-p", str(profile_file),
                     "-n", "1", "--size", "256", "-o", str(tmp_path / "o"))
    assert code == 0, text
