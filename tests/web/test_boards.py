"""The boards pages: making a board from files, a folder or a zip (with engagement from pins.csv), the
refusals a zip gets, editing and removing pins, deleting, the taste page — and that nobody else's board is
reachable and no form works without its CSRF token."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tastemaker.store.records import ProfileVersion, utcnow

from ..api.conftest import DEMO
from .conftest import Site, shot, sign_in_browser

BOARD = DEMO / "board"
PINS_CSV = (BOARD / "pins.csv").read_bytes()
FOUR = ["cafe-morning.jpg", "cat-nap.jpg", "latte-close.jpg", "whiskers.jpg"]


def image_parts(names: list[str], field: str = "images", folder: str = "") -> list[tuple[str, Any]]:
    return [(field, (f"{folder}{n}", (BOARD / n).read_bytes(), "image/jpeg")) for n in names]


def board_id_of(r: Any) -> str:
    m = re.search(r"/boards/(brd_[A-Za-z0-9_-]+)", r.headers.get("location", "") or r.text)
    assert m, r.text
    return m.group(1)


def create(site: Site, csrf: str, files: list[tuple[str, Any]], name: str = "demo", **data: str) -> Any:
    return site.client.post("/boards", data={"name": name, "csrf_token": csrf, **data}, files=files,
                            follow_redirects=False)


def stored_pins(site: Site, account_board: str) -> dict[str, Any]:
    with site.services.store.session() as s:
        return {p.pin.image: p for p in s.board_pins(account_board)}


def audit_actions(site: Site) -> list[str]:
    with site.services.store.session() as s:
        return [e.action for e in s.audit_entries()]


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def csrf(site: Site) -> str:
    return site.sign_in()


@pytest.fixture
def board(site: Site, csrf: str) -> str:
    """A board of four demo pins, their engagement from pins.csv (the other rows are reported, not stored)."""
    r = create(site, csrf, image_parts(FOUR) + [("pins_file", ("pins.csv", PINS_CSV, "text/csv"))])
    assert r.status_code == 201, r.text
    return board_id_of(r)


# ------------------------------------------------------------------------------------------ creating


def test_create_by_files_with_pins_csv(site: Site, csrf: str) -> None:
    r = create(site, csrf, image_parts(FOUR) + [("pins_file", ("pins.csv", PINS_CSV, "text/csv"))], name="Cafés")
    assert r.status_code == 201, r.text  # rendered at once: the rows of pins.csv without their file are listed
    assert "Board created" in r.text and "files not added" in r.text
    assert "brick-wall.jpg</strong>: listed in pins, but no file of that name was uploaded" in r.text
    bid = board_id_of(r)
    pins = stored_pins(site, bid)
    assert sorted(pins) == sorted(FOUR)
    cafe = pins["cafe-morning.jpg"].pin
    assert (cafe.saves, cafe.clicks, cafe.dwell_seconds) == (14, 22, 95.0)
    assert cafe.tags == ("golden hour", "film", "warm", "cafe") and cafe.title == "sunlit cafe morning"
    assert cafe.pinned_at is not None and cafe.pinned_at.isoformat() == "2024-05-02T09:10:00+00:00"
    assert "board.created" in audit_actions(site)
    listing = site.client.get("/boards")
    assert listing.status_code == 200 and "Cafés" in listing.text and "4 pins" in listing.text
    assert f'href="/boards/{bid}"' in listing.text


def test_create_without_skips_redirects_and_reads_a_folder(site: Site, csrf: str) -> None:
    """A chosen folder's files arrive with their folder in the name; its pins.csv is the engagement, its hidden
    files are ignored. Nothing skipped: straight to the board."""
    names = ["cafe-morning.jpg", "cat-nap.jpg"]
    csv = b"image,saves,clicks\ncafe-morning.jpg,3,4\ncat-nap.jpg,5,6\n"
    files = image_parts(names, field="folder", folder="myboard/") + [
        ("folder", ("myboard/pins.csv", csv, "text/csv")), ("folder", ("myboard/.DS_Store", b"junk", "x/y")),
        ("images", ("", b"", "application/octet-stream")),  # an empty file input
    ]
    r = create(site, csrf, files)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=board_created"), r.text
    pins = stored_pins(site, board_id_of(r))
    assert {k: (v.pin.saves, v.pin.clicks) for k, v in pins.items()} == {"cafe-morning.jpg": (3, 4),
                                                                         "cat-nap.jpg": (5, 6)}


def test_create_by_zip(site: Site, csrf: str) -> None:
    members = {f"board/{n}": (BOARD / n).read_bytes() for n in FOUR[:3]}
    members["board/pins.csv"] = b"image,saves\ncat-nap.jpg,9\n"
    members["board/notes.txt"] = b"hello"
    members["__MACOSX/board/._cat-nap.jpg"] = b"resource fork"
    r = create(site, csrf, [("archive", ("board.zip", zip_of(members), "application/zip"))], name="zipped")
    assert r.status_code == 201, r.text
    assert "notes.txt</strong>: not an image" in r.text and "._cat-nap" not in r.text
    pins = stored_pins(site, board_id_of(r))
    assert sorted(pins) == sorted(FOUR[:3]) and pins["cat-nap.jpg"].pin.saves == 9
    # a zip dropped among the images is unpacked too
    r = create(site, csrf, [("images", ("more.zip", zip_of({"whiskers.jpg": (BOARD / "whiskers.jpg").read_bytes()}),
                                        "application/zip"))] + image_parts(["brick-wall.jpg"]))
    assert r.status_code == 303
    assert sorted(stored_pins(site, board_id_of(r))) == ["brick-wall.jpg", "whiskers.jpg"]


@pytest.mark.parametrize("evil", ["../evil.jpg", "/etc/evil.jpg", "board/../../evil.jpg"])
def test_zip_leaving_its_folder_is_refused(site: Site, csrf: str, evil: str) -> None:
    data = zip_of({"ok.jpg": (BOARD / "cat-nap.jpg").read_bytes(), evil: (BOARD / "whiskers.jpg").read_bytes()})
    r = create(site, csrf, [("archive", ("evil.zip", data, "application/zip"))])
    assert r.status_code == 422, r.text
    assert "points outside the archive" in r.text and 'role="alert"' in r.text
    with site.services.store.session() as s:
        assert s.list_boards(s.list_keys()[0].account_id) == []


def test_zip_bomb_is_refused(site: Site, csrf: str) -> None:
    # 30 MB of zeros deflate to ~30 KB: over twice the 5 MB request limit once unpacked
    bomb = zip_of({"bomb.png": b"\0" * 30_000_000, "cat.jpg": (BOARD / "cat-nap.jpg").read_bytes()})
    assert len(bomb) < 200_000
    r = create(site, csrf, [("archive", ("bomb.zip", bomb, "application/zip"))])
    assert r.status_code == 422, r.text
    assert "zip bomb" in r.text and "would unpack to 30 MB" in r.text
    # a single member expanding far more than an image does, under the total limit, is refused too
    small_bomb = zip_of({"bomb.png": b"\0" * 3_000_000})
    r = create(site, csrf, [("archive", ("b.zip", small_bomb, "application/zip"))])
    assert r.status_code == 422 and "(a zip bomb)" in r.text
    r = create(site, csrf, [("archive", ("not.zip", b"not a zip", "application/zip"))])
    assert r.status_code == 422 and "is not a zip file" in r.text


def test_create_refusals_keep_the_form(site: Site, csrf: str) -> None:
    r = create(site, csrf, [], name="nothing")
    assert r.status_code == 422 and "Choose some images" in r.text and 'value="nothing"' in r.text
    r = create(site, csrf, image_parts(["cat-nap.jpg"]) + [("pins_file", ("pins.csv", b"image,saves\ncat-nap.jpg,-2\n",
                                                                           "text/csv"))])
    assert r.status_code == 422 and "pins.csv, line 2: saves must be a whole number &gt;= 0" in r.text
    r = create(site, csrf, [("images", ("notes.txt", b"hello", "text/plain"))])
    assert r.status_code == 422 and "could be used" in r.text


def test_same_form_sent_twice_makes_one_board(site: Site, csrf: str) -> None:
    files = image_parts(["cat-nap.jpg"])
    first = create(site, csrf, files, idem="form-123")
    again = create(site, csrf, files, idem="form-123")
    assert first.status_code == again.status_code == 303
    assert board_id_of(first) == board_id_of(again)


# ------------------------------------------------------------------------------------------ one board


def test_board_page_and_thumbnails(site: Site, board: str, monkeypatch: pytest.MonkeyPatch) -> None:
    r = site.client.get(f"/boards/{board}")
    assert r.status_code == 200 and r.text.count('class="card pin"') == 4
    sha = stored_pins(site, board)["cat-nap.jpg"].pin.sha256
    img = site.client.get(f"/boards/{board}/pins/{sha}/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(img.content)).size) <= 320
    assert "private" in img.headers["cache-control"]
    again = site.client.get(f"/boards/{board}/pins/{sha}/image", headers={"If-None-Match": img.headers["etag"]})
    assert again.status_code == 304
    assert site.client.get(f"/boards/{board}/pins/{'0' * 64}/image").status_code == 404
    # a page's thumbnails are part of the page: not counted against the account's requests per minute
    limiter = site.services.limiter
    seen: list[str] = []
    original = limiter.hit

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(limiter, "hit", counting)
    assert site.client.get(f"/boards/{board}/pins/{sha}/image").status_code == 200
    assert seen == []
    assert site.client.get(f"/boards/{board}").status_code == 200 and seen == ["requests"]
    assert site.client.get(f"/boards/{board}/pins/not-a-hash/image").status_code == 404


def test_edit_pin(site: Site, csrf: str, board: str) -> None:
    sha = stored_pins(site, board)["whiskers.jpg"].pin.sha256
    url = f"/boards/{board}/pins/{sha}/edit"
    fields = {"saves": "7", "clicks": "2", "dwell_seconds": "12.5", "pinned_at": "2024-06-01T10:00:00+02:00",
              "title": "close portrait", "tags": "soft, warm ,, portrait"}
    r = site.client.post(url, data={**fields, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/boards/{board}?done=pin_saved"
    pin = stored_pins(site, board)["whiskers.jpg"].pin
    assert (pin.saves, pin.clicks, pin.dwell_seconds, pin.title) == (7, 2, 12.5, "close portrait")
    assert pin.tags == ("soft", "warm", "portrait") and pin.pinned_at.isoformat() == "2024-06-01T08:00:00+00:00"
    assert "board.pin_edited" in audit_actions(site)

    # htmx: the card comes back, saved
    r = site.client.post(url, data={**fields, "saves": "8"}, headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 200 and "Saved." in r.text and r.text.lstrip().startswith("<li")
    assert stored_pins(site, board)["whiskers.jpg"].pin.saves == 8

    # bad values: 422 and the message next to the pin; nothing stored
    for bad, words in [({"saves": "-1"}, "saves must be a whole number of 0 or more"),
                       ({"clicks": "lots"}, "clicks must be a whole number of 0 or more"),
                       ({"dwell_seconds": "nan"}, "dwell seconds must be a number of 0 or more"),
                       ({"pinned_at": "last tuesday"}, "is not an ISO 8601 date"),
                       ({"pinned_at": "2999-01-01"}, "is in the future"),
                       ({"tags": "x" * 101}, "at most 100 characters")]:
        r = site.client.post(url, data={**fields, **bad, "csrf_token": csrf})
        assert r.status_code == 422, (bad, r.text)
        assert words.lower() in r.text.lower(), (bad, r.text)
        assert f'id="err-{sha[:16]}"' in r.text and "<html" in r.text
    r = site.client.post(url, data={**fields, "saves": "-1"}, headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 422 and "<html" not in r.text and "whole number" in r.text
    assert stored_pins(site, board)["whiskers.jpg"].pin.saves == 8


def test_add_and_remove_pins(site: Site, csrf: str, board: str) -> None:
    blobs = site.services.store.blobs
    r = site.client.post(f"/boards/{board}/pins", data={"csrf_token": csrf},
                         files=image_parts(["brick-wall.jpg", "cat-nap.jpg"]), follow_redirects=False)
    assert r.status_code == 200 and "cat-nap.jpg</strong>: already on the board" in r.text
    pins = stored_pins(site, board)
    assert len(pins) == 5
    sha = pins["brick-wall.jpg"].pin.sha256
    assert blobs.exists(sha)
    r = site.client.post(f"/boards/{board}/pins/{sha}/remove", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=pin_removed")
    assert "brick-wall.jpg" not in stored_pins(site, board)
    assert not blobs.exists(sha)  # nothing else referred to it
    assert "board.pin_removed" in audit_actions(site)
    r = site.client.post(f"/boards/{board}/pins/{sha}/remove", data={"csrf_token": csrf})
    assert r.status_code == 404


def test_delete_board(site: Site, csrf: str, board: str) -> None:
    shas = [p.pin.sha256 for p in stored_pins(site, board).values()]
    r = site.client.post(f"/boards/{board}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/boards?done=board_deleted"
    assert site.client.get(f"/boards/{board}").status_code == 404
    assert not any(site.services.store.blobs.exists(s) for s in shas)
    assert "Board deleted" in site.client.get("/boards?done=board_deleted").text


def test_taste_page(site: Site, board: str) -> None:
    r = site.client.get(f"/boards/{board}/taste")
    assert r.status_code == 200, r.text
    assert re.search(r'<rect [^>]*fill="#[0-9a-f]{6}"', r.text) and "<title>#" in r.text
    assert "% </span>" not in r.text and re.search(r'class="weight">\d+%<', r.text)
    assert f"/boards/{board}/pins/" in r.text  # medoid thumbnails
    assert "Feedback history" in r.text and "No feedback yet" in r.text
    assert "style=" not in r.text

    # the versions feedback made are listed, newest first, with what made each
    with site.services.store.session() as s:
        b = s.get_board(s.owner_of("board", board) or "", board)
        cur = s.read_board_profile(board)
        assert cur is not None and cur.profile_json and cur.profile_hash
        liked = {"kind": "feedback", "action": "like", "mode": "m0", "mode_source": "nearest", "dwell_seconds": 4.0,
                 "image_sha256": "a" * 64}
        events: list[dict[str, Any]] = [{"kind": "built"}, liked]
        for n, event in enumerate(events, start=1):
            s.add_profile_version(ProfileVersion(account_id=b.account_id, board_id=board, board_revision=b.revision,
                                                 version=n, profile_hash=cur.profile_hash, event=event,
                                                 created_at=utcnow(), profile_json=cur.profile_json))
        s.commit()
    r = site.client.get(f"/boards/{board}/taste")
    assert r.status_code == 200 and "No feedback yet" not in r.text
    assert r.text.index("Liked a generated image (mode m0: the nearest mode), looked at for 4 s") < r.text.index(
        "Learnt from the board&#39;s pins")


# ------------------------------------------------------------------------------------------ who may


def test_another_accounts_board_is_404_everywhere(site: Site, board: str) -> None:
    sha = stored_pins(site, board)["cat-nap.jpg"].pin.sha256
    other = TestClient(site.client.app, raise_server_exceptions=False)
    token = site.sign_in(client=other)
    for path in [f"/boards/{board}", f"/boards/{board}/taste", f"/boards/{board}/pins/{sha}/image"]:
        assert other.get(path).status_code == 404, path
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"/boards/{board}/pins/{sha}/edit", {"data": {"saves": "1"}}),
        (f"/boards/{board}/pins/{sha}/remove", {}),
        (f"/boards/{board}/delete", {}),
        (f"/boards/{board}/pins", {"files": image_parts(["brick-wall.jpg"])}),
    ]
    for path, kw in posts:
        data = {**kw.pop("data", {}), "csrf_token": token}
        r = other.post(path, data=data, **kw)
        assert r.status_code == 404, (path, r.text)
    assert board not in other.get("/boards").text
    assert len(stored_pins(site, board)) == 4  # nothing happened to it


def test_posts_without_csrf_are_403(site: Site, board: str) -> None:
    sha = stored_pins(site, board)["cat-nap.jpg"].pin.sha256
    upload = image_parts(["brick-wall.jpg"])
    for path, files in [("/boards", upload), (f"/boards/{board}/pins", upload),
                        (f"/boards/{board}/pins/{sha}/edit", None), (f"/boards/{board}/pins/{sha}/remove", None),
                        (f"/boards/{board}/delete", None)]:
        r = site.client.post(path, data={"name": "x", "saves": "3", "csrf_token": "wrong"}, files=files)
        assert r.status_code == 403, path
        r = site.client.post(path, data={"name": "x", "saves": "3"}, files=files)
        assert r.status_code == 403, path
    assert len(stored_pins(site, board)) == 4


def test_signed_out_goes_to_signin(site: Site) -> None:
    r = site.client.get("/boards", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=/boards")


# ------------------------------------------------------------------------------------------ in a browser


def wait_true(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll ``expression`` until it is true (``wait_for_function`` polls with eval, which the page's CSP
    forbids; ``evaluate`` runs outside it)."""
    for _ in range(int(timeout_s / 0.05)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"still false after {timeout_s} s: {expression}")


def images_loaded(page: Any, selector: str) -> None:
    wait_true(page, f"[...document.querySelectorAll('{selector}')].every(i => i.complete && i.naturalWidth > 0)")


def test_boards_in_a_browser(live_site: Any, browser_page: Any) -> None:
    live = live_site()
    page = browser_page
    sign_in_browser(page, live.url, live.new_key())
    page.goto(f"{live.url}/boards")
    page.get_by_label("Name").fill("Golden hour")
    files = sorted(str(p) for p in BOARD.glob("*.jpg")) + [str(BOARD / "pins.csv")]
    page.set_input_files("#new-images", files)
    page.get_by_text(f"{len(files)} files chosen.").wait_for()
    page.get_by_role("button", name="Create board").click()
    page.wait_for_url(re.compile(r".*/boards/brd_.*done=board_created"))
    assert page.locator(".pin").count() == len(files) - 1
    page.locator(".pin img").last.scroll_into_view_if_needed()
    images_loaded(page, ".pin img")
    shot(page, "board-grid")

    # edit one pin in place (htmx): the card is swapped and says so
    first = page.locator(".pin").first
    first.get_by_text("Edit").click()
    first.get_by_label("Saves").fill("42")
    first.get_by_role("button", name=re.compile("^Save")).click()
    page.locator(".pin .saved").wait_for()
    assert page.locator(".pin").first.get_by_text("42 saves").count() == 1

    page.get_by_role("link", name="See its taste profile").click()
    page.wait_for_url(re.compile(r".*/taste$"), timeout=120_000)
    assert page.locator(".mode").count() >= 1 and page.locator(".palette svg rect").count() >= 1
    images_loaded(page, ".medoids img")
    shot(page, "board-taste")

    page.goto(f"{live.url}/boards")
    images_loaded(page, "img")
    shot(page, "boards-list")

    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Golden hour", exact=True).click()
    images_loaded(page, ".pin img")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the board page scrolls sideways at 390 px ({width})"
    shot(page, "board-grid-mobile")

    # a bad value comes back next to its pin (htmx, 422), focused
    first = page.locator(".pin").first
    first.get_by_text("Edit").click()
    first.get_by_label("Pinned at").fill("last tuesday")
    first.get_by_role("button", name=re.compile("^Save")).click()
    error = page.locator(".pin .error").first
    error.wait_for()
    assert "ISO 8601" in error.inner_text()
    wait_true(page, "document.activeElement?.classList.contains('error') === true")  # after htmx settles
    page.locator(".pin").first.screenshot(path=str(shot(page, "board-pin-error-mobile")))



def test_one_pin_board_has_a_taste_page(site: Site, csrf: str) -> None:
    r = create(site, csrf, image_parts(["cat-nap.jpg"]))
    assert r.status_code == 303
    bid = board_id_of(r)
    taste = site.client.get(f"/boards/{bid}/taste")
    assert taste.status_code == 200 and "1 look in this board" in taste.text and "100%" in taste.text
    sha = stored_pins(site, bid)["cat-nap.jpg"].pin.sha256
    r = site.client.post(f"/boards/{bid}/pins/{sha}/remove", data={"csrf_token": csrf})
    assert r.status_code == 422 and "only pin; delete the board instead" in r.text
