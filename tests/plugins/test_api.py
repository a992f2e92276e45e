"""The plugin system through the HTTP API: the server's plugins setting, ``GET /v1/plugins``, and every hook's
effect on a generation job (image objects, vetoes and crashes as job errors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tastemaker.api.app import create_app
from tastemaker.errors import ConfigurationError

from ..api.conftest import DEMO, Api, generate, make_settings, upload_board
from .conftest import CRASH, VETO

SELFIE = (DEMO / "selfie.jpg").read_bytes()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Apps (lifespan entered) on temp databases with the given settings; all shut down after the test."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> Api:
        client = TestClient(create_app(make_settings(tmp_path, **overrides)))
        client.__enter__()
        clients.append(client)
        return Api(client, client.app.state.services.settings)  # type: ignore[attr-defined]

    yield build
    for c in reversed(clients):
        c.__exit__(None, None, None)


#: a selection no other test uses: the job runner caches a pipeline per selection
SELECTION = "house_rules,skin_tone,alt_text,contrast"


def test_v1_plugins_lists_the_servers_plugins(installed: Path, make_server: Callable[..., Api]) -> None:
    api = make_server(plugins="-contrast", plugin_errors="describe_output=fail")
    r = api.client.get("/v1/plugins", headers=api.key())
    assert r.status_code == 200, r.text
    doc = r.json()
    rows = {p["name"]: p for p in doc["plugins"]}
    assert doc["selection"] == "-contrast" and doc["on_error"]["describe_output"] == "fail"
    assert doc["on_error"]["check_output"] == "fail"
    assert rows["house_rules"]["active"] and rows["house_rules"]["package"] == "tastemaker-house-rules"
    assert not rows["contrast"]["active"] and rows["skin_tone"]["builtin"]
    assert "problem" in rows["broken"] and rows["broken"]["problem"]
    assert api.client.get("/v1/plugins").status_code == 401


def test_a_misspelt_plugin_setting_stops_the_server_at_startup(installed: Path,
                                                               make_server: Callable[..., Api]) -> None:
    with pytest.raises(ConfigurationError, match="unknown plugin"):
        make_server(plugins="skin_tone,no_such_plugin")


def test_generation_jobs_run_the_plugins(installed: Path, make_server: Callable[..., Api]) -> None:
    api = make_server(plugins=SELECTION)
    key = api.key("pro", "plugins")
    board = upload_board(api, key)
    r = generate(api, key, SELFIE, board_id=board["id"], strength="0.9")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job["error"]
    (image,) = job["images"]
    assert "person" in image["alt_text"]
    house = image["plugins"]["house_rules"]
    assert house["verdict"] == "annotate" and house["mode"] == image["mode"]
    assert house["strength"] == 0.7 and house["mode_name"].startswith("house ")  # adjust_request, adjust_profile
    assert {"ita_before_deg", "ita_after_deg"} <= set(image["plugins"]["skin_tone"])

    vetoed = generate(api, key, SELFIE, board_id=board["id"], seed=VETO).json()
    assert vetoed["status"] == "failed" and vetoed["images"] == []
    assert vetoed["error"]["code"] == "output_vetoed"
    assert "refused by plugin 'house_rules': no outputs on veto days" in vetoed["error"]["message"]

    crashed = generate(api, key, SELFIE, board_id=board["id"], seed=CRASH).json()
    assert crashed["status"] == "failed" and crashed["error"]["code"] == "plugin_failed"
    assert "house_rules" in crashed["error"]["message"]


def test_a_profile_job_with_plugins_off_has_no_alt_text(installed: Path, make_server: Callable[..., Api]) -> None:
    api = make_server(plugins="none")
    key = api.key("pro", "clean")
    board = upload_board(api, key)
    r = generate(api, key, SELFIE, board_id=board["id"], seed=VETO)
    job: dict[str, Any] = r.json()
    assert job["status"] == "succeeded", job["error"]
    assert job["images"][0]["alt_text"] is None and job["images"][0]["plugins"] is None
