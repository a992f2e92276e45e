"""``/verify`` in the browser's words: our own output is "made here" with its record, C2PA state and proof; a
foreign picture is "not made here"; a visitor without an account may verify, within a per-address limit."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from ..api.conftest import DEMO, Api, generate, upload_board
from .conftest import Site, csrf_of

FOREIGN = DEMO / "board" / "meadow.jpg"


def our_output(site: Site, key: str, selfie: bytes) -> bytes:
    """One PNG the site generated for ``key`` (watermarked, C2PA-signed, logged), through the JSON API."""
    api = Api(site.client, site.settings)
    headers = {"Authorization": f"Bearer {key}"}
    board = upload_board(api, headers, names=["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"])
    job = generate(api, headers, selfie, board_id=board["id"], output_format="png").json()
    assert job["status"] == "succeeded", job
    r = site.client.get(job["images"][0]["url"], headers=headers)
    assert r.status_code == 200
    return r.content


def post_image(site: Site, data: bytes, csrf: str | None = None, name: str = "x.png") -> Any:
    form = {"csrf_token": csrf} if csrf else {}
    return site.client.post("/verify", data=form, files={"image": (name, data, "image/png")})


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_our_output_is_made_here_with_record_c2pa_and_proof(site: Site, selfie_bytes: bytes) -> None:
    key = site.new_key("pro", "vera")
    output = our_output(site, key, selfie_bytes)
    csrf = site.sign_in(key)
    r = post_image(site, output, csrf)
    assert r.status_code == 200, r.text
    words = text_of(r.text)
    assert "Made by this Tastemaker server on" in words
    assert 'data-verdict="verified"' in r.text
    assert "you (your account)" in words
    assert "present, valid" in words and "this server (trusted)" in words
    assert "Log size" in words and "Leaf index" in words and re.search(r"[0-9a-f]{64}", r.text)
    assert "the proof hashes it up to the signed root" in words
    # the same verdict as the JSON API gives for the same bytes
    api = site.client.post("/v1/verify", files={"image": ("x.png", output, "image/png")},
                           headers={"Authorization": f"Bearer {key}"}).json()
    assert api["verdict"] == "verified" and f"{api['record']['profile_hash'][:12]}…" in r.text
    assert str(api["record"]["seed"]) in words

    # a visitor sees the same verdict, with the account withheld
    site.client.cookies.clear()
    r = post_image(site, output)
    assert r.status_code == 200 and "Made by this Tastemaker server on" in text_of(r.text)
    assert "another account" in text_of(r.text) and api["record"]["account"] not in r.text


def test_a_foreign_image_is_not_made_here(site: Site) -> None:
    csrf = site.sign_in()
    r = post_image(site, FOREIGN.read_bytes(), csrf, name="meadow.jpg")
    assert r.status_code == 200, r.text
    words = text_of(r.text)
    assert "Not made here" in words and 'data-verdict="not_ours"' in r.text
    assert "No record" in words and "No proof to show" in words


def test_signed_out_verify_works_and_is_rate_limited(make_site: Callable[..., Site]) -> None:
    site = make_site(unauthenticated_per_minute=2)
    page = site.client.get("/verify")
    assert page.status_code == 200 and 'name="image"' in page.text and 'for="verify-image"' in page.text
    assert "csrf_token" not in page.text  # a visitor has no session to repeat
    data = FOREIGN.read_bytes()
    for _ in range(2):
        r = post_image(site, data)
        assert r.status_code == 200 and "Not made here" in text_of(r.text)
    r = post_image(site, data)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    words = text_of(r.text)
    assert "Too many requests right now. Try again in" in words and "second" in words
    assert 'role="alert"' in r.text and r.headers["content-type"].startswith("text/html")  # a page, not JSON


def test_bad_uploads_are_said_next_to_the_field(make_site: Callable[..., Site]) -> None:
    site = make_site(max_image_bytes=50_000)
    csrf = site.sign_in()
    r = post_image(site, FOREIGN.read_bytes(), csrf)
    assert r.status_code == 413 and "That file is too large" in text_of(r.text) and 'id="verify-error"' in r.text
    r = post_image(site, b"not an image at all", csrf, name="x.txt")
    assert r.status_code in (415, 422) and 'id="verify-error"' in r.text


def test_a_signed_in_form_needs_its_csrf_token(site: Site) -> None:
    site.sign_in()
    r = post_image(site, FOREIGN.read_bytes(), csrf="wrong")
    assert r.status_code == 403 and "did not come from this site" in r.text
    assert csrf_of(site.client.get("/verify").text)


@pytest.fixture
def selfie_bytes() -> bytes:
    return (DEMO / "selfie.jpg").read_bytes()


def test_in_a_browser_drop_an_output_then_see_the_account(live_site: Any, browser_page: Any, tmp_path: Any) -> None:
    """Real Chromium: an image dropped on the zone is checked (verify.js), the verdict reads "made here";
    then the account page, at desktop and phone size. Screenshots: verify-result, account, account-mobile."""
    import base64
    import json

    import httpx

    from ..api.conftest import board_parts, demo_pins
    from .conftest import shot, sign_in_browser

    site = live_site()
    key = site.new_key("pro", "vera")
    headers = {"Authorization": f"Bearer {key}"}
    names = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]
    with httpx.Client(base_url=site.url, headers=headers, timeout=120) as api:
        pins = [p for p in demo_pins() if p["image"] in names]
        board = api.post("/v1/boards", data={"name": "demo", "pins": json.dumps(pins)}, files=board_parts(names))
        assert board.status_code == 201, board.text
        job = api.post("/v1/generations", headers={"Prefer": "wait=60"},
                       data={"consent": "true", "n": "1", "size": "256", "seed": "3", "output_format": "png",
                             "board_id": board.json()["id"]},
                       files={"selfie": ("me.jpg", (DEMO / "selfie.jpg").read_bytes(), "image/jpeg")}).json()
        assert job["status"] == "succeeded", job
        output = api.get(job["images"][0]["url"]).content

    page = browser_page
    sign_in_browser(page, site.url, key)
    page.goto(f"{site.url}/verify")
    transfer = page.evaluate_handle(
        """(b64) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                      const dt = new DataTransfer(); dt.items.add(new File([bytes], "mine.png", {type: "image/png"}));
                      return dt; }""",
        base64.b64encode(output).decode(),
    )
    page.dispatch_event("#verify-drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("[data-verdict]", timeout=60_000)
    assert page.get_attribute("[data-verdict]", "data-verdict") == "verified"
    assert "Made by this Tastemaker server on" in page.inner_text("h1")
    shot(page, "verify-result")

    page.goto(f"{site.url}/account")
    assert page.locator("[data-usage=images-used]").inner_text() == "1"
    delete = page.get_by_role("button", name="Delete my account for good")
    assert delete.is_disabled()  # until the name is typed
    page.get_by_label("Type the account name").fill("vera")
    assert delete.is_enabled()
    page.get_by_label("Type the account name").fill("")
    shot(page, "account")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than a phone
    shot(page, "account-mobile")


def test_an_output_rendered_on_a_device_says_so(site: Site) -> None:
    """Registered with ``POST /v1/records``: verified, and honestly "registered", not "made", here."""
    import base64

    import numpy as np

    from tastemaker.media import encode_image

    key = site.new_key("pro", "dev")
    picture = np.full((320, 320, 3), 90, np.uint8)
    picture[60:260, 80:240] = (210, 170, 120)
    r = site.client.post("/v1/records", data={"profile_hash": "1" * 64, "engine_version": "1", "seed": "4"},
                         files={"image": ("out.png", encode_image(picture, "png"), "image/png")},
                         headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    marked = base64.b64decode(r.json()["image"]["b64"])
    csrf = site.sign_in(key)
    words = text_of(post_image(site, marked, csrf).text)
    assert "Registered with this Tastemaker server on" in words
    assert "on the person's own device, then registered here" in words
