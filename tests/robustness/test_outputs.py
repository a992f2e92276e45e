"""Issue 12 items 3, 8 and 11 (outputs): what the CLI writes. Only regular files are ever replaced; JSON is
standard JSON; a reused ``-o`` folder ends up holding the new run only, and an interrupted run never leaves a
manifest naming files that are gone."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.cli import app
from tastemaker.errors import OutputError
from tastemaker.media import check_output_path, write_atomic

from .corpus import BOARD, SELFIE, strict_json

runner = CliRunner()


def test_write_atomic_replaces_only_regular_files(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for path, kind in ((link, "a symbolic link"), (fifo, "a named pipe (FIFO)"), (folder, "a folder")):
        with pytest.raises(OutputError, match=re.escape(f"it is {kind}")):
            write_atomic(path, b"new")
    assert link.is_symlink() and victim.read_bytes() == b"keep"
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and folder.is_dir()
    assert not list(tmp_path.glob(".*.tmp"))
    write_atomic(victim, b"new")  # a regular file is replaced, as always
    assert victim.read_bytes() == b"new"


def test_check_output_path_for_folders(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "missing", folder=True) == tmp_path / "missing"
    assert check_output_path(tmp_path, folder=True) == tmp_path
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="it is a regular file; give a folder"):
        check_output_path(tmp_path / "f", folder=True)


def _generate(out: Path, *extra: str) -> tuple[int, str]:
    res = runner.invoke(app, ["generate", "-s", str(SELFIE), "-b", str(BOARD), "-n", "1", "--size", "256",
                              "-o", str(out), *extra])
    return res.exit_code, res.output


def _listed(out: Path) -> set[str]:
    doc = json.loads((out / "manifest.json").read_text())
    return {e["file"] for e in doc["images"]} | {doc["contact_sheet"]}


def test_an_interrupted_rerun_keeps_the_old_manifest_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    code, text = _generate(out, "--seed", "1")
    assert code == 0, text
    first = _listed(out)

    import tastemaker.pipeline.output

    real = tastemaker.pipeline.output.write_atomic

    def interrupted_at_the_manifest(path: Path | str, data: bytes, **kw: object) -> Path:
        if Path(path).name == "manifest.json":
            raise KeyboardInterrupt
        return real(path, data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tastemaker.pipeline.output, "write_atomic", interrupted_at_the_manifest)
    code, text = _generate(out, "--seed", "2")
    assert code == 130, text
    assert _listed(out) == first and all((out / n).exists() for n in first)  # the old manifest, whole

    monkeypatch.setattr(tastemaker.pipeline.output, "write_atomic", real)
    code, text = _generate(out, "--seed", "2")
    assert code == 0, text
    second = _listed(out)
    assert {p.name for p in out.iterdir()} == second | {"manifest.json"}  # the first run's image is gone
    assert not any(n.startswith("tastemaker_1_") for n in second)


def test_a_raised_identity_threshold_is_reported(tmp_path: Path, selfie: np.ndarray) -> None:
    """The guard never holds an output closer to the person than their own selfie is (plus a margin): a
    threshold below that is raised, and the CLI says so, on success (a note) or failure (the error)."""
    from tastemaker.media import encode_image

    second = tmp_path / "mirrored.png"  # a second photo: the combined identity is no longer the first's own
    second.write_bytes(encode_image(np.ascontiguousarray(selfie[:, ::-1]), "png"))
    code, text = _generate(tmp_path / "out", "-s", str(second), "--identity-threshold", "0.05", "--seed", "3")
    assert code in (0, 4), text
    flat = " ".join(text.split())
    assert "identity threshold raised from 0.05 to" in flat or "the threshold 0.05 was raised to" in flat, flat


def test_the_manifest_is_standard_json_even_without_a_selfie_score(tmp_path: Path, selfie: np.ndarray,
                                                                   demo_profile: object) -> None:
    """An identity-only run has no selfie to score (NaN): the manifest says null, never a bare NaN."""
    from tastemaker.engines.base import GenerationRequest
    from tastemaker.pipeline import generate, save_result

    result = generate(GenerationRequest.create(n=1, size=256, seed=5), selfies=[selfie],
                      profile=demo_profile)  # type: ignore[arg-type]
    result.selfie_style_score = float("nan")
    result.images[0].info["extra"] = {"score": float("inf")}
    doc = strict_json((save_result(result, tmp_path / "out")).read_text())
    assert isinstance(doc, dict)
    assert doc["selfie_style_score"] is None and doc["images"][0]["extra"]["score"] is None
