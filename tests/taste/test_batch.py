"""Batch profile builds (``tastemaker profile batch``): local pool, failures per board, Ray on a real cluster.

The Ray tests run on a real two-node cluster on 127.0.0.1 (a head with 2 CPUs and a worker node with 1), the
session fixture ``ray_cluster`` of ``tests/conftest.py``; they are skipped when Ray is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tastemaker.boards import load_board
from tastemaker.cli.app import app
from tastemaker.taste.batch import make_jobs, run_local
from tastemaker.taste.profile import ProfileConfig, build_profile

DEMO = Path(__file__).resolve().parents[2] / "src" / "tastemaker" / "data" / "demo" / "board"
N_BOARDS = 50
runner = CliRunner()


def _write_boards(root: Path, n: int) -> None:
    """``n`` small boards: 3-5 pins each, 48×48 crops of the demo pictures with a per-board colour shift."""
    sources = [np.asarray(Image.open(p).convert("RGB").resize((72, 72))) for p in sorted(DEMO.glob("*.jpg"))]
    for b in range(n):
        folder = root / f"board-{b:02d}"
        folder.mkdir(parents=True)
        n_pins = 3 + b % 3
        rows = ["image,saves,clicks"]
        for i in range(n_pins):
            src = sources[(b * 5 + i * 3) % len(sources)].astype(np.int16)
            off = (b + i * 7) % 24
            crop = src[off:off + 48, 23 - off:71 - off]
            shift = np.array([(b * 13) % 41 - 20, (b * 7) % 31 - 15, (b * 11) % 37 - 18], np.int16)
            Image.fromarray(np.clip(crop + shift, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
            rows.append(f"p{i}.png,{(b + i) % 9},{i * 2}")
        if b % 2 == 0:  # half the boards carry engagement
            (folder / "pins.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def boards_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("boards")
    _write_boards(root, N_BOARDS)
    return root


@pytest.fixture(scope="module")
def expected(boards_dir: Path) -> dict[str, str]:
    """Content hash of each board's profile, built one by one the ordinary way."""
    return {
        d.name: build_profile(load_board(d), ProfileConfig(max_modes=4)).content_hash()
        for d in sorted(boards_dir.iterdir())
    }


def _hashes(out: Path) -> dict[str, str]:
    doc = json.loads((out / "batch.json").read_text())
    assert all(b["ok"] for b in doc["boards"]), doc
    return {b["name"]: b["content_hash"] for b in doc["boards"]}


def test_local_batch_equals_per_board_builds(boards_dir: Path, expected: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["profile", "batch", str(boards_dir), "-o", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert _hashes(out) == expected
    doc = json.loads((out / "batch.json").read_text())
    assert doc["n_boards"] == N_BOARDS and doc["n_failed"] == 0 and doc["runner"] == "local"
    first = doc["boards"][0]
    assert first["pins"] == 3 and first["modes"] >= 1 and first["profile"] == "board-00.json"
    from tastemaker.taste.profile import TasteProfile

    for name, digest in list(expected.items())[:5]:
        assert TasteProfile.load(out / f"{name}.json").content_hash() == digest
    # in this process, one board after the other: the same profiles
    seq = run_local(make_jobs(boards_dir), workers=1)
    assert {r.name: r.content_hash for r in seq} == expected


def test_a_broken_board_is_reported_and_the_others_are_built(boards_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "boards"
    for name in ("board-00", "board-01", "board-02"):
        shutil.copytree(boards_dir / name, src / name)
    (src / "empty").mkdir()
    shutil.copytree(boards_dir / "board-04", src / "bad-pins")
    (src / "bad-pins" / "pins.csv").write_bytes(b"image,saves\n\"p0.png,\x00\xff\nnot,a,number,row\n")
    (src / "notes.txt").write_text("not a board")  # files beside the board folders are not boards
    out = tmp_path / "out"
    result = runner.invoke(app, ["profile", "batch", str(src), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 1, result.output
    doc = json.loads((out / "batch.json").read_text())
    by_name = {b["name"]: b for b in doc["boards"]}
    assert sorted(by_name) == ["bad-pins", "board-00", "board-01", "board-02", "empty"]
    assert not by_name["empty"]["ok"] and "Board" in by_name["empty"]["error"]
    assert not by_name["bad-pins"]["ok"] and by_name["bad-pins"]["error"]
    assert doc["n_ok"] == 3 and doc["n_failed"] == 2
    assert sorted(p.name for p in out.glob("board-*.json")) == ["board-00.json", "board-01.json", "board-02.json"]
    assert "failed empty:" in result.output and "failed bad-pins:" in result.output


def test_not_a_folder_of_boards(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    result = runner.invoke(app, ["profile", "batch", str(tmp_path / "none"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no board folders" in result.output


def test_without_ray_nothing_imports_ray(boards_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "boards"
    shutil.copytree(boards_dir / "board-03", src / "board-03")
    code = (
        "import sys\n"
        "from tastemaker.cli.app import app\n"
        f"sys.argv = ['tastemaker', 'profile', 'batch', {str(src)!r}, '-o', {str(tmp_path / 'out')!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "out" / "board-03.json").is_file()


# ------------------------------------- a real Ray cluster on loopback (the ray_cluster fixture of tests/conftest.py)


def test_ray_batch_equals_local_and_retries_a_dead_worker(
    ray_cluster: str, boards_dir: Path, expected: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["profile", "batch", str(boards_dir), "-o", str(out), "--ray", ray_cluster])
    assert result.exit_code == 0, result.output
    assert _hashes(out) == expected
    assert json.loads((out / "batch.json").read_text())["runner"] == "ray"

    # one board's task kills its own worker process the first time: Ray retries it, nothing changes
    from tastemaker.taste.batch_ray import run_ray

    marker = tmp_path / "crashed-once"
    jobs = make_jobs(boards_dir, crash_once={"board-07": str(marker)})
    results = run_ray(jobs, ray_cluster)
    assert marker.exists(), "the crashing task did not run"
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert {r.name: r.content_hash for r in results} == expected

