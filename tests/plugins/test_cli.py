"""The plugin system through the command line: ``tastemaker plugins``, TASTEMAKER_PLUGINS, ``--no-plugins``, and
every kind of verdict as a person at a terminal sees it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli import app
from tastemaker.taste.profile import TasteProfile

from .conftest import CRASH, VETO

runner = CliRunner()


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory: pytest.TempPathFactory, demo_profile: TasteProfile) -> Path:
    path = tmp_path_factory.mktemp("profile") / "profile.json"
    demo_profile.save(path)
    return path


def generate(tmp_path: Path, profile: Path, selfie: Path, *extra: str, seed: int = 4,
             prompt: str = "") -> tuple[int, str, Path]:
    out = tmp_path / "out"
    args = [*extra, "generate", "--selfie", str(selfie), "--profile", str(profile), "-n", "1", "--size", "256",
            "--seed", str(seed), "--prompt", prompt, "-o", str(out)]
    res = runner.invoke(app, args)
    return res.exit_code, res.output, out


def test_plugins_lists_installed_plugins_their_hooks_and_which_run(installed: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTEMAKER_PLUGINS", "-contrast")
    res = runner.invoke(app, ["plugins", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rows = {r["name"]: r for r in doc["plugins"]}
    assert doc["selection"] == "-contrast"
    assert rows["house_rules"]["active"] and "check_output" in rows["house_rules"]["hooks"]
    assert rows["house_rules"]["package"] == "tastemaker-house-rules"
    assert rows["skin_tone"]["builtin"] and not rows["contrast"]["active"]
    assert rows["broken"]["problem"] and not rows["broken"]["active"]
    table = runner.invoke(app, ["plugins"])
    assert table.exit_code == 0 and "house_rules" in table.output and "cannot load" in table.output


def test_generate_runs_every_installed_plugin(installed: Path, tmp_path: Path, profile_file: Path,
                                              selfie_path: Path) -> None:
    code, text, out = generate(tmp_path, profile_file, selfie_path)
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["images"][0]
    assert entry["alt_text"].startswith(("Close-up", "Head-and-shoulders", "Half-length", "Full-length"))
    assert {"ita_before_deg", "ita_after_deg", "ita_shift_deg"} <= set(entry["plugins"]["skin_tone"])
    assert entry["plugins"]["house_rules"]["verdict"] == "annotate"
    assert "variation 0: house_rules: checked by house rules" in manifest["notes"]
    assert manifest["request"]["strength"] == 0.7  # adjust_request: the house's strength cap


def test_a_veto_and_a_crash_are_errors_the_user_sees(installed: Path, tmp_path: Path, profile_file: Path,
                                                     selfie_path: Path) -> None:
    code, text, out = generate(tmp_path, profile_file, selfie_path, seed=VETO)
    assert code == 2 and "OutputVetoedError" in text and "refused by plugin 'house_rules'" in text, text
    assert not (out / "manifest.json").exists()
    code, text, _ = generate(tmp_path, profile_file, selfie_path, prompt="forbidden")
    assert code == 2 and "'forbidden' is against house rules" in text, text
    code, text, _ = generate(tmp_path, profile_file, selfie_path, seed=CRASH)
    assert code == 6 and "plugin 'house_rules' failed in check_output" in text, text
    assert "Traceback" not in text


def test_no_plugins_is_a_clean_run(installed: Path, tmp_path: Path, profile_file: Path, selfie_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTEMAKER_PLUGINS", "all")  # restored after the test: --no-plugins sets it to none
    code, text, out = generate(tmp_path, profile_file, selfie_path, "--no-plugins", seed=VETO)
    assert code == 0, text
    entry = json.loads((out / "manifest.json").read_text())["images"][0]
    assert "alt_text" not in entry and "plugins" not in entry


def test_a_bad_selection_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile_file: Path,
                                          selfie_path: Path) -> None:
    monkeypatch.setenv("TASTEMAKER_PLUGINS", "skin_tone,no_such_plugin")
    code, text, _ = generate(tmp_path, profile_file, selfie_path)
    assert code == 2 and "unknown plugin(s) no_such_plugin" in text, text
