"""``/account``: usage as /v1/usage counts it, a signed export the CLI imports, a check of an export that
stores nothing, and deleting the account behind a typed confirmation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tastemaker.cli.taste import register as register_taste

from ..api.conftest import SECRET, Api, upload_board
from .conftest import Site, csrf_of


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_account_page_shows_usage_as_the_api_counts_it(site: Site) -> None:
    key = site.new_key("pro", "ada")
    headers = {"Authorization": f"Bearer {key}"}
    site.sign_in(key)
    r = site.client.get("/account")
    assert r.status_code == 200
    usage = site.client.get("/v1/usage", headers=headers).json()
    assert f'data-usage="images-used">{usage["images"]["used"]}<' in r.text
    assert f'data-usage="images-remaining">{usage["images"]["remaining"]}<' in r.text
    assert f'data-usage="generations">{usage["generations"]}<' in r.text
    assert f'data-usage="styleembed">{usage["styleembed_calls"]}<' in r.text
    words = text_of(r.text)
    assert f'of {usage["images"]["limit"]} used' in words and "ada" in words and "pro" in words
    assert key[:11] in r.text and key not in r.text  # the prefix in use, never the key
    for bucket, w in usage["rate_limits"].items():
        assert f'data-limit="{bucket}"' in r.text and f"{w['limit']} per minute" in words


def test_export_downloads_a_signed_file_the_cli_imports(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = site.new_key("pro", "ada")
    headers = {"Authorization": f"Bearer {key}"}
    board = upload_board(Api(site.client, site.settings), headers)
    csrf = site.sign_in(key)
    page = site.client.get("/account")
    assert f'value="{board["id"]}"' in page.text
    r = site.client.post("/account/export", data={"csrf_token": csrf, "board_id": board["id"]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "attachment" in r.headers["content-disposition"]
    doc = r.json()
    assert doc["schema"] == "tastemaker.taste-export" and doc["signature"]["alg"] == "Ed25519"
    assert doc["profile"]["privacy"] and doc["profile"]["pins"] == []  # the private release, no pins
    assert site.client.get("/v1/usage", headers=headers).json()["styleembed_calls"] == 1

    # the CLI's `profile import` accepts it on another machine (its own data dir: trusted on first use)
    export_file = tmp_path / "export.json"
    export_file.write_bytes(r.content)
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("TASTEMAKER_SECRET_KEY", SECRET)
    cli = typer.Typer()
    register_taste(cli)
    res = CliRunner().invoke(cli, ["profile", "import", str(export_file), "-o", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "p.json").read_text())["modes"]

    # and the page's own check shows what it holds, signed by this server, and stores nothing
    r = site.client.post("/account/import", data={"csrf_token": csrf},
                         files={"export": ("export.json", export_file.read_bytes(), "application/json")})
    assert r.status_code == 200, r.text
    words = text_of(r.text)
    assert "Signature valid" in words and "this server's own key" in words and "Nothing was stored" in words
    for mode in doc["profile"]["modes"]:
        assert mode["name"] in words

    # a changed file is refused, next to the field
    doc["profile"]["modes"][0]["weight"] = 0.99
    r = site.client.post("/account/import", data={"csrf_token": csrf},
                         files={"export": ("x.json", json.dumps(doc).encode(), "application/json")})
    assert r.status_code == 422 and 'id="import-error"' in r.text and "modified after it was exported" in r.text


def test_export_of_another_accounts_board_is_not_found(site: Site) -> None:
    other = site.new_key("pro", "bob")
    board = upload_board(Api(site.client, site.settings), {"Authorization": f"Bearer {other}"},
                         names=["meadow.jpg", "cat-nap.jpg"])
    csrf = site.sign_in()
    r = site.client.post("/account/export", data={"csrf_token": csrf, "board_id": board["id"]})
    assert r.status_code == 404 and 'id="export-error"' in r.text


def test_an_unsigned_export_needs_the_box_ticked(site: Site) -> None:
    csrf = site.sign_in()
    doc = {"schema": "tastemaker.taste-export", "schema_version": 1, "exported_at": "2026-01-01T00:00:00+00:00",
           "profile": {"modes": []}}
    files = {"export": ("u.json", json.dumps(doc).encode(), "application/json")}
    r = site.client.post("/account/import", data={"csrf_token": csrf}, files=files)
    assert r.status_code == 422 and "not signed" in r.text


def test_delete_needs_the_typed_name_then_everything_stops_working(make_site: Callable[..., Site]) -> None:
    site = make_site()
    key = site.new_key("free", "carol")
    csrf = site.sign_in(key)
    cookie = site.client.cookies.get("tm_session")
    assert cookie
    r = site.client.post("/account/delete", data={"csrf_token": csrf, "confirm_name": "carl"})
    assert r.status_code == 422 and "type the account name exactly" in text_of(r.text).lower()
    assert site.client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    r = site.client.post("/account/delete", data={"confirm_name": "carol"})  # no CSRF token: refused
    assert r.status_code == 403

    r = site.client.post("/account/delete", data={"csrf_token": csrf, "confirm_name": "carol"},
                         follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?done=account_deleted"
    assert 'tm_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert "account is deleted" in site.client.get(r.headers["location"]).text
    # the old cookie no longer signs anyone in, and the old key is refused by the API
    site.client.cookies.set("tm_session", cookie)
    again = site.client.get("/account", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/signin")
    assert site.client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_a_key_without_every_scope_cannot_delete(site: Site) -> None:
    from tastemaker.api.admin import issue_key

    issued = issue_key(site.services.store, site.services.audit, site.settings, name="dee", scopes=["verify"])
    csrf = site.sign_in(issued.key)
    page = site.client.get("/account")
    assert "only a key with every scope may" in page.text and 'id="delete-form"' not in page.text
    r = site.client.post("/account/delete", data={"csrf_token": csrf, "confirm_name": "dee"})
    assert r.status_code == 403
    assert csrf_of(site.client.get("/account").text)
