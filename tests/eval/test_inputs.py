"""Bad input: clear errors with exact exit codes, or skips on record — never a silent drop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.errors import EmptyBoardError, InputError, NoFaceError, RequestError
from tastemaker.eval import EvalConfig, load_boards, load_selfies, run_eval
from tastemaker.media import encode_image

from ..conftest import DEMO, neon_image
from .conftest import make_app, sepia_image, write_board

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(make_app(), ["eval", *args])
    return res.exit_code, res.output


@pytest.fixture()
def boards(tmp_path: Path) -> Path:
    write_board(tmp_path / "boards" / "neon", [neon_image(s) for s in range(3)], "neon")
    write_board(tmp_path / "boards" / "sepia", [sepia_image(s) for s in range(3)], "sepia")
    return tmp_path / "boards"


@pytest.fixture()
def flat_selfies(tmp_path: Path) -> Path:
    d = tmp_path / "selfies"
    d.mkdir()
    (d / "astronaut.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    return d


def test_selfie_folder_without_faces_is_a_clear_error(tmp_path: Path, boards: Path) -> None:
    d = tmp_path / "faceless"
    d.mkdir()
    for s in range(2):
        (d / f"shapes-{s}.png").write_bytes(encode_image(neon_image(s), "png"))
    with pytest.raises(NoFaceError) as err:
        load_selfies(d)
    assert "no usable face in any of the 2 selfie image(s)" in err.value.message
    assert "shapes-0.png" in err.value.message
    code, out = cli("--selfies", str(d), "--boards", str(boards), "-o", str(tmp_path / "r"))
    assert code == 2 and "NoFaceError" in out and "no usable face" in out
    assert not (tmp_path / "r" / "results.json").exists()


def test_empty_dirs_are_clear_errors(tmp_path: Path, flat_selfies: Path, boards: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="has no images"):
        load_selfies(empty)
    with pytest.raises(EmptyBoardError, match="has no boards"):
        load_boards(empty)
    code, out = cli("--selfies", str(empty), "--boards", str(boards), "-o", str(tmp_path / "r"))
    assert code == 2 and "InputError" in out and "has no images" in out
    code, out = cli("--selfies", str(flat_selfies), "--boards", str(empty), "-o", str(tmp_path / "r"))
    assert code == 2 and "EmptyBoardError" in out
    code, out = cli("--selfies", str(tmp_path / "missing"), "--boards", str(boards), "-o", str(tmp_path / "r"))
    assert code == 2 and "does not exist" in out


def test_board_with_one_unreadable_image_is_kept_and_the_skip_reported(boards: Path) -> None:
    (boards / "neon" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (boards / "neon" / "notes.txt").write_text("not an image: reported, never read as one")
    bset = load_boards(boards)
    assert [b.name for b in bset.boards] == ["neon", "sepia"]
    assert len(bset.boards[0].board) == 3
    broken, notes = sorted(bset.skipped, key=lambda s: s.where)
    assert broken.kind == "pin" and broken.where == "neon/broken.png" and "broken.png" in broken.reason
    assert notes.where == "neon/notes.txt" and "not a supported image format" in notes.reason


def test_board_folder_with_nothing_readable_is_skipped_or_an_error(tmp_path: Path, boards: Path) -> None:
    bad = boards / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"nope")
    bset = load_boards(boards)
    assert [b.name for b in bset.boards] == ["neon", "sepia"]
    assert any(s.kind == "board" and s.where == "bad/" and "none of its 1 images" in s.reason for s in bset.skipped)
    only_bad = tmp_path / "only_bad"
    (only_bad / "bad").mkdir(parents=True)
    (only_bad / "bad" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(EmptyBoardError, match="no usable board"):
        load_boards(only_bad)


def test_a_single_board_folder_is_one_board(boards: Path) -> None:
    bset = load_boards(boards / "neon")
    assert [b.name for b in bset.boards] == ["neon"] and not bset.skipped


def test_selfie_layouts(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    (flat / "README.txt").write_text("not a photo")
    s = load_selfies(flat)
    assert s.layout == "flat" and [p.name for p in s.people] == ["a"]
    assert [(k.kind, k.where) for k in s.skipped] == [("file", "README.txt")]
    mixed = tmp_path / "mixed"
    (mixed / "bob").mkdir(parents=True)
    (mixed / "bob" / "1.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    (mixed / "loose.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    with pytest.raises(InputError, match="mixes images"):
        load_selfies(mixed)
    per = tmp_path / "per"
    (per / "ann").mkdir(parents=True)
    (per / "empty-person").mkdir()
    (per / "ann" / "2.jpg").write_bytes((DEMO / "selfie.jpg").read_bytes())
    (per / "ann" / "1.png").write_bytes(encode_image(np.full((64, 64, 3), 128, np.uint8), "png"))
    s = load_selfies(per)
    assert s.layout == "per-person" and [p.name for p in s.people] == ["ann"]
    assert [ph.name for ph in s.people[0].photos] == ["2.jpg"]
    reasons = {k.where: k.reason for k in s.skipped}
    assert "no face" in reasons["ann/1.png"] and "no images" in reasons["empty-person/"]


def test_bad_options_are_request_errors(tmp_path: Path, flat_selfies: Path, boards: Path) -> None:
    with pytest.raises(RequestError, match="unknown baseline 'magic'"):
        EvalConfig.create(baselines="none,magic")
    with pytest.raises(RequestError, match="n"):
        EvalConfig.create(n=0)
    with pytest.raises(RequestError, match="aspect"):
        EvalConfig.create(aspect="3:1")
    assert EvalConfig.create(baselines="all").baselines == (
        "none", "reinhard", "histmatch", "single-pin", "stylize", "oilpaint"
    )
    assert EvalConfig.create(baselines="").baselines == ()
    code, out = cli("--selfies", str(flat_selfies), "--boards", str(boards), "-o", str(tmp_path / "r"),
                    "--baselines", "magic")
    assert code == 2 and "RequestError" in out
    code, out = cli("--selfies", str(flat_selfies), "--boards", str(boards), "-o", str(tmp_path / "r"),
                    "--engine", "nope")
    assert code == 2 and "unknown engine" in out


def test_engine_failures_are_recorded_not_dropped(flat_selfies: Path, boards: Path) -> None:
    """An identity threshold no output can meet: every engine request fails, and the run says so."""
    cfg = EvalConfig.create(n=1, size=256, baselines="none", identity_threshold=1e-6)
    run = run_eval(flat_selfies, boards / "neon", cfg)
    s = run.summary()
    assert s["look"]["n_failed_requests"] == 1 and s["look"]["n_images"] == 0
    assert s["none"]["n_failed_requests"] == 0 and s["none"]["n_images"] == 1
    assert [e["error"] for e in run.errors] == ["IdentityGuardError"]
    assert "drifted from the selfie" in run.errors[0]["message"]
    res = run.to_dict()
    assert len(res["errors"]) == 1 and all(not r["ok"] for r in res["requests"] if r["kind"] == "engine")


def test_cli_writes_the_report_and_prints_the_table(tmp_path: Path, flat_selfies: Path, boards: Path) -> None:
    out = tmp_path / "report"
    code, text = cli("--selfies", str(flat_selfies), "--boards", str(boards), "-o", str(out), "-n", "1",
                     "--size", "256", "--baselines", "none,reinhard")
    assert code == 0, text
    assert "look (engine)" in text and "reinhard" in text and "report.html" in text
    res = json.loads((out / "results.json").read_text())
    assert list(res["summary"]) == ["look", "none", "reinhard"] and res["config"]["n"] == 1
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and page.count("data:image/jpeg;base64,") == 2


def test_eval_stamps_into_a_throwaway_store_never_the_users_log(
    tmp_path: Path, flat_selfies: Path, boards: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tastemaker eval`` makes real, stamped outputs, but logs them in a store of its own that is removed after
    the run: the user's permanent, append-only transparency log (under TASTEMAKER_DATA_DIR) is left as it was."""
    from contextlib import contextmanager

    from tastemaker.eval import cells
    from tastemaker.pipeline import default_provenance

    users = default_provenance()  # the store `tastemaker generate` writes to
    before = (users.ledger.size, users.ledger.root())
    scratch: list[tuple[Path, int]] = []
    real = cells.scratch_provenance

    @contextmanager
    def watched():  # type: ignore[no-untyped-def]
        with real() as prov:
            yield prov
            scratch.append((prov.dir, prov.ledger.size))

    monkeypatch.setattr(cells, "scratch_provenance", watched)
    code, text = cli("--selfies", str(flat_selfies), "--boards", str(boards / "neon"), "-o", str(tmp_path / "r"),
                     "-n", "1", "--size", "256", "--baselines", "none")
    assert code == 0, text
    # the warm-up and the one request, each stamped into a store of its own
    assert [logged for _, logged in scratch] == [1, 1]
    assert not any(folder.exists() for folder, _ in scratch)  # ...which are gone with the run
    assert (users.ledger.size, users.ledger.root()) == before
