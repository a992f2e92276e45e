"""The diffusion commands through Typer's runner, and ``generate --engine diffusion`` from settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from .helpers import require, tiny_paths

require()

from tastemaker.cli import app as main_app  # noqa: E402


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return main_app  # the diffusion commands are registered by tastemaker.cli.app


def test_tiny_clip_embed_and_generate_from_settings(app: typer.Typer, tmp_path: Path, demo_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tastemaker import engines
    from tastemaker.engines.diffusion import create_diffusion_engine

    runner = CliRunner()
    res = runner.invoke(app, ["diffusion-tiny", str(tmp_path / "tiny")])
    assert res.exit_code == 0, res.output
    assert "TASTEMAKER_DIFFUSION_BASE=" in res.output
    res = runner.invoke(app, ["clip-embed", str(demo_dir / "board"), "--image-encoder",
                              str(tmp_path / "tiny" / "image_encoder"), "-o", str(tmp_path / "board.clip.json")])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "board.clip.json").read_text())["pins"]) == 13

    monkeypatch.setitem(engines._REGISTRY, "diffusion", create_diffusion_engine)
    for key, sub in [("BASE", "base"), ("IMAGE_ENCODER", "image_encoder"), ("STYLEEMBED", "styleembed")]:
        monkeypatch.setenv(f"TASTEMAKER_DIFFUSION_{key}", str(tmp_path / "tiny" / sub))
    monkeypatch.setenv("TASTEMAKER_DIFFUSION_DEVICE", "cpu")
    # tiny random models draw no face: switch the guard off from inside (the CLI refuses a non-finite threshold)
    import tastemaker.cli.generate

    monkeypatch.setattr(tastemaker.cli.generate, "_identity_threshold", lambda option, configured: float("inf"))
    res = runner.invoke(app, ["generate", "-s", str(demo_dir / "selfie.jpg"), "-b", str(demo_dir / "board"),
                              "-o", str(tmp_path / "out"), "-n", "2", "--size", "256", "--seed", "1",
                              "--engine", "diffusion"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["engine"]["name"] == "diffusion" and len(manifest["images"]) == 2


def test_train_command_and_its_errors(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    p = tiny_paths()
    res = runner.invoke(app, ["train-styleembed", "--base", str(p.base), "--data", str(tmp_path), "-o",
                              str(tmp_path / "out"), "--image-encoder", str(p.image_encoder), "--steps", "1"])
    assert res.exit_code == 2 and "examples.jsonl not found" in res.output
    res = runner.invoke(app, ["train-styleembed", "--base", str(tmp_path / "nope"), "--data", str(tmp_path), "-o",
                              str(tmp_path / "out"), "--precision", "fp16", "--device", "cpu"])
    assert res.exit_code == 2 and "needs a CUDA device" in res.output
