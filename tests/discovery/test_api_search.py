"""``GET /v1/search``: scoped keys, the requests bucket, text / board / pin queries over the server's index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tastemaker.api.admin import issue_key
from tastemaker.discovery.index import create_or_open
from tastemaker.discovery.sources import board_images

from ..api.conftest import DEMO, Api, upload_board


def _index(api: Api) -> None:
    idx = create_or_open(Path(api.settings.data_dir) / "index")
    try:
        idx.add(list(board_images(DEMO / "board")), allow_faces=False)
    finally:
        idx.close()


def test_search_by_text_board_and_pin_with_reasons(make_api: Callable[..., Api]) -> None:
    api = make_api()
    key = api.key()
    r = api.client.get("/v1/search", params={"text": "cafe"}, headers=key)
    assert r.status_code == 404 and r.json()["code"] == "not_found"  # no index yet: says how to make one
    assert "tastemaker index add" in r.json()["message"]
    _index(api)
    r = api.client.get("/v1/search", params={"text": "warm golden", "k": 5}, headers=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["index"]["items"] > 0 and 0 < len(body["results"]) <= 5
    assert all(h["why"]["words"] for h in body["results"])
    assert "/" not in body["results"][0]["file"]  # a file name, never the server's path
    board = upload_board(api, key)
    r = api.client.get("/v1/search", params={"board_id": board["id"], "k": 6}, headers=key)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    # the board's own pins are its pins: nothing left to find in an index of the same pins
    assert results == []
    r = api.client.get("/v1/search", params={"board_id": board["id"], "pin_id": "0" * 16}, headers=key)
    assert r.status_code == 404
    for params in ({}, {"text": "x", "board_id": board["id"]}, {"text": "x", "mode": "m1"}):
        r = api.client.get("/v1/search", params=params, headers=key)
        assert r.status_code == 422 and r.json()["code"] == "search_query_invalid", params


def test_search_needs_boards_read_and_counts_requests(make_api: Callable[..., Api]) -> None:
    api = make_api()
    svc = api.services
    only_verify = issue_key(svc.store, svc.audit, api.settings, name="v", scopes=["verify"]).key
    r = api.client.get("/v1/search", params={"text": "x"}, headers={"Authorization": f"Bearer {only_verify}"})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    assert api.client.get("/v1/search", params={"text": "x"}).status_code == 401
    tight = api.key(tier="tight")
    codes = [api.client.get("/v1/search", params={"text": "x"}, headers=tight).status_code for _ in range(6)]
    assert codes[-1] == 429 and "X-RateLimit-Limit" in api.client.get(
        "/v1/search", params={"text": "x"}, headers=api.key()).headers
