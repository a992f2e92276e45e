"""Issue 11, the service side: hostile JSON, private files, scopes, what is charged to the privacy budget,
work done before authentication, idempotency records that outlive what they name, and verify's own pool."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Api, upload_board

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]
DEEP = '{"image": ' + "[" * 50_000 + "]" * 50_000 + "}"
HUGE = '{"image": "aGk=", "n": ' + "9" * 5000 + "}"


@pytest.fixture(scope="module")
def owner(shared_api: Api) -> dict[str, str]:
    return shared_api.key("pro", "owner")


# ------------------------------------------------------------------ item 10: nested JSON, huge integers


@pytest.mark.parametrize("path", ["/v1/verify", "/v1/feedback", "/v1/generations", "/v1/styleembed"])
@pytest.mark.parametrize(("body", "code"), [(DEEP, "json_too_deep"), (HUGE, "json_number_too_large")])
def test_hostile_json_is_a_clear_400(shared_api: Api, owner: dict[str, str], path: str, body: str, code: str) -> None:
    r = shared_api.client.post(path, content=body, headers={**owner, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code


@pytest.mark.parametrize(("text", "code"), [('{"a":' * 5000 + "1" + "}" * 5000, "json_too_deep"),
                                             ('{"schema": ' + "7" * 5000 + "}", "json_number_too_large")])
def test_hostile_profile_form_field(shared_api: Api, owner: dict[str, str], selfie_bytes: bytes, text: str,
                                    code: str) -> None:
    r = shared_api.client.post(
        "/v1/generations",
        data={"consent": "true", "profile": text},
        files={"selfie": ("me.jpg", selfie_bytes, "image/jpeg")},
        headers=owner,
    )
    assert r.status_code == 400 and r.json()["code"] == code, r.text


@pytest.mark.parametrize("pins", [json.dumps([{"image": "meadow.jpg", "saves": 1}])[:-2] + "9" * 5000 + "}]",
                                  '[{"image": "meadow.jpg", "title": ' + "[" * 5000 + "]" * 5000 + "}]"])
def test_hostile_pins_field_is_refused(shared_api: Api, owner: dict[str, str], pins: str) -> None:
    from .conftest import board_parts

    r = shared_api.client.post(
        "/v1/boards", data={"name": "b", "pins": pins}, files=board_parts(["meadow.jpg"]), headers=owner
    )
    assert r.status_code in (400, 422) and r.json()["code"] in (
        "json_too_deep", "json_number_too_large", "invalid_board"), r.text


def _any(x: Any) -> Any:
    return x


def test_upload_board_helper_still_works(shared_api: Api, owner: dict[str, str]) -> None:
    assert upload_board(shared_api, owner, names=SMALL_BOARD)["n_pins"] == 3
